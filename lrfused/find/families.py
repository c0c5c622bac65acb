"""The optimizer families the range test sweeps by name (range_test's optimizer="sgd", the CLI's
--optimizer): what each one trains, takes and recommends. A family is one entry of FAMILIES; nothing
else in lrfused.find names one."""
from dataclasses import dataclass

import lrfused
from lrfused._checks import check_number
from lrfused._betas import check_betas

SGD_MOMENTUM = 0.9  # range_test's default momentum
# range_test's family settings as they are when not given: a family that does not take one refuses
# any other value (in this order: how the errors list them)
UNSET = {"momentum": SGD_MOMENTUM, "nesterov": False, "betas": None, "eps": None, "weight_decay": None}
# the checks of a setting that a family runs before anything runs (torch.optim.AdamW's), by name
CHECKS = {
    "betas": lambda value: check_betas("betas", value),
    "eps": lambda value: check_number("eps", value, strictly_above=True),
    "weight_decay": lambda value: check_number("weight_decay", value),
}


@dataclass(frozen=True)
class Family:
    name: str  # range_test's optimizer=, the CLI's --optimizer, the JSON's config.optimizer
    title: str  # how messages name it: "the fused SGD sweep"
    optimizer: type  # the fused optimizer the sweep trains (Ramp schedule) and each confirmation candidate (OneCycle)
    # the settings (of UNSET) the optimizer takes, with their defaults, in its keyword names
    settings: dict
    # the classes a recommended call names (as lrfused.<class>: public ones), by schedule; "one_cycle" is required (--then-train trains it), a
    # schedule without one is written as optimizer(params, schedule=lrfused.schedules.<Schedule>(...))
    drop_ins: dict
    carried: tuple  # the settings a recommended call carries where they differ from the drop-ins' defaults (= settings')
    checked: tuple = ()  # the settings CHECKS checks before anything runs (the others: the optimizer, as the sweep builds it)
    # a grid's momentum -> the 1cycle drop-in's keyword arguments; None: the family's grid varies the weight
    # decay only (its sweeps keep the momentum, e.g. AdamW's beta1, fixed)
    grid_momentum: callable = None

    @property
    def one_cycle(self):
        return self.drop_ins["one_cycle"]

    @property
    def grid_axes(self):
        return ("weight_decay", "momentum") if self.grid_momentum else ("weight_decay",)

    def settings_of(self, given):
        """The family's settings from range_test's `given` ones (UNSET's names): a default where one
        is not given, each checked as `checked` says. (A None where range_test itself has a default,
        momentum=None, is left for the optimizer to refuse.)"""
        filled = {name: default if given[name] is None and UNSET[name] is None else given[name]
                  for name, default in self.settings.items()}
        return {name: CHECKS[name](value) if name in self.checked else value for name, value in filled.items()}

    def grid_point(self, weight_decay, momentum):
        """A grid combination as the settings of a sweep of this family: its weight decay, and its
        momentum where the family's grid varies it."""
        return {"weight_decay": weight_decay, **({"momentum": momentum} if self.grid_momentum else {})}

    def sweep_optimizer(self, params, config, schedule):
        """The optimizer a sweep (or a confirmation candidate) of `config` trains, on `schedule`."""
        return self.optimizer(params, lr=config.start_lr, schedule=schedule,
                              **{name: getattr(config, name) for name in self.settings})


FAMILIES = {
    family.name: family
    for family in (
        Family(
            name="sgd", title="SGD", optimizer=lrfused.FusedSGD,
            settings={"momentum": SGD_MOMENTUM, "weight_decay": 0.0, "nesterov": False},  # (FusedSGD checks them)
            drop_ins={"one_cycle": lrfused.FusedOneCycleSGD, "cyclic": lrfused.FusedCyclicSGD,
                      "warm_restarts": lrfused.FusedWarmRestartsSGD},
            carried=("weight_decay", "nesterov"),
            grid_momentum=lambda m: {"max_momentum": m, "base_momentum": max(m - 0.1, 0.0)},
        ),
        Family(
            name="adamw", title="AdamW", optimizer=lrfused.FusedAdamW,
            settings={"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},  # torch.optim.AdamW's defaults
            drop_ins={"one_cycle": lrfused.FusedOneCycleAdamW},
            carried=("betas", "eps", "weight_decay"),
            checked=("betas", "eps", "weight_decay"),
        ),
        Family(
            name="lion", title="Lion", optimizer=lrfused.FusedLion,
            settings={"betas": (0.9, 0.99), "weight_decay": 0.0},  # FusedLion's defaults (the paper's betas)
            drop_ins={"one_cycle": lrfused.FusedOneCycleLion},
            carried=("betas", "weight_decay"),
            checked=("betas", "weight_decay"),
        ),
    )
}
DEFAULT = "sgd"  # range_test's optimizer, the CLI's --optimizer


def family_of(optimizer):
    """The Family range_test's `optimizer` names, or None (an optimizer instance, an unknown name)."""
    return FAMILIES.get(optimizer) if isinstance(optimizer, str) else None


def taking(setting):
    """The families that take `setting`, as messages name them: ("'sgd'", ...), ("SGD", ...)."""
    takers = [family for family in FAMILIES.values() if setting in family.settings]
    return " / ".join(repr(family.name) for family in takers), " / ".join(family.title for family in takers)

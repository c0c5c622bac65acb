"""A recommended optimizer kept as data, (family, schedule, keyword arguments), and the one place it is
written as text: the calls the summary prints and the JSON holds, and --then-train's line. The
numbers come from lrfused.find.analysis.recommend (a sweep) or a grid's best combination; the
families' drop-ins from lrfused.find.families."""
from dataclasses import dataclass

from lrfused.find.families import FAMILIES

# schedule -> (its lrfused.schedules class, its arguments as a call writes them: the recommended LRs
# at 3 significant digits, the training budget as an expression of the user's loader and epochs)
SCHEDULES = {
    "one_cycle": ("OneCycle", "max_lr={max_lr:.3g}, total_steps=len(loader) * epochs"),
    "cyclic": ("Cyclic", "base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, step_size_up=4 * len(loader)"),
    # SGDR: restart at max_lr, anneal down to the cyclical base_lr; cycles of 1, 2, 4... epochs
    "warm_restarts": ("WarmRestarts", "max_lr={max_lr:.3g}, T_0=len(loader), T_mult=2, eta_min={eta_min:.3g}"),
}
# the same schedules with torch's schedulers, for an optimizer the user gave
TORCH_SCHEDULERS = {
    "one_cycle": "OneCycleLR(opt, max_lr={max_lr:.3g}, total_steps=len(loader) * epochs)",
    "cyclic": "CyclicLR(opt, base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, step_size_up=4 * len(loader), cycle_momentum=False)",
    "warm_restarts": "CosineAnnealingWarmRestarts(opt, T_0=len(loader), T_mult=2, eta_min={eta_min:.3g})",
}
LRS = ("max_lr", "base_lr", "eta_min")  # the keyword arguments a schedule's arguments write


@dataclass(frozen=True)
class Recommendation:
    """An optimizer to train with: `family` (a lrfused.find.families name, or "<class name> (given)"
    for the user's optimizer) on `schedule` (a SCHEDULES name), built with `kwargs`: the schedule's LRs
    (LRS), then the settings the sweep trained with, as the family's drop-ins name them. A call
    carries a setting where it differs from the drop-ins' default, exactly; a grid's picks
    (`picked`: its weight decay and momenta) always, to 6 significant digits."""

    family: str
    schedule: str
    kwargs: dict
    picked: tuple = ()

    @property
    def settings(self):
        return {name: value for name, value in self.kwargs.items() if name not in LRS}

    def text(self):
        """The call to paste."""
        family = FAMILIES.get(self.family)
        if family is None:  # the user's optimizer: max_lr is its first group's; the other groups keep their ratios to it
            return (f"opt = your {self.family.removesuffix(' (given)')} (first group's lr {self.kwargs['max_lr']:.3g}, "
                    f"other groups in the same ratio); torch.optim.lr_scheduler."
                    + TORCH_SCHEDULERS[self.schedule].format(**self.kwargs))
        extra = "".join(f", {name}={self._value(name, value)}" for name, value in self.settings.items()
                        if name in self.picked or value != family.settings[name])
        schedule, arguments = SCHEDULES[self.schedule]
        arguments = arguments.format(**self.kwargs)
        drop_in = family.drop_ins.get(self.schedule)
        if drop_in is not None:
            return f"lrfused.{drop_in.__name__}(model.parameters(), {arguments}{extra})"
        return f"lrfused.{family.optimizer.__name__}(model.parameters(), schedule=lrfused.schedules.{schedule}({arguments}){extra})"

    def training_text(self, epochs):
        """--then-train's line: the drop-in, the max_lr and the weight decay (and a grid's picks)."""
        shown = ", ".join(f"{name}={value:g}" for name, value in self.settings.items()
                          if name == "weight_decay" or name in self.picked)
        return f"training {epochs} epochs with {FAMILIES[self.family].one_cycle.__name__}(max_lr={self.kwargs['max_lr']:.3g}, {shown})"

    def one_cycle_optimizer(self, params, epochs, steps_per_epoch):
        """The family's 1cycle drop-in as the call builds it, for `epochs` of `steps_per_epoch` steps."""
        assert self.schedule == "one_cycle", self.schedule
        return FAMILIES[self.family].one_cycle(params, epochs=epochs, steps_per_epoch=steps_per_epoch, **self.kwargs)

    def _value(self, name, value):
        return format(value, "g") if name in self.picked else repr(value)


def sweep_recommendations(numbers, config):
    """schedule -> Recommendation for a sweep's `numbers` (analysis.recommend's; None: none) with the
    settings of `config` (a SweepConfig) that its family's calls carry."""
    if numbers is None:
        return {}
    optimizer = config.optimizer
    family = FAMILIES.get(optimizer)
    settings = {name: getattr(config, name) for name in family.carried} if family else {}
    lrs = {"one_cycle": {"max_lr": numbers["max_lr"]},
           "cyclic": {"base_lr": numbers["base_lr"], "max_lr": numbers["max_lr"]},
           "warm_restarts": {"max_lr": numbers["max_lr"], "eta_min": numbers["base_lr"]}}
    return {schedule: Recommendation(optimizer, schedule, {**lrs[schedule], **settings}) for schedule in SCHEDULES}


def grid_recommendation(optimizer, best):
    """The 1cycle Recommendation for a grid's best row (max_lr, weight_decay, momentum): its momentum
    cycled in the drop-in where the family's grid varies it."""
    family = FAMILIES[optimizer]
    settings = {"weight_decay": best["weight_decay"]}
    if family.grid_momentum is not None:
        settings.update(family.grid_momentum(best["momentum"]))
    return Recommendation(optimizer, "one_cycle", {"max_lr": best["max_lr"], **settings}, picked=tuple(settings))


def as_json(numbers, recommendations):
    """RangeTestResult.recommendation: the numbers, then each schedule's call as text (None: none)."""
    if numbers is None:
        return None
    return {**numbers, **{schedule: r.text() for schedule, r in recommendations.items()}}

"""The 1cycle policy (OneCycle), torch.optim.lr_scheduler.OneCycleLR's schedule."""
from lrfused._checks import check_bool, check_choice, check_int, check_number
from lrfused._ext import _C
from lrfused._schedule import Field, Schedule

_ANNEAL = {"cos": _C.ANNEAL_COS, "linear": _C.ANNEAL_LINEAR}


def resolve_total_steps(total_steps, epochs, steps_per_epoch):
    """total_steps, or epochs * steps_per_epoch, as OneCycleLR takes them."""
    if total_steps is not None:
        return check_int("total_steps", total_steps, minimum=1)
    if epochs is not None and steps_per_epoch is not None:
        return check_int("epochs", epochs, minimum=1) * check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    raise ValueError("total_steps is missing: give total_steps, or epochs and steps_per_epoch")


class OneCycle(Schedule):
    """``torch.optim.lr_scheduler.OneCycleLR``'s schedule, same arguments and meanings. ``max_lr``,
    ``base_momentum`` and ``max_momentum`` may be lists, one value per param group. Each group keeps
    OneCycleLR's keys (``initial_lr``, ``max_lr``, ``min_lr``, ...)."""

    kind = _C.SCHEDULE_ONE_CYCLE
    struct = "one_cycle"
    fields = (
        Field("initial_lr"),
        Field("max_lr"),
        Field("min_lr"),
        Field("base_momentum"),
        Field("max_momentum"),
        Field("pct_start"),
        Field("total_steps"),
        Field("anneal_strategy", "anneal", _ANNEAL.__getitem__),
        Field("three_phase"),
    )
    longer = "a larger total_steps (or epochs / steps_per_epoch)"

    def __init__(
        self,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
    ):
        self._settings = dict(
            max_lr=max_lr,
            total_steps=resolve_total_steps(total_steps, epochs, steps_per_epoch),
            pct_start=check_number("pct_start", pct_start, maximum=1.0),
            anneal_strategy=check_choice("anneal_strategy", anneal_strategy, tuple(_ANNEAL)),
            cycle_momentum=check_bool("cycle_momentum", cycle_momentum),
            base_momentum=base_momentum,
            max_momentum=max_momentum,
            div_factor=check_number("div_factor", div_factor, strictly_above=True),
            final_div_factor=check_number("final_div_factor", final_div_factor, strictly_above=True),
            three_phase=check_bool("three_phase", three_phase),
        )

    def settings(self):
        return dict(self._settings)

    def complete_group(self, group, where):
        check_number("max_lr" + where, group["max_lr"])
        check_number("base_momentum" + where, group["base_momentum"])
        check_number("max_momentum" + where, group["max_momentum"])
        momenta = super().complete_group(group, where)
        # As OneCycleLR writes them.
        group["initial_lr"] = group["max_lr"] / group["div_factor"]
        group["min_lr"] = group["initial_lr"] / group["final_div_factor"]
        return (group["base_momentum"], group["max_momentum"]) if group["cycle_momentum"] else momenta

    def total_steps(self, group):
        return group["total_steps"]

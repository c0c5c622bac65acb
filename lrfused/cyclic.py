"""Cyclical learning rates (Cyclic), torch.optim.lr_scheduler.CyclicLR's schedule."""
from lrfused._checks import check_bool, check_choice, check_number
from lrfused._ext import _C
from lrfused._schedule import Field, Schedule

_MODES = {"triangular": _C.CYCLIC_TRIANGULAR, "triangular2": _C.CYCLIC_TRIANGULAR2, "exp_range": _C.CYCLIC_EXP_RANGE}


class Cyclic(Schedule):
    """``torch.optim.lr_scheduler.CyclicLR``'s schedule (Smith's CLR), same arguments and meanings,
    for the modes ``triangular``, ``triangular2`` and ``exp_range`` (a Python ``scale_fn`` cannot run
    in the kernel: use ``Table`` for one). ``base_lr``, ``max_lr``, ``base_momentum`` and
    ``max_momentum`` may be lists, one value per param group. The schedule has no end."""

    kind = _C.SCHEDULE_CYCLIC
    struct = "cyclic"
    fields = (
        Field("base_lr"),
        Field("max_lr"),
        Field("base_momentum"),
        Field("max_momentum"),
        Field("step_size_up"),
        Field("step_size_down"),
        Field("mode", convert=_MODES.__getitem__),
        Field("gamma"),
    )

    def __init__(
        self,
        base_lr,
        max_lr,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        cycle_momentum=True,
        base_momentum=0.8,
        max_momentum=0.9,
    ):
        step_size_up = check_number("step_size_up", step_size_up, minimum=1.0)
        step_size_down = step_size_up if step_size_down is None else step_size_down
        self._settings = dict(
            base_lr=base_lr,
            max_lr=max_lr,
            step_size_up=step_size_up,
            step_size_down=check_number("step_size_down", step_size_down, minimum=1.0),
            mode=check_choice("mode", mode, tuple(_MODES)),
            gamma=check_number("gamma", gamma, strictly_above=True),
            cycle_momentum=check_bool("cycle_momentum", cycle_momentum),
            base_momentum=base_momentum,
            max_momentum=max_momentum,
        )

    def settings(self):
        return dict(self._settings)

    def complete_group(self, group, where):
        for name in ("base_lr", "max_lr", "base_momentum", "max_momentum"):
            check_number(name + where, group[name])
        momenta = super().complete_group(group, where)
        return (group["base_momentum"], group["max_momentum"]) if group["cycle_momentum"] else momenta

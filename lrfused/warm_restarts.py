"""SGDR warm restarts (WarmRestarts), CosineAnnealingWarmRestarts stepped once per optimizer step."""
from lrfused._checks import check_choice, check_int, check_number
from lrfused._ext import _C
from lrfused._schedule import Field, Schedule

_ANNEAL = {"cos": _C.ANNEAL_COS, "linear": _C.ANNEAL_LINEAR}


class WarmRestarts(Schedule):
    """``CosineAnnealingWarmRestarts(opt, T_0, T_mult, eta_min)`` stepped once per optimizer step:
    each cycle starts at ``max_lr``, anneals towards ``eta_min``, then jumps back; the first lasts
    ``T_0`` steps, each next one ``T_mult`` times longer. ``anneal_strategy='linear'`` anneals
    linearly (a sawtooth). ``max_lr`` and ``eta_min`` may be lists, one value per param group.
    Momentum is constant. The schedule has no end."""

    kind = _C.SCHEDULE_WARM_RESTARTS
    struct = "warm_restarts"
    fields = (
        Field("max_lr"),
        Field("eta_min"),
        Field("T_0", "t_0"),
        Field("T_mult", "t_mult"),
        Field("anneal_strategy", "anneal", _ANNEAL.__getitem__),
    )

    def __init__(self, max_lr, T_0, T_mult=1, eta_min=0.0, anneal_strategy="cos"):
        self._settings = dict(
            max_lr=max_lr,
            eta_min=eta_min,
            T_0=check_int("T_0", T_0, minimum=1),
            T_mult=check_int("T_mult", T_mult, minimum=1),
            anneal_strategy=check_choice("anneal_strategy", anneal_strategy, tuple(_ANNEAL)),
            cycle_momentum=False,
        )

    def settings(self):
        return dict(self._settings)

    def complete_group(self, group, where):
        for name in ("max_lr", "eta_min"):
            check_number(name + where, group[name])
        if group["eta_min"] > group["max_lr"]:
            raise ValueError(f"eta_min{where} must be <= max_lr, got eta_min={group['eta_min']} > max_lr={group['max_lr']}")
        check_int("T_0" + where, group["T_0"], minimum=1)
        check_int("T_mult" + where, group["T_mult"], minimum=1)
        return super().complete_group(group, where)

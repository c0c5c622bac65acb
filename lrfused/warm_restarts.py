"""SGDR warm restarts (WarmRestarts) and the drop-in FusedWarmRestartsSGD = SGD +
CosineAnnealingWarmRestarts."""
from lrfused._checks import check_choice, check_int, check_number
from lrfused._ext import _C
from lrfused._schedule import Schedule
from lrfused.fused_sgd import FusedSGD

_ANNEAL = {"cos": _C.ANNEAL_COS, "linear": _C.ANNEAL_LINEAR}


class WarmRestarts(Schedule):
    """``CosineAnnealingWarmRestarts(opt, T_0, T_mult, eta_min)`` stepped once per optimizer step:
    each cycle starts at ``max_lr``, anneals towards ``eta_min``, then jumps back; the first lasts
    ``T_0`` steps, each next one ``T_mult`` times longer. ``anneal_strategy='linear'`` anneals
    linearly (a sawtooth). ``max_lr`` and ``eta_min`` may be lists, one value per param group.
    Momentum is constant. The schedule has no end."""

    kind = _C.SCHEDULE_WARM_RESTARTS

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

    def inputs(self, group):
        return (group["max_lr"], group["eta_min"], group["T_0"], group["T_mult"], group["anneal_strategy"], group["momentum"])

    def fill(self, schedule, group):
        params = schedule.warm_restarts
        params.max_lr = group["max_lr"]
        params.eta_min = group["eta_min"]
        params.t_0 = group["T_0"]
        params.t_mult = group["T_mult"]
        params.anneal = _ANNEAL[group["anneal_strategy"]]


class FusedWarmRestartsSGD(FusedSGD):
    """SGD with warm restarts (Loshchilov & Hutter's SGDR; fast.ai's cycle_len / cycle_mult), the
    whole step, LR included, in one kernel.

    Numerically the same as ``torch.optim.SGD(params, lr=max_lr, ...)`` driven by
    ``CosineAnnealingWarmRestarts(opt, T_0, T_mult, eta_min)`` with ``scheduler.step()`` (no
    argument) after every ``opt.step()``: ``T_0`` and ``T_mult`` count optimizer steps.
    ``anneal_strategy='linear'`` anneals linearly instead (a sawtooth). ``max_lr`` and ``eta_min``
    may be lists, one value per param group. Momentum is constant. The schedule has no end.
    """

    def __init__(
        self,
        params,
        max_lr,
        T_0,
        T_mult=1,
        eta_min=0.0,
        momentum=0.9,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        maximize=False,
        anneal_strategy="cos",
        master_weights=False,
        count_skipped_steps=True,
    ):
        super().__init__(
            params,
            lr=0.0,  # shown values come from the schedule
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            schedule=WarmRestarts(max_lr, T_0, T_mult, eta_min, anneal_strategy),
            master_weights=master_weights,
            count_skipped_steps=count_skipped_steps,
        )

"""FusedWarmRestartsSGD: torch.optim.SGD + CosineAnnealingWarmRestarts (SGDR) in one kernel."""
from lrfused._checks import check_bool, check_choice, check_int, check_number, per_group_values
from lrfused._ext import _C
from lrfused._scheduled_sgd import ScheduledFusedSGD, as_param_groups, new_schedule, spread_per_group
from lrfused.one_cycle import check_sgd_group

_ANNEAL = {"cos": _C.ANNEAL_COS, "linear": _C.ANNEAL_LINEAR}


class FusedWarmRestartsSGD(ScheduledFusedSGD):
    """SGD with warm restarts (Loshchilov & Hutter's SGDR; fast.ai's cycle_len / cycle_mult): each
    cycle starts at ``max_lr``, anneals towards ``eta_min``, then jumps back to ``max_lr``. The first
    cycle lasts ``T_0`` steps, each next one ``T_mult`` times longer. The whole step, LR included, in
    one kernel.

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
    ):
        check_int("T_0", T_0, minimum=1)
        check_int("T_mult", T_mult, minimum=1)
        check_choice("anneal_strategy", anneal_strategy, tuple(_ANNEAL))
        groups = as_param_groups(params)
        defaults = dict(
            T_0=T_0,
            T_mult=T_mult,
            anneal_strategy=anneal_strategy,
            cycle_momentum=False,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        for name, value in (("max_lr", max_lr), ("eta_min", eta_min)):
            spread_per_group(groups, defaults, name, value, per_group_values)
        super().__init__(groups, defaults)

    def _complete_group(self, group, index):
        where = f" (param group {index})"
        for name in ("max_lr", "eta_min", "momentum"):
            check_number(name + where, group[name])
        if group["eta_min"] > group["max_lr"]:
            raise ValueError(f"eta_min{where} must be <= max_lr, got eta_min={group['eta_min']} > max_lr={group['max_lr']}")
        check_int("T_0" + where, group["T_0"], minimum=1)
        check_int("T_mult" + where, group["T_mult"], minimum=1)
        check_bool("cycle_momentum" + where, group["cycle_momentum"])
        check_sgd_group(group, index, (group["momentum"],))

    def _schedule_inputs(self, group):
        return (group["max_lr"], group["eta_min"], group["T_0"], group["T_mult"], group["anneal_strategy"], group["momentum"])

    def _schedule(self, group):
        schedule = new_schedule(_C.SCHEDULE_WARM_RESTARTS, group)
        params = schedule.warm_restarts
        params.max_lr = group["max_lr"]
        params.eta_min = group["eta_min"]
        params.t_0 = group["T_0"]
        params.t_mult = group["T_mult"]
        params.anneal = _ANNEAL[group["anneal_strategy"]]
        return schedule

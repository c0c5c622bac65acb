"""FusedCyclicSGD: torch.optim.SGD + CyclicLR in one kernel."""
from lrfused._checks import check_bool, check_choice, check_number, per_group_values
from lrfused._ext import _C
from lrfused._scheduled_sgd import ScheduledFusedSGD, as_param_groups, new_schedule, spread_per_group
from lrfused.one_cycle import check_sgd_group

_MODES = {"triangular": _C.CYCLIC_TRIANGULAR, "triangular2": _C.CYCLIC_TRIANGULAR2, "exp_range": _C.CYCLIC_EXP_RANGE}


class FusedCyclicSGD(ScheduledFusedSGD):
    """SGD with a cyclical LR (Smith's CLR), the whole step (and its LR and momentum) in one kernel.

    Numerically the same as ``torch.optim.SGD`` driven by ``torch.optim.lr_scheduler.CyclicLR(opt,
    base_lr, max_lr, step_size_up, step_size_down, mode, gamma, cycle_momentum=..., base_momentum,
    max_momentum)`` with ``scheduler.step()`` after every ``opt.step()``, for the modes
    ``triangular``, ``triangular2`` and ``exp_range`` (a Python ``scale_fn`` cannot run in the
    kernel). ``base_lr``, ``max_lr``, ``base_momentum`` and ``max_momentum`` may be lists, one value
    per param group; any argument may also be given per group in the group's dict. ``momentum`` is
    used when ``cycle_momentum=False``. The schedule has no end.
    """

    def __init__(
        self,
        params,
        base_lr,
        max_lr,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        cycle_momentum=True,
        base_momentum=0.8,
        max_momentum=0.9,
        momentum=0.9,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        maximize=False,
    ):
        check_number("step_size_up", step_size_up, minimum=1.0)
        if step_size_down is None:
            step_size_down = step_size_up
        check_number("step_size_down", step_size_down, minimum=1.0)
        check_choice("mode", mode, tuple(_MODES))
        check_number("gamma", gamma, strictly_above=True)
        check_bool("cycle_momentum", cycle_momentum)
        groups = as_param_groups(params)
        defaults = dict(
            step_size_up=float(step_size_up),
            step_size_down=float(step_size_down),
            mode=mode,
            gamma=float(gamma),
            cycle_momentum=cycle_momentum,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        for name, value in (
            ("base_lr", base_lr),
            ("max_lr", max_lr),
            ("base_momentum", base_momentum),
            ("max_momentum", max_momentum),
        ):
            spread_per_group(groups, defaults, name, value, per_group_values)
        super().__init__(groups, defaults)

    def _complete_group(self, group, index):
        where = f" (param group {index})"
        for name in ("base_lr", "max_lr", "base_momentum", "max_momentum", "momentum"):
            check_number(name + where, group[name])
        momenta = (group["base_momentum"], group["max_momentum"]) if group["cycle_momentum"] else (group["momentum"],)
        check_sgd_group(group, index, momenta)

    def _schedule_inputs(self, group):
        return (
            group["base_lr"],
            group["max_lr"],
            group["base_momentum"],
            group["max_momentum"],
            group["step_size_up"],
            group["step_size_down"],
            group["mode"],
            group["gamma"],
            group["cycle_momentum"],
            None if group["cycle_momentum"] else group["momentum"],
        )

    def _schedule(self, group):
        schedule = new_schedule(_C.SCHEDULE_CYCLIC, group)
        params = schedule.cyclic
        params.base_lr = group["base_lr"]
        params.max_lr = group["max_lr"]
        params.base_momentum = group["base_momentum"]
        params.max_momentum = group["max_momentum"]
        params.step_size_up = group["step_size_up"]
        params.step_size_down = group["step_size_down"]
        params.gamma = group["gamma"]
        params.mode = _MODES[group["mode"]]
        return schedule

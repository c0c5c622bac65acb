"""Cyclical learning rates (Cyclic) and the drop-in FusedCyclicSGD = SGD + CyclicLR."""
from lrfused._checks import check_bool, check_choice, check_number
from lrfused._ext import _C
from lrfused._schedule import Schedule
from lrfused.fused_sgd import FusedSGD

_MODES = {"triangular": _C.CYCLIC_TRIANGULAR, "triangular2": _C.CYCLIC_TRIANGULAR2, "exp_range": _C.CYCLIC_EXP_RANGE}


class Cyclic(Schedule):
    """``torch.optim.lr_scheduler.CyclicLR``'s schedule (Smith's CLR), same arguments and meanings,
    for the modes ``triangular``, ``triangular2`` and ``exp_range`` (a Python ``scale_fn`` cannot run
    in the kernel: use ``Table`` for one). ``base_lr``, ``max_lr``, ``base_momentum`` and
    ``max_momentum`` may be lists, one value per param group. The schedule has no end."""

    kind = _C.SCHEDULE_CYCLIC

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

    def inputs(self, group):
        return (
            group["base_lr"],
            group["max_lr"],
            group["base_momentum"],
            group["max_momentum"],
            group["step_size_up"],
            group["step_size_down"],
            group["mode"],
            group["gamma"],
            None if group["cycle_momentum"] else group["momentum"],
        )

    def fill(self, schedule, group):
        params = schedule.cyclic
        params.base_lr = group["base_lr"]
        params.max_lr = group["max_lr"]
        params.base_momentum = group["base_momentum"]
        params.max_momentum = group["max_momentum"]
        params.step_size_up = group["step_size_up"]
        params.step_size_down = group["step_size_down"]
        params.gamma = group["gamma"]
        params.mode = _MODES[group["mode"]]


class FusedCyclicSGD(FusedSGD):
    """SGD with a cyclical LR (Smith's CLR), the whole step (and its LR and momentum) in one kernel.

    Numerically the same as ``torch.optim.SGD`` driven by ``torch.optim.lr_scheduler.CyclicLR(opt,
    base_lr, max_lr, step_size_up, step_size_down, mode, gamma, cycle_momentum=..., base_momentum,
    max_momentum)`` with ``scheduler.step()`` after every ``opt.step()``, for the modes
    ``triangular``, ``triangular2`` and ``exp_range``. ``base_lr``, ``max_lr``, ``base_momentum`` and
    ``max_momentum`` may be lists, one value per param group; any argument may also be given per
    group in the group's dict. ``momentum`` is used when ``cycle_momentum=False``. The schedule has
    no end. ``master_weights`` and ``count_skipped_steps``: see ``FusedSGD``.
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
        master_weights=False,
        count_skipped_steps=True,
    ):
        schedule = Cyclic(
            base_lr, max_lr, step_size_up, step_size_down, mode, gamma, cycle_momentum, base_momentum, max_momentum
        )
        super().__init__(
            params,
            lr=0.0,  # shown values come from the schedule
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            schedule=schedule,
            master_weights=master_weights,
            count_skipped_steps=count_skipped_steps,
        )

"""The 1cycle policy (OneCycle) and its drop-in optimizer, FusedOneCycleSGD = SGD + OneCycleLR."""
from lrfused._checks import check_bool, check_choice, check_int, check_number
from lrfused._ext import _C
from lrfused._schedule import Schedule
from lrfused.fused_sgd import FusedSGD

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

    def inputs(self, group):
        return (
            group["initial_lr"],
            group["max_lr"],
            group["min_lr"],
            group["base_momentum"],
            group["max_momentum"],
            group["pct_start"],
            group["total_steps"],
            group["anneal_strategy"],
            group["three_phase"],
            None if group["cycle_momentum"] else group["momentum"],
        )

    def fill(self, schedule, group):
        params = schedule.one_cycle
        params.initial_lr = group["initial_lr"]
        params.max_lr = group["max_lr"]
        params.min_lr = group["min_lr"]
        params.base_momentum = group["base_momentum"]
        params.max_momentum = group["max_momentum"]
        params.pct_start = group["pct_start"]
        params.total_steps = group["total_steps"]
        params.anneal = _ANNEAL[group["anneal_strategy"]]
        params.three_phase = group["three_phase"]

    def total_steps(self, group):
        return group["total_steps"]


class FusedOneCycleSGD(FusedSGD):
    """SGD with the 1cycle policy, the whole step (and its LR and momentum) in one kernel.

    Numerically the same as ``torch.optim.SGD(params, momentum=..., dampening=..., weight_decay=...,
    nesterov=..., maximize=...)`` driven by ``torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, ...)``
    with ``scheduler.step()`` after every ``opt.step()``; the arguments have the same names and
    meanings. ``max_lr``, ``base_momentum`` and ``max_momentum`` may be lists, one value per param
    group; any argument may also be given per group in the group's dict (e.g. ``weight_decay=0`` for
    biases and norms). Each group stores its schedule inputs as OneCycleLR does (``initial_lr``,
    ``max_lr``, ``min_lr``, ``base_momentum``, ``max_momentum``), and ``group['lr']`` /
    ``group['momentum']`` show the values of the next step, as they do under OneCycleLR.

    ``momentum`` is used when ``cycle_momentum=False``. The step after the last one raises
    ``ValueError`` as OneCycleLR does, unless ``hold_final_lr=True``: then the LR (and momentum) stay
    at their final values. (A step replayed from a CUDA graph cannot raise, so it always holds.)
    ``master_weights`` and ``count_skipped_steps``: see ``FusedSGD``.
    """

    def __init__(
        self,
        params,
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
        momentum=0.9,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        maximize=False,
        hold_final_lr=False,
        master_weights=False,
        count_skipped_steps=True,
    ):
        schedule = OneCycle(
            max_lr,
            total_steps,
            epochs,
            steps_per_epoch,
            pct_start,
            anneal_strategy,
            cycle_momentum,
            base_momentum,
            max_momentum,
            div_factor,
            final_div_factor,
            three_phase,
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
            hold_final_lr=hold_final_lr,
            master_weights=master_weights,
            count_skipped_steps=count_skipped_steps,
        )

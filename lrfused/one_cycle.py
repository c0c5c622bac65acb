"""FusedOneCycleSGD: torch.optim.SGD + OneCycleLR in one kernel."""
from lrfused._checks import check_bool, check_choice, check_int, check_number, per_group_values
from lrfused._ext import _C
from lrfused._scheduled_sgd import ScheduledFusedSGD, as_param_groups, new_schedule, spread_per_group

_ANNEAL = {"cos": _C.ANNEAL_COS, "linear": _C.ANNEAL_LINEAR}


def resolve_total_steps(total_steps, epochs, steps_per_epoch):
    """total_steps, or epochs * steps_per_epoch, as OneCycleLR takes them."""
    if total_steps is not None:
        return check_int("total_steps", total_steps, minimum=1)
    if epochs is not None and steps_per_epoch is not None:
        return check_int("epochs", epochs, minimum=1) * check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    raise ValueError("total_steps is missing: give total_steps, or epochs and steps_per_epoch")


def check_sgd_group(group, index, momenta):
    """The SGD hyperparameters of a group; `momenta` are the momentum values the group can use."""
    where = f" (param group {index})"
    check_number("weight_decay" + where, group["weight_decay"])
    check_number("dampening" + where, group["dampening"])
    check_bool("nesterov" + where, group["nesterov"])
    check_bool("maximize" + where, group["maximize"])
    if group["nesterov"] and (all(m == 0 for m in momenta) or group["dampening"] != 0):
        raise ValueError(
            f"nesterov=True{where} requires a momentum > 0 and dampening == 0; got momentum "
            f"{' / '.join(map(str, momenta))} and dampening {group['dampening']}"
        )


class FusedOneCycleSGD(ScheduledFusedSGD):
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
    ):
        total_steps = resolve_total_steps(total_steps, epochs, steps_per_epoch)
        check_number("pct_start", pct_start, maximum=1.0)
        check_choice("anneal_strategy", anneal_strategy, tuple(_ANNEAL))
        check_number("div_factor", div_factor, strictly_above=True)
        check_number("final_div_factor", final_div_factor, strictly_above=True)
        check_bool("three_phase", three_phase)
        check_bool("cycle_momentum", cycle_momentum)
        check_bool("hold_final_lr", hold_final_lr)
        groups = as_param_groups(params)
        defaults = dict(
            total_steps=total_steps,
            pct_start=float(pct_start),
            anneal_strategy=anneal_strategy,
            cycle_momentum=cycle_momentum,
            div_factor=float(div_factor),
            final_div_factor=float(final_div_factor),
            three_phase=three_phase,
            hold_final_lr=hold_final_lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        for name, value in (("max_lr", max_lr), ("base_momentum", base_momentum), ("max_momentum", max_momentum)):
            spread_per_group(groups, defaults, name, value, per_group_values)
        super().__init__(groups, defaults)

    def _complete_group(self, group, index):
        where = f" (param group {index})"
        check_number("max_lr" + where, group["max_lr"])
        check_number("base_momentum" + where, group["base_momentum"])
        check_number("max_momentum" + where, group["max_momentum"])
        check_number("momentum" + where, group["momentum"])
        momenta = (group["base_momentum"], group["max_momentum"]) if group["cycle_momentum"] else (group["momentum"],)
        check_sgd_group(group, index, momenta)
        # As OneCycleLR writes them.
        group["initial_lr"] = group["max_lr"] / group["div_factor"]
        group["min_lr"] = group["initial_lr"] / group["final_div_factor"]

    def _schedule_inputs(self, group):
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
            group["cycle_momentum"],
            None if group["cycle_momentum"] else group["momentum"],
        )

    def _schedule(self, group):
        schedule = new_schedule(_C.SCHEDULE_ONE_CYCLE, group)
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
        return schedule

    def _check_can_step(self):
        for group in self.param_groups:
            if self._host_step >= group["total_steps"] and not group["hold_final_lr"]:
                raise ValueError(
                    f"Tried to step {self._host_step + 1} times. The specified number of total steps is "
                    f"{group['total_steps']}. Give a larger total_steps (or epochs / steps_per_epoch), or "
                    "pass hold_final_lr=True to keep training at the final LR."
                )

    def _shown_step(self, group, step):
        if group["hold_final_lr"]:
            return min(step, group["total_steps"] - 1)
        return step

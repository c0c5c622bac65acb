"""FusedSGD: torch.optim.SGD whose LR and momentum come from a schedule that the kernel evaluates from
a step counter kept on the params' device. The drop-ins (FusedOneCycleSGD, ...) are FusedSGD with
their schedule and torch's scheduler arguments.
"""
import torch

from lrfused._checks import check_bool, check_number
from lrfused._ext import _C
from lrfused._fused_optimizer import FusedOptimizer, check_flags, check_lr_default, checked_schedule

# Per-param state keys.
MOMENTUM_BUFFER = "momentum_buffer"  # same name and meaning as torch.optim.SGD's
MOMENTUM_FIRST_STEP = "momentum_first_step"  # int64: the step that first wrote the buffer
_BUFFER = (MOMENTUM_BUFFER,)


class FusedSGD(FusedOptimizer):
    """``torch.optim.SGD`` with any built-in schedule, the whole step (LR and momentum included) in one
    kernel that reads a step counter on the params' device: no host sync, capturable in a CUDA graph.

    ``schedule`` is one of ``lrfused.schedules``: ``Constant()`` (the default: plain SGD, each group's
    ``lr``), ``OneCycle(...)``, ``Cyclic(...)``, ``WarmRestarts(...)``, ``WarmupCosine(...)``,
    ``Ramp(...)`` or ``Table(...)`` (a per-step table, for any schedule you can write as a function
    of the step). ``lr`` is the base LR the schedules that scale one use (``Constant``,
    ``WarmupCosine``, ``Table``); with ``Constant`` it may be a one-element tensor, as torch's
    optimizers take it, read by the kernel at every step. Past the end of a schedule of fixed length
    (1cycle, warm-up + cosine, a table) ``step()`` raises ``ValueError`` as OneCycleLR does, unless
    ``hold_final_lr=True``; a step replayed from a CUDA graph always holds. A schedule other than
    ``Constant()`` owns ``group['lr']`` (and a momentum it cycles): a write from outside, such as a
    torch scheduler's, is not applied, and the next step warns once. Its own keys (``max_lr``, ...)
    may be edited: as under OneCycleLR, the step after the edit trains at the LR shown, the next at
    the new schedule's.

    ``master_weights=True`` keeps a float32 copy of each float16 / bfloat16 param (and a float32
    momentum buffer) in the optimizer state: the update runs on the copy and the param gets it
    rounded. With ``torch.amp.GradScaler``, grads are unscaled in the kernel and a step with an inf or
    NaN grad changes no param or buffer; the schedule still advances, as ``scheduler.step()`` in the
    usual loop does, unless ``count_skipped_steps=False`` (then, on CUDA, ``group['lr']`` is refreshed
    only when ``get_last_lr()`` or ``schedule_step`` reads the counter).
    """

    _rule = _C.RULE_SGD
    _count_key = MOMENTUM_FIRST_STEP
    _state_names = (MOMENTUM_BUFFER,)
    _plain_name = "FusedSGD"

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        maximize=False,
        schedule=None,
        hold_final_lr=False,
        master_weights=False,
        count_skipped_steps=True,
    ):
        schedule = checked_schedule(schedule)
        check_flags(hold_final_lr, master_weights, count_skipped_steps)
        check_lr_default(schedule, lr)
        for name, value in (("momentum", momentum), ("dampening", dampening), ("weight_decay", weight_decay)):
            check_number(name, value)
        for name, value in (("nesterov", nesterov), ("maximize", maximize)):
            check_bool(name, value)
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            hold_final_lr=hold_final_lr,
            master_weights=master_weights,
        )
        super().__init__(params, defaults, schedule=schedule, count_skipped_steps=count_skipped_steps)

    # --- the SGD family -----------------------------------------------------------------------------

    def _check_family_group(self, group, where, *, before_schedule=False, momenta=()):
        if before_schedule:
            check_number("momentum" + where, group["momentum"])
            return
        check_number("weight_decay" + where, group["weight_decay"])
        check_number("dampening" + where, group["dampening"])
        check_bool("nesterov" + where, group["nesterov"])
        check_bool("maximize" + where, group["maximize"])
        if group["nesterov"] and (all(m == 0 for m in momenta) or group["dampening"] != 0):
            raise ValueError(
                f"nesterov=True{where} requires a momentum > 0 and dampening == 0; got momentum "
                f"{' / '.join(map(str, momenta))} and dampening {group['dampening']}"
            )

    def _fill_config(self, config, group):
        config.rule_params = [float(group["dampening"]), float(group["nesterov"])]  # SGDRule's order

    def _family_inputs(self, group):
        return (group["dampening"], group["nesterov"])

    def _state_keys(self, group):
        return _BUFFER if group["cycle_momentum"] or group["momentum"] != 0 else ()

    def _new_count(self, param):
        return torch.full((), _C.NEVER_WRITTEN, dtype=torch.int64, device=param.device)

    def _complete_family_state(self, param, state, keeps_master):
        if MOMENTUM_FIRST_STEP not in state:  # a buffer given from outside
            state[MOMENTUM_FIRST_STEP] = torch.tensor(_C.WRITTEN_ELSEWHERE, dtype=torch.int64, device=param.device)
        if keeps_master and state[MOMENTUM_BUFFER].dtype != torch.float32:
            state[MOMENTUM_BUFFER] = state[MOMENTUM_BUFFER].float()  # e.g. loaded from torch's SGD

    def _restore_loaded_state(self, param, state, given, counter):
        """The first-step flag is int64 again. A flag at or past the (loaded) counter becomes
        WRITTEN_ELSEWHERE: every flag stays below the counter, which the CUDA kernel relies on to tell
        "first written earlier in this step" (flag == step) from "written before", so a restarted
        schedule keeps its buffers on every device."""
        if not isinstance(state.get(MOMENTUM_BUFFER), torch.Tensor):
            return
        first = given.get(MOMENTUM_FIRST_STEP)
        first = _C.WRITTEN_ELSEWHERE if first is None else int(first.item())
        if first >= counter:
            first = _C.WRITTEN_ELSEWHERE
        state[MOMENTUM_FIRST_STEP] = torch.tensor(first, dtype=torch.int64, device=param.device)

    def _check_loaded_count(self, key, count):
        if count is not None and (not isinstance(count, torch.Tensor) or count.numel() != 1):
            raise TypeError(f"state_dict: momentum_first_step of param {key} must be a one-element tensor")

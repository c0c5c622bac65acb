"""FusedSGD: torch.optim.SGD whose LR and momentum come from a schedule that the kernel evaluates from
a step counter kept on the params' device. The drop-ins (FusedOneCycleSGD, ...) are FusedSGD with
their schedule and torch's scheduler arguments.
"""
from lrfused._checks import check_bool, check_number
from lrfused._drop_in import drop_in
from lrfused._ext import _C
from lrfused._family import Family, GroupValue, RuleParam
from lrfused._fused_optimizer import FusedOptimizer
from lrfused._param_groups import check_flags, check_lr_default, checked_schedule
from lrfused.cyclic import Cyclic
from lrfused.one_cycle import OneCycle
from lrfused.ramp import Ramp
from lrfused.warm_restarts import WarmRestarts

# Per-param state keys.
MOMENTUM_BUFFER = "momentum_buffer"  # same name and meaning as torch.optim.SGD's
MOMENTUM_FIRST_STEP = "momentum_first_step"  # int64: the step that first wrote the buffer
_BUFFER = (MOMENTUM_BUFFER,)

SGD = Family(
    name="SGD",
    rule=_C.RULE_SGD,
    state_names=_BUFFER,
    # No buffer (and no count) where no momentum is used, as torch.optim.SGD.
    state_keys=lambda group: _BUFFER if group["cycle_momentum"] or group["momentum"] != 0 else (),
    count="first_write",
    count_key=MOMENTUM_FIRST_STEP,
    rule_params=(RuleParam("dampening", GroupValue("dampening")), RuleParam("nesterov", GroupValue("nesterov"))),
    momentum=GroupValue("momentum"),
    plain_name="FusedSGD",
)


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

    family = SGD

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


# The drop-ins: FusedSGD with a schedule, as torch.optim.SGD with the schedule's torch scheduler.
_DROP_IN_MOMENTUM = {"momentum": 0.9}  # the drop-ins' default (FusedSGD's is torch.optim.SGD's, 0)

FusedOneCycleSGD = drop_in(
    "FusedOneCycleSGD",
    FusedSGD,
    OneCycle,
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
    """,
    defaults=_DROP_IN_MOMENTUM,
)

FusedCyclicSGD = drop_in(
    "FusedCyclicSGD",
    FusedSGD,
    Cyclic,
    """SGD with a cyclical LR (Smith's CLR), the whole step (and its LR and momentum) in one kernel.

    Numerically the same as ``torch.optim.SGD`` driven by ``torch.optim.lr_scheduler.CyclicLR(opt,
    base_lr, max_lr, step_size_up, step_size_down, mode, gamma, cycle_momentum=..., base_momentum,
    max_momentum)`` with ``scheduler.step()`` after every ``opt.step()``, for the modes
    ``triangular``, ``triangular2`` and ``exp_range``. ``base_lr``, ``max_lr``, ``base_momentum`` and
    ``max_momentum`` may be lists, one value per param group; any argument may also be given per
    group in the group's dict. ``momentum`` is used when ``cycle_momentum=False``. The schedule has
    no end. ``master_weights`` and ``count_skipped_steps``: see ``FusedSGD``.
    """,
    defaults=_DROP_IN_MOMENTUM,
    flags=("master_weights", "count_skipped_steps"),
)

FusedWarmRestartsSGD = drop_in(
    "FusedWarmRestartsSGD",
    FusedSGD,
    WarmRestarts,
    """SGD with warm restarts (Loshchilov & Hutter's SGDR; fast.ai's cycle_len / cycle_mult), the
    whole step, LR included, in one kernel.

    Numerically the same as ``torch.optim.SGD(params, lr=max_lr, ...)`` driven by
    ``CosineAnnealingWarmRestarts(opt, T_0, T_mult, eta_min)`` with ``scheduler.step()`` (no
    argument) after every ``opt.step()``: ``T_0`` and ``T_mult`` count optimizer steps.
    ``anneal_strategy='linear'`` anneals linearly instead (a sawtooth). ``max_lr`` and ``eta_min``
    may be lists, one value per param group. Momentum is constant. The schedule has no end.
    """,
    defaults=_DROP_IN_MOMENTUM,
    flags=("master_weights", "count_skipped_steps"),
    after_family=("anneal_strategy",),
)

FusedRampSGD = drop_in(
    "FusedRampSGD",
    FusedSGD,
    Ramp,
    """SGD with an LR that rises from ``start_lr`` (step 0) to ``end_lr`` (step ``num_iter - 1``),
    geometrically (``mode='exp'``) or linearly, then stays at ``end_lr``; constant momentum. The LR
    range test's optimizer: the whole step, LR included, in one kernel.""",
    defaults=_DROP_IN_MOMENTUM,
    flags=(),
)

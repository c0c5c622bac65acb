"""FusedAdamW: torch.optim.AdamW whose LR (and beta1) come from a schedule that the kernel evaluates from
a step counter kept on the params' device; FusedOneCycleAdamW = AdamW + OneCycleLR.

The same machinery as the SGD family (FusedOptimizer); what differs is the update rule (the kernel's
rules/adamw.h) and the state: torch's exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad) and each param's own
`step`, a float32 one-element tensor on the param's device (as torch's fused AdamW keeps it).
"""
from lrfused._betas import check_betas, check_cycled_beta1
from lrfused._checks import check_bool, check_number
from lrfused._drop_in import drop_in
from lrfused._ext import _C
from lrfused._family import Family, GroupValue, RuleParam
from lrfused._fused_optimizer import FusedOptimizer
from lrfused._param_groups import check_flags, check_lr_default, checked_schedule
from lrfused.one_cycle import OneCycle

# Per-param state keys, torch.optim.AdamW's.
EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ, STEP = "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"
_MOMENTS = (EXP_AVG, EXP_AVG_SQ)
_MOMENTS_AMSGRAD = (EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ)


ADAMW = Family(
    name="AdamW",
    rule=_C.RULE_ADAMW,
    state_names=_MOMENTS_AMSGRAD,
    state_keys=lambda group: _MOMENTS_AMSGRAD if group["amsgrad"] else _MOMENTS,
    count="per_param_step",
    count_key=STEP,
    rule_params=(
        RuleParam("beta2", GroupValue("betas", 1)),
        RuleParam("eps", GroupValue("eps")),
        RuleParam("amsgrad", GroupValue("amsgrad")),
    ),
    momentum=GroupValue("betas", 0),  # beta1, as torch's OneCycleLR and CyclicLR cycle it
    plain_name="FusedAdamW",
)


class FusedAdamW(FusedOptimizer):
    """``torch.optim.AdamW`` with any built-in schedule, the whole step (LR and beta1 included) in one
    kernel that reads a step counter on the params' device: no host sync, capturable in a CUDA graph.

    Numerically ``torch.optim.AdamW(params, lr, betas, eps, weight_decay, amsgrad, maximize=...)``
    driven by the schedule's torch counterpart, ``scheduler.step()`` after every ``opt.step()``.
    ``schedule`` is one of ``lrfused.schedules`` (``Constant()`` by default: plain AdamW, each group's
    ``lr``, which may then be a one-element tensor). A schedule that cycles a momentum cycles beta1,
    as OneCycleLR / CyclicLR do for optimizers with betas: ``group['betas'][0]`` shows the next
    step's value and the bias correction uses it (torch's rule). Each param keeps its own ``step``
    for the bias corrections (a param without a grad is skipped and does not count), while the
    schedule follows the optimizer's counter. ``hold_final_lr``, ``master_weights`` (float32 copy and
    float32 moments for float16 / bfloat16 params) and ``count_skipped_steps``: see ``FusedSGD``.
    Complex params are updated on their real view, as torch's AdamW does.
    """

    family = ADAMW

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
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
        betas = check_betas("betas", betas)
        check_number("eps", eps, strictly_above=True)
        check_number("weight_decay", weight_decay)
        check_bool("amsgrad", amsgrad)
        check_bool("maximize", maximize)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            hold_final_lr=hold_final_lr,
            master_weights=master_weights,
        )
        super().__init__(params, defaults, schedule=schedule, count_skipped_steps=count_skipped_steps)

    # --- the AdamW family ---------------------------------------------------------------------------

    def _check_family_group(self, group, where, *, before_schedule=False, momenta=()):
        if before_schedule:
            group["betas"] = check_betas("betas" + where, group["betas"])
            return
        check_number("eps" + where, group["eps"], strictly_above=True)
        check_number("weight_decay" + where, group["weight_decay"])
        check_bool("amsgrad" + where, group["amsgrad"])
        check_bool("maximize" + where, group["maximize"])
        check_cycled_beta1(group, where, momenta)


FusedOneCycleAdamW = drop_in(
    "FusedOneCycleAdamW",
    FusedAdamW,
    OneCycle,
    """AdamW with the 1cycle policy (fastai's ``fit_one_cycle`` on Adam), the whole step in one kernel.

    Numerically ``torch.optim.AdamW(params, betas=..., eps=..., weight_decay=..., amsgrad=...,
    maximize=...)`` driven by ``torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, ...)``, with
    ``scheduler.step()`` after every ``opt.step()``; the arguments have the same names and meanings.
    With ``cycle_momentum=True`` (the default) beta1 cycles from ``max_momentum`` down to
    ``base_momentum`` and back, as under OneCycleLR; otherwise it is ``betas[0]``. Past the last step,
    and ``hold_final_lr``, ``master_weights``, ``count_skipped_steps``: see ``FusedOneCycleSGD``.
    """,
)

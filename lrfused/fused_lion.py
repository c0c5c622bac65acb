"""FusedLion: the Lion optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms")
whose LR (and beta1) come from a schedule that the kernel evaluates from a step counter kept on the
params' device; FusedOneCycleLion = Lion + OneCycleLR.

The same machinery as the SGD and AdamW families; what is Lion's is the update rule (the kernel's
rules/lion.h) and the state: one `exp_avg` per param, and no per-param count (no bias correction).
"""
from lrfused._betas import check_betas, check_cycled_beta1
from lrfused._checks import check_bool, check_number
from lrfused._drop_in import drop_in
from lrfused._ext import _C
from lrfused._family import Family, GroupValue, RuleParam
from lrfused._fused_optimizer import FusedOptimizer
from lrfused._param_groups import check_flags, check_lr_default, checked_schedule
from lrfused.one_cycle import OneCycle

EXP_AVG = "exp_avg"  # the paper's m (lucidrains' lion-pytorch calls it exp_avg too)

LION = Family(
    name="Lion",
    rule=_C.RULE_LION,
    state_names=(EXP_AVG,),
    state_keys=lambda group: (EXP_AVG,),
    count="none",
    count_key=None,
    rule_params=(RuleParam("beta2", GroupValue("betas", 1)),),
    momentum=GroupValue("betas", 0),  # beta1, the interpolation's, as a schedule cycles it
    plain_name="FusedLion",
)


class FusedLion(FusedOptimizer):
    """Lion with any built-in schedule, the whole step (LR and beta1 included) in one kernel that
    reads a step counter on the params' device: no host sync, capturable in a CUDA graph.

    Per param, with ``g`` its gradient (negated under ``maximize``) and ``m`` its ``exp_avg`` (zeros
    at first)::

        p *= 1 - lr * weight_decay
        p -= lr * sign(beta1 * m + (1 - beta1) * g)
        m = beta2 * m + (1 - beta2) * g

    The paper's defaults: ``betas=(0.9, 0.99)``; its LR is typically 3-10x smaller than AdamW's and
    its weight decay 3-10x larger, so that ``lr * weight_decay`` stays the same. A schedule that
    cycles a momentum cycles beta1, as OneCycleLR / CyclicLR do for optimizers with betas
    (``group['betas'][0]`` shows the next step's value). ``schedule``, ``hold_final_lr``,
    ``master_weights`` (float32 copy and float32 ``exp_avg`` for float16 / bfloat16 params) and
    ``count_skipped_steps``: see ``FusedSGD``. Complex params are updated on their real view.
    """

    family = LION

    def __init__(
        self,
        params,
        lr=1e-4,
        betas=(0.9, 0.99),
        weight_decay=0.0,
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
        check_number("weight_decay", weight_decay)
        check_bool("maximize", maximize)
        defaults = dict(
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            maximize=maximize,
            hold_final_lr=hold_final_lr,
            master_weights=master_weights,
        )
        super().__init__(params, defaults, schedule=schedule, count_skipped_steps=count_skipped_steps)

    def _check_family_group(self, group, where, *, before_schedule=False, momenta=()):
        if before_schedule:
            group["betas"] = check_betas("betas" + where, group["betas"])
            return
        check_number("weight_decay" + where, group["weight_decay"])
        check_bool("maximize" + where, group["maximize"])
        check_cycled_beta1(group, where, momenta)


FusedOneCycleLion = drop_in(
    "FusedOneCycleLion",
    FusedLion,
    OneCycle,
    """Lion with the 1cycle policy, the whole step in one kernel.

    Numerically Lion (see ``FusedLion``) driven by ``torch.optim.lr_scheduler.OneCycleLR(opt,
    max_lr, ...)`` with ``scheduler.step()`` after every ``opt.step()``; the arguments have
    OneCycleLR's names and meanings, then Lion's. With ``cycle_momentum=True`` (the default) beta1
    cycles from ``max_momentum`` down to ``base_momentum`` and back, as under OneCycleLR; otherwise it
    is ``betas[0]``. Past the last step, and ``hold_final_lr``, ``master_weights``,
    ``count_skipped_steps``: see ``FusedOneCycleSGD``.
    """,
)

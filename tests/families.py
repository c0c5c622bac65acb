"""The optimizer families that the concern tests (amp, compile, bad input, state dicts, numerics,
determinism, torch compatibility, CUDA) run over: one entry each. Adding a family is one entry here
plus its plain-torch reference in reference/<name>.py; every test parametrised with `families()` or
`family_variants()` then runs for it. What is one family's own (SGD's nesterov, dampening and
first-write flag; AdamW's amsgrad, cycled beta1 and per-param step) stays in that family's file.
Only the public API is used (lrfused.*, state_dict keys), so that these tests hold on every branch."""
import dataclasses
import functools
import math
from types import ModuleType

import pytest
import torch

import lrfused
from reference import adamw as adamw_reference
from reference import lion as lion_reference
from reference import sgd as sgd_reference
from reference.common import assert_step_matches


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    fused: type  # the general optimizer: fused(params, lr=..., schedule=..., **options)
    one_cycle: type  # the 1cycle drop-in: one_cycle(params, max_lr=..., total_steps=..., **options)
    # params, **options -> the plain-torch optimizer (torch's own with foreach=False, or one that
    # reference/<name>.py writes where torch has none)
    torch_optimizer: object
    # reference/<name>.py, which gives: run_and_compare(kind, group_specs, dtype, device, steps,
    # **kwargs) for kind in one_cycle, cyclic, warm_restarts, constant, warmup_cosine (compare_each_step
    # over its SideBySide); torch_one_cycle(groups, **kwargs) -> (torch optimizer, OneCycleLR); and
    # assert_states_match(fused, torch_opt, fused_params, torch_params, step, **tolerance)
    reference: ModuleType
    max_lr: float  # a 1cycle peak that trains the tests' small models without diverging
    variants: dict  # named option sets, one per state layout the family has
    custom: dict  # every hyperparameter off its default: what a state dict round trip must carry
    state_keys: tuple  # per-param state tensors compared with torch's, where torch has them
    count_key: str  # the per-param count kept as torch keeps it (a float32 one-element tensor), or None
    tolerances: dict  # dtype -> assert_close keywords against torch in the same dtype
    cycled_momentum: str  # where a group shows the cycled momentum: "momentum" or "betas[0]"
    # (argument, value, error type(s), message regex): refused by the general optimizer and by the drop-in
    bad_arguments: tuple
    drop_in_takes_no: tuple  # arguments among bad_arguments that the 1cycle drop-in does not take
    bad_group_values: tuple  # (argument, value): refused in a group dict and by add_param_group

    def __str__(self):
        return self.name

    def make_torch(self, params, **options):
        return self.torch_optimizer(params, **options)

    def momentum_of(self, group):
        """The cycled momentum this group shows (beta1 for a family with betas)."""
        key, _, index = self.cycled_momentum.partition("[")
        return group[key] if not index else group[key][int(index.rstrip("]"))]

    def shown(self, group):
        """What a group shows of the schedule: its lr and the whole entry that holds the momentum (all
        of betas, so that a beta2 the schedule must keep is compared too)."""
        key = self.cycled_momentum.partition("[")[0]
        value = group[key]
        return group["lr"], tuple(value) if isinstance(value, (tuple, list)) else value

    def tolerance(self, dtype=torch.float32):
        return self.tolerances[dtype]


SGD = Family(
    name="sgd",
    fused=lrfused.FusedSGD,
    one_cycle=lrfused.FusedOneCycleSGD,
    torch_optimizer=functools.partial(torch.optim.SGD, foreach=False),
    reference=sgd_reference,
    max_lr=0.5,
    variants={"momentum": dict(momentum=0.9)},
    custom=dict(momentum=0.8, dampening=0.3, weight_decay=1e-2),
    state_keys=("momentum_buffer",),
    count_key=None,
    tolerances={torch.float32: {}, torch.float64: {}},  # torch.testing's defaults
    cycled_momentum="momentum",
    bad_arguments=(
        ("lr", -1.0, ValueError, r"lr must be >= 0.0, got -1.0"),
        ("momentum", -0.9, ValueError, "momentum must be >= 0.0, got -0.9"),
        ("weight_decay", -1e-4, ValueError, "weight_decay must be >= 0.0"),
        ("weight_decay", math.nan, ValueError, "weight_decay must be finite"),
        ("weight_decay", math.inf, ValueError, "weight_decay must be finite"),
        ("dampening", -0.1, ValueError, "dampening must be >= 0.0"),
        ("nesterov", "yes", TypeError, "nesterov must be a bool"),
        ("maximize", 1, TypeError, "maximize must be a bool"),
    ),
    drop_in_takes_no=("lr",),
    bad_group_values=(("momentum", -0.5), ("dampening", -0.1), ("weight_decay", -0.5), ("lr", -0.1)),
)

ADAMW = Family(
    name="adamw",
    fused=lrfused.FusedAdamW,
    one_cycle=lrfused.FusedOneCycleAdamW,
    torch_optimizer=functools.partial(torch.optim.AdamW, foreach=False),
    reference=adamw_reference,
    max_lr=0.05,
    variants={"adam": {}, "amsgrad": dict(amsgrad=True)},
    custom=dict(betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-2, amsgrad=True),
    state_keys=adamw_reference.MOMENT_KEYS,
    count_key="step",
    tolerances=adamw_reference.TOLERANCES,
    cycled_momentum="betas[0]",
    bad_arguments=(
        ("betas", (0.9,), ValueError, "betas"),
        ("betas", (0.9, 0.999, 0.5), ValueError, "betas"),
        ("betas", (1.0, 0.999), ValueError, "betas"),
        ("betas", (-0.1, 0.999), ValueError, "betas"),
        ("betas", (0.9, 1.0), ValueError, "betas"),
        ("betas", (0.9, 1.5), ValueError, "betas"),
        ("betas", (0.9, math.nan), ValueError, "betas"),
        # a bare float: the spec asks for a ValueError; a TypeError names it as well
        ("betas", 0.9, (ValueError, TypeError), "betas"),
        ("eps", 0.0, ValueError, "eps"),
        ("eps", -1e-8, ValueError, "eps"),
        ("eps", math.inf, ValueError, "eps"),
        ("eps", math.nan, ValueError, "eps"),
        ("weight_decay", -1e-2, ValueError, "weight_decay"),
        ("weight_decay", -1.0, ValueError, "weight_decay"),
        ("weight_decay", math.inf, ValueError, "weight_decay"),
        ("weight_decay", math.nan, ValueError, "weight_decay"),
        ("lr", -1e-3, ValueError, "lr"),
        ("maximize", 1, TypeError, "maximize must be a bool"),
        ("amsgrad", "yes", TypeError, "amsgrad must be a bool"),
    ),
    drop_in_takes_no=("lr",),
    bad_group_values=(("betas", (0.9, 1.0)), ("eps", -1.0), ("weight_decay", -0.5), ("lr", -0.1)),
)

LION = Family(
    name="lion",
    fused=lrfused.FusedLion,
    one_cycle=lrfused.FusedOneCycleLion,
    torch_optimizer=lion_reference.ReferenceLion,
    reference=lion_reference,
    max_lr=0.01,  # Lion's steps are lr * sign(...): a tenth of AdamW's LR, as the paper advises
    variants={"lion": {}},
    custom=dict(betas=(0.8, 0.95), weight_decay=1e-2),
    state_keys=lion_reference.MOMENT_KEYS,
    count_key=None,
    tolerances=lion_reference.TOLERANCES,
    cycled_momentum="betas[0]",
    bad_arguments=(
        ("betas", (0.9,), ValueError, "betas"),
        ("betas", (1.0, 0.99), ValueError, "betas"),
        ("betas", (-0.1, 0.99), ValueError, "betas"),
        ("betas", (0.9, 1.0), ValueError, "betas"),
        ("betas", (0.9, math.nan), ValueError, "betas"),
        ("betas", 0.9, (ValueError, TypeError), "betas"),
        ("weight_decay", -1e-2, ValueError, "weight_decay"),
        ("weight_decay", math.inf, ValueError, "weight_decay"),
        ("weight_decay", math.nan, ValueError, "weight_decay"),
        ("lr", -1e-3, ValueError, "lr"),
        ("maximize", 1, TypeError, "maximize must be a bool"),
    ),
    drop_in_takes_no=("lr",),
    bad_group_values=(("betas", (0.9, 1.0)), ("weight_decay", -0.5), ("lr", -0.1)),
)

FAMILIES = {family.name: family for family in (SGD, ADAMW, LION)}


def families():
    """For @pytest.mark.parametrize("family", families()): one case per family, its name as the id."""
    return [pytest.param(family, id=family.name) for family in FAMILIES.values()]


def family_variants():
    """For @pytest.mark.parametrize("family, options", family_variants()): every state layout of every
    family, ids such as 'sgd-momentum', 'adamw-amsgrad'."""
    return [
        pytest.param(family, options, id=f"{family.name}-{variant}")
        for family in FAMILIES.values()
        for variant, options in family.variants.items()
    ]


def assert_master_state_matches(family, state, torch_state, param, where):
    """With master weights: a float32 master_param and float32 state tensors that follow torch's float32
    run (its param and state), the per-param count as torch's, the param the master rounded."""
    tolerance = family.tolerance(torch.float32)
    master = state["master_param"]
    assert master.dtype == torch.float32, where
    for key in family.state_keys:
        assert (key in state) == (key in torch_state), f"{where}: {key}"
        if key in state:
            assert state[key].dtype == torch.float32, f"{where}: {key}"
            torch.testing.assert_close(state[key], torch_state[key], **tolerance, msg=lambda m: f"{where}, {key}: {m}")
    if family.count_key is not None:  # (torch keeps it as "step")
        assert_step_matches(state, torch_state, param, where)
    assert torch.equal(param, master.to(param.dtype)), where

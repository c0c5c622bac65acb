"""lrfused against torch's optimizers (foreach=False) + torch's schedulers, compared after every step on
every dtype: each schedule for every family (families.py) and each of its state layouts, then SGD with
its own options (nesterov, dampening, no momentum), groups, params without grads and odd layouts."""
import pytest
import torch

from conftest import DEVICES, DTYPES, dtype_id
from families import family_variants
from reference.sgd import run_and_compare

# Sizes include 1, odd sizes, an empty tensor, and one large enough to be split across threads.
SHAPES = [(1,), (7, 3), (4097,), (0,), (33, 65), (70001,)]

FAMILY_STEPS = 12
# Per schedule, options every family takes, as functions of the family (its 1cycle peak sets the LRs).
FAMILY_SCHEDULES = {
    "one_cycle": {
        "defaults": lambda f: dict(max_lr=f.max_lr, total_steps=FAMILY_STEPS),
        "linear_decay_maximize": lambda f: dict(
            max_lr=f.max_lr, total_steps=FAMILY_STEPS, anneal_strategy="linear", pct_start=0.4, weight_decay=1e-2,
            maximize=True,
        ),
        "three_phase": lambda f: dict(max_lr=f.max_lr, total_steps=FAMILY_STEPS, three_phase=True, pct_start=0.25),
        "fixed_momentum": lambda f: dict(max_lr=f.max_lr, total_steps=FAMILY_STEPS, cycle_momentum=False),
        "factors": lambda f: dict(
            max_lr=f.max_lr, total_steps=FAMILY_STEPS, div_factor=10.0, final_div_factor=100.0, base_momentum=0.5,
            max_momentum=0.99,
        ),
    },
    "cyclic": {
        "triangular": lambda f: dict(base_lr=f.max_lr / 50, max_lr=f.max_lr, step_size_up=3),
        "triangular2_asym": lambda f: dict(
            base_lr=f.max_lr / 50, max_lr=f.max_lr, step_size_up=2, step_size_down=5, mode="triangular2"
        ),
        "exp_range_maximize": lambda f: dict(
            base_lr=f.max_lr / 50, max_lr=f.max_lr, step_size_up=4, mode="exp_range", gamma=0.9, maximize=True
        ),
        "momenta": lambda f: dict(
            base_lr=f.max_lr / 50, max_lr=f.max_lr, step_size_up=3, base_momentum=0.5, max_momentum=0.95
        ),
    },
    "warm_restarts": {
        "constant_cycles": lambda f: dict(max_lr=f.max_lr, T_0=4),
        "growing_cycles": lambda f: dict(max_lr=f.max_lr, T_0=2, T_mult=2, eta_min=f.max_lr / 50),
    },
    "constant": {
        "defaults": lambda f: dict(lr=f.max_lr / 5),
        "decay_maximize": lambda f: dict(lr=f.max_lr / 5, weight_decay=0.1, maximize=True),
    },
    "warmup_cosine": {
        "warmup": lambda f: dict(lr=f.max_lr, total_steps=FAMILY_STEPS, warmup_steps=3),
        "cosine_only_eta_min": lambda f: dict(lr=f.max_lr, total_steps=FAMILY_STEPS, eta_min=f.max_lr / 50),
    },
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("family, options", family_variants())
@pytest.mark.parametrize(
    "kind, case", [pytest.param(k, c, id=f"{k}-{name}") for k, cases in FAMILY_SCHEDULES.items() for name, c in cases.items()]
)
def test_every_family_matches_torch(kind, case, family, options, dtype, device):
    """Params, state (and per-param counts) after every step, the shown lr and momentum before and
    after each: float32/float64 within the family's tolerance, float16/bfloat16 by the 2x rule."""
    family.reference.run_and_compare(
        kind, [{"shapes": SHAPES}], dtype, device, FAMILY_STEPS, **case(family), **options
    )


# --- SGD's own options: nesterov, dampening, no momentum ------------------------------------------

ONE_CYCLE_OPTIONS = {
    "nesterov_decay": dict(nesterov=True, weight_decay=1e-2),
    "dampening": dict(dampening=0.3, weight_decay=1e-3),
    "maximize": dict(maximize=True, weight_decay=1e-2),
    "linear": dict(anneal_strategy="linear", pct_start=0.4),
    "fixed_momentum": dict(cycle_momentum=False, momentum=0.8, nesterov=True),
    "no_momentum": dict(cycle_momentum=False, momentum=0.0, weight_decay=1e-2),
    "zero_base_momentum": dict(base_momentum=0.0, max_momentum=0.9, dampening=0.5),
}

CYCLIC_OPTIONS = {
    "triangular": dict(base_lr=0.01, max_lr=0.3, step_size_up=3),
    "triangular2_asym": dict(base_lr=0.01, max_lr=0.3, step_size_up=2, step_size_down=5, mode="triangular2"),
    "exp_range": dict(base_lr=0.01, max_lr=0.3, step_size_up=4, mode="exp_range", gamma=0.9),
    "nesterov_decay": dict(base_lr=0.01, max_lr=0.3, step_size_up=3, nesterov=True, weight_decay=1e-2),
    "fixed_momentum_dampening": dict(
        base_lr=0.05, max_lr=0.2, step_size_up=3, cycle_momentum=False, momentum=0.7, dampening=0.2
    ),
}

WARM_RESTARTS_OPTIONS = {
    "constant_cycles": dict(max_lr=0.3, T_0=4),
    "growing_cycles": dict(max_lr=0.3, T_0=2, T_mult=2, eta_min=0.01),
    "nesterov_decay": dict(max_lr=0.2, T_0=3, T_mult=3, nesterov=True, weight_decay=1e-2),
    "dampening_no_momentum_maximize": dict(max_lr=0.2, T_0=5, momentum=0.0, maximize=True, weight_decay=1e-3),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", ONE_CYCLE_OPTIONS.values(), ids=ONE_CYCLE_OPTIONS.keys())
def test_one_cycle_matches_torch(options, dtype, device):
    total = 12
    run_and_compare("one_cycle", [{"shapes": SHAPES}], dtype, device, total, max_lr=0.5, total_steps=total, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", CYCLIC_OPTIONS.values(), ids=CYCLIC_OPTIONS.keys())
def test_cyclic_matches_torch(options, dtype, device):
    run_and_compare("cyclic", [{"shapes": SHAPES}], dtype, device, 17, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", WARM_RESTARTS_OPTIONS.values(), ids=WARM_RESTARTS_OPTIONS.keys())
def test_warm_restarts_match_torch(options, dtype, device):
    """Including the restart steps and cycles that grow (T_mult > 1)."""
    run_and_compare("warm_restarts", [{"shapes": SHAPES}], dtype, device, 16, **options)


@pytest.mark.parametrize("device", DEVICES)
def test_warm_restarts_groups_with_their_own_values(device):
    groups = [{"shapes": [(5, 5), (300,)]}, {"shapes": [(7,)], "weight_decay": 0.0}]
    run_and_compare("warm_restarts", groups, torch.float32, device, 9, max_lr=[0.1, 0.3], T_0=2, T_mult=2,
                    eta_min=0.001, weight_decay=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_groups_with_their_own_values(device):
    """Per-group max_lr / momenta from lists, and per-group weight decay and nesterov in the dicts."""
    groups = [
        {"shapes": [(5, 5), (300,)]},
        {"shapes": [(5,)], "weight_decay": 0.0},
        {"shapes": [(9, 2), (1,)], "nesterov": True, "dampening": 0.0},
    ]
    run_and_compare(
        "one_cycle",
        groups,
        torch.float32,
        device,
        10,
        max_lr=[0.1, 0.2, 0.4],
        base_momentum=[0.8, 0.85, 0.7],
        max_momentum=[0.9, 0.95, 0.99],
        total_steps=10,
        weight_decay=5e-4,
        dampening=0.1,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["one_cycle", "cyclic"])
def test_params_without_grads(kind, device):
    """A param with no grad is left alone, and its buffer starts when its first grad comes."""
    kwargs = dict(max_lr=0.3, total_steps=9) if kind == "one_cycle" else dict(base_lr=0.01, max_lr=0.3, step_size_up=2)
    run_and_compare(
        kind,
        [{"shapes": [(11,), (6, 6), (3,)]}, {"shapes": [(4,)]}],
        torch.float32,
        device,
        9,
        skips=lambda step: {0, 3} if step < 3 else ({1} if step % 2 else ()),
        dampening=0.25,
        **kwargs,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_dtypes_in_one_step(device):
    """float32, float64 and bfloat16 params in one optimizer step, compared with torch; the bfloat16
    one by the low-precision rule: at most twice torch's distance from a float32 run (+ one ulp)."""
    import lrfused
    from reference.sgd import step_both, torch_one_cycle

    dtypes = (torch.float32, torch.float64, torch.bfloat16)
    fused_params = [torch.randn(129, dtype=d, device=device) for d in dtypes]
    torch_params = [p.clone() for p in fused_params]
    exact = fused_params[2].float()  # the bfloat16 param, stepped in float32 with the same grads
    kwargs = dict(max_lr=0.2, total_steps=5, weight_decay=1e-2)
    fused = lrfused.FusedOneCycleSGD(fused_params, **kwargs)
    ref, sched = torch_one_cycle(torch_params, **kwargs)
    exact_opt, exact_sched = torch_one_cycle([exact], **kwargs)
    for step in range(5):
        step_both(fused, ref, sched, fused_params, torch_params)
        exact.grad = fused_params[2].grad.float()
        exact_opt.step()
        exact_sched.step()
        for f, r in zip(fused_params[:2], torch_params[:2]):
            torch.testing.assert_close(f, r)
        fused_error = (fused_params[2].float() - exact).abs().max().item()
        torch_error = (torch_params[2].float() - exact).abs().max().item()
        slack = torch.finfo(torch.bfloat16).eps * max(exact.abs().max().item(), 1.0)
        assert fused_error <= 2 * torch_error + slack, (step, fused_error, torch_error)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_dense_params(device):
    """A transposed (permuted, dense) param and a grad of other strides are updated element by element."""
    import lrfused
    from reference.sgd import torch_one_cycle

    base = torch.randn(6, 10, device=device)
    fused_p = base.clone().t()
    torch_p = base.clone().t()
    fused = lrfused.FusedOneCycleSGD([fused_p], max_lr=0.3, total_steps=4, weight_decay=1e-2)
    ref, sched = torch_one_cycle([torch_p], max_lr=0.3, total_steps=4, weight_decay=1e-2)
    for step in range(4):
        # Even steps: a grad with the param's strides; odd steps: a contiguous one.
        grad = torch.randn(10, 6, device=device) if step % 2 else torch.randn(6, 10, device=device).t()
        fused_p.grad = grad.clone(memory_format=torch.preserve_format)
        torch_p.grad = grad.clone(memory_format=torch.preserve_format)
        fused.step()
        ref.step()
        sched.step()
        torch.testing.assert_close(fused_p, torch_p)


@pytest.mark.parametrize("device", DEVICES)
def test_many_params_some_with_grads_of_other_strides(device):
    """Past the count where params are checked in parallel (hundreds), with every seventh grad
    of other strides than its (transposed) param: still equal to torch, step by step."""
    import lrfused
    from reference.sgd import step_both, torch_one_cycle

    torch.manual_seed(0)
    shapes = [(3, 5) if i % 7 == 0 else (i % 11 + 1,) for i in range(900)]
    fused_params = [torch.randn(s, device=device).t() if len(s) == 2 else torch.randn(s, device=device) for s in shapes]
    torch_params = [p.clone(memory_format=torch.preserve_format) for p in fused_params]
    fused = lrfused.FusedOneCycleSGD(fused_params, max_lr=0.3, total_steps=3, weight_decay=1e-2)
    ref, sched = torch_one_cycle(torch_params, max_lr=0.3, total_steps=3, weight_decay=1e-2)
    for _ in range(3):
        # contiguous grads: other strides than a transposed param
        step_both(fused, ref, sched, fused_params, torch_params, lambda f: torch.randn(f.shape, device=device))
        for f, r in zip(fused_params, torch_params):
            torch.testing.assert_close(f, r)

"""lrfused.FusedAdamW / FusedOneCycleAdamW (issue #16) against torch.optim.AdamW(foreach=False) driven by
torch's schedulers, compared after every step: params, exp_avg, exp_avg_sq, max_exp_avg_sq, each
param's step, and the lr / betas the groups show; what is AdamW's own: amsgrad, the cycled beta1, the
per-param step (its forms in torch's state dicts, a skipped step). The concerns every family shares
run from families.py (see the end of this file)."""
import copy

import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

import lrfused
from conftest import DEVICES, DTYPES, dtype_id
from reference.adamw import TOLERANCES, assert_states_match, run_and_compare

F32 = TOLERANCES[torch.float32]
STEPS = 12
# Sizes include 1, odd sizes, an empty tensor, and one large enough to be split across threads.
SHAPES = [(1,), (7, 3), (4097,), (0,), (33, 65), (70001,)]

CONSTANT_OPTIONS = {
    "no_decay": dict(lr=1e-2, weight_decay=0.0),
    "amsgrad": dict(lr=1e-2, amsgrad=True),
    "maximize_amsgrad_decay": dict(lr=5e-3, maximize=True, amsgrad=True, weight_decay=0.1),
    "betas_eps": dict(lr=2e-2, betas=(0.8, 0.99), eps=1e-6),
    "zero_beta1": dict(lr=1e-2, betas=(0.0, 0.9)),
}

ONE_CYCLE_OPTIONS = {
    "amsgrad_maximize": dict(amsgrad=True, maximize=True),
    "linear_no_decay": dict(anneal_strategy="linear", pct_start=0.4, weight_decay=0.0),
    "fixed_beta1": dict(cycle_momentum=False, betas=(0.8, 0.99)),
    "factors": dict(div_factor=10.0, final_div_factor=100.0, base_momentum=0.5, max_momentum=0.99, eps=1e-6),
}

CYCLIC_OPTIONS = {
    "exp_range_maximize_no_decay": dict(
        base_lr=1e-3, max_lr=0.05, step_size_up=4, mode="exp_range", gamma=0.9, maximize=True, weight_decay=0.0
    ),
    "fixed_beta1": dict(base_lr=1e-3, max_lr=0.05, step_size_up=3, cycle_momentum=False, betas=(0.85, 0.99)),
}

WARMUP_COSINE_OPTIONS = {
    "cosine_only_amsgrad_maximize": dict(lr=0.05, total_steps=STEPS, eta_min=1e-3, amsgrad=True, maximize=True),
}


# --- 1 and 2: every schedule with AdamW's own options (amsgrad, betas, eps), float32/float64 within
# tolerance, float16/bfloat16 by the 2x rule (options every family takes: test_numerics.py) -------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", CONSTANT_OPTIONS.values(), ids=CONSTANT_OPTIONS.keys())
def test_constant_matches_torch(options, dtype, device):
    run_and_compare("constant", [{"shapes": SHAPES}], dtype, device, STEPS, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", ONE_CYCLE_OPTIONS.values(), ids=ONE_CYCLE_OPTIONS.keys())
def test_one_cycle_matches_torch_over_the_whole_schedule(options, dtype, device):
    run_and_compare("one_cycle", [{"shapes": SHAPES}], dtype, device, STEPS, max_lr=0.05, total_steps=STEPS, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", [{}, dict(three_phase=True, pct_start=0.25, amsgrad=True)],
                         ids=["defaults", "three_phase_amsgrad"])
def test_one_cycle_through_the_schedule_argument(options, device):
    """FusedAdamW(schedule=OneCycle(...)) is FusedOneCycleAdamW."""
    run_and_compare(
        "one_cycle_schedule", [{"shapes": SHAPES}], torch.float32, device, STEPS,
        max_lr=0.05, total_steps=STEPS, **options,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", CYCLIC_OPTIONS.values(), ids=CYCLIC_OPTIONS.keys())
def test_cyclic_matches_torch(options, dtype, device):
    """cycle_momentum=True cycles beta1 (CyclicLR writes group['betas'] for an optimizer with betas)."""
    run_and_compare("cyclic", [{"shapes": SHAPES}], dtype, device, STEPS, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", WARMUP_COSINE_OPTIONS.values(), ids=WARMUP_COSINE_OPTIONS.keys())
def test_warmup_cosine_matches_torch(options, dtype, device):
    run_and_compare("warmup_cosine", [{"shapes": SHAPES}], dtype, device, STEPS, **options)


GROUPS = [
    {"shapes": [(5, 5), (300,)]},
    {"shapes": [(5,)], "weight_decay": 0.0, "betas": (0.8, 0.99), "eps": 1e-6},
    {"shapes": [(9, 2), (1,)], "amsgrad": True, "weight_decay": 0.1, "maximize": True},
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_constant_groups_with_their_own_values(dtype, device):
    groups = [{**spec, "lr": lr} for spec, lr in zip(GROUPS, (1e-2, 3e-2, 5e-3))]
    run_and_compare("constant", groups, dtype, device, 8, betas=(0.9, 0.95), eps=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_one_cycle_groups_with_their_own_values(dtype, device):
    """Per-group max_lr / momenta from lists; the cycled beta1 keeps each group's own beta2."""
    run_and_compare(
        "one_cycle", GROUPS, dtype, device, 10,
        max_lr=[0.01, 0.02, 0.05], base_momentum=[0.8, 0.85, 0.7], max_momentum=[0.9, 0.95, 0.99],
        total_steps=10, weight_decay=5e-4,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_cyclic_groups_with_their_own_values(device):
    run_and_compare("cyclic", GROUPS, torch.float32, device, 9, base_lr=[1e-3, 2e-3, 5e-4], max_lr=[0.02, 0.05, 0.01],
                    step_size_up=2, mode="triangular2")


# --- 3: params without a grad at some steps keep their own step -----------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("kind", ["constant", "one_cycle", "cyclic"])
def test_params_without_grads_keep_their_own_step(kind, dtype, device):
    """Params with no grad are skipped and their step does not advance (the bias corrections use each
    param's own step), while the schedule follows the optimizer's counter."""
    kwargs = {
        "constant": dict(lr=1e-2, amsgrad=True),
        "one_cycle": dict(max_lr=0.05, total_steps=9, amsgrad=True),
        "cyclic": dict(base_lr=1e-3, max_lr=0.05, step_size_up=2),
    }[kind]
    runs = run_and_compare(
        kind,
        [{"shapes": [(11,), (6, 6), (3,)]}, {"shapes": [(4,), (130,)]}],
        dtype,
        device,
        9,
        skips=lambda step: {0, 3} if step < 3 else ({1, 4} if step % 2 else ()),
        **kwargs,
    )
    steps = [float(runs.fused.state[p]["step"]) for g in runs.fused_params for p in g]
    assert steps == [6.0, 6.0, 9.0, 6.0, 6.0], steps  # and equal to torch's, checked at every step
    assert runs.fused.schedule_step == 9


# --- 4: the values groups show ----------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cycle_momentum", [True, False], ids=["cycled_beta1", "fixed_beta1"])
def test_shown_lr_and_betas_follow_one_cycle_lr(cycle_momentum, device):
    """group['lr'] and group['betas'] show the next step's values, before the first step too, as
    OneCycleLR leaves them on torch's AdamW (beta1 = the cycled momentum, beta2 the group's)."""
    p = torch.randn(10, device=device)
    q = p.clone()
    kwargs = dict(max_lr=0.05, total_steps=8, cycle_momentum=cycle_momentum, base_momentum=0.6, max_momentum=0.97)
    fused = lrfused.FusedOneCycleAdamW([p], betas=(0.9, 0.98), **kwargs)
    ref = torch.optim.AdamW([q], lr=0.1, betas=(0.9, 0.98), foreach=False)
    sched = OneCycleLR(ref, **kwargs)
    shown = lambda opt: (opt.param_groups[0]["lr"], tuple(opt.param_groups[0]["betas"]))  # noqa: E731
    assert shown(fused) == shown(ref)
    seen = set()
    for step in range(8):
        p.grad = torch.randn_like(p)
        q.grad = p.grad.clone()
        fused.step()
        ref.step()
        sched.step()
        assert shown(fused) == shown(ref), step
        assert fused.param_groups[0]["lr"] == sched.get_last_lr()[0]
        seen.add(shown(ref)[1][0])
        torch.testing.assert_close(p, q, **F32)
    assert (len(seen) > 1) == cycle_momentum  # the test would notice a beta1 that does not move


# --- 5: torch.optim.AdamW's state dicts, with each form of the per-param step ---------------------

RESUME_SHAPES = [(33,), (4, 5), (1,), (0,)]
RESUME_KWARGS = dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-2, amsgrad=True)


def _grads(step, device):
    generator = torch.Generator().manual_seed(1000 + step)
    grads = [torch.randn(s, generator=generator).to(device) for s in RESUME_SHAPES]
    if step < 3:
        grads[1] = None  # param 1 starts later: its step lags behind
    if step == 6:
        grads[2] = None
    return grads


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()


# How torch keeps a param's step: a float32 CPU tensor (today), a float64 one (under a float64 default
# dtype) or a number (torch < 1.12 checkpoints).
SAVED_STEPS = {"float32_tensor": lambda t: t, "float64_tensor": lambda t: t.double(), "number": lambda t: t.item()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("saved_step", SAVED_STEPS.values(), ids=SAVED_STEPS.keys())
def test_torch_adamw_state_dict_resumes_in_fused_adamw(saved_step, device):
    """torch AdamW for 5 steps, its state dict loaded into FusedAdamW, which continues as the
    uninterrupted torch run does (per-param steps, amsgrad's max_exp_avg_sq and all)."""
    torch_params = [torch.randn(s, device=device) for s in RESUME_SHAPES]
    ref = torch.optim.AdamW(torch_params, foreach=False, **RESUME_KWARGS)
    for step in range(5):
        _set_grads(torch_params, _grads(step, device))
        ref.step()
    fused_params = [p.clone() for p in torch_params]
    fused = lrfused.FusedAdamW(fused_params, **RESUME_KWARGS)
    saved = copy.deepcopy(ref.state_dict())
    for state in saved["state"].values():
        state["step"] = saved_step(state["step"])
    fused.load_state_dict(saved)
    for p, q in zip(fused_params, torch_params):  # as the fused kernel keeps it
        step = fused.state[p]["step"]
        assert (step.dtype, step.device, step.item()) == (torch.float32, p.device, ref.state[q]["step"].item())
    assert_states_match(fused, ref, fused_params, torch_params, "after loading", **F32)
    for step in range(5, 10):
        grads = _grads(step, device)
        _set_grads(torch_params, grads)
        _set_grads(fused_params, grads)
        ref.step()
        fused.step()
        assert_states_match(fused, ref, fused_params, torch_params, step, **F32)


# --- 6: a skipped step (found_inf), beside torch's fused AdamW ----------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("count_skipped_steps", [True, False], ids=["skips_counted", "skips_not_counted"])
def test_a_skipped_step_changes_nothing_but_the_schedule_counter(count_skipped_steps, device):
    """found_inf != 0: params, exp_avg, exp_avg_sq, max_exp_avg_sq and each param's step bit-identical
    (as torch.optim.AdamW(fused=True) leaves them, checked beside it), the schedule counter as asked;
    the next real step then matches torch's fused AdamW. (The schedule itself under skips: the
    GradScaler test above.)"""
    start = [torch.randn(33, device=device), torch.randn(4, 5, device=device)]
    params, torch_params = [p.clone() for p in start], [p.clone() for p in start]
    opt = lrfused.FusedAdamW(params, lr=1e-2, amsgrad=True, count_skipped_steps=count_skipped_steps)
    ref = torch.optim.AdamW(torch_params, lr=1e-2, amsgrad=True, fused=True)

    def step_both(grads, found_inf):
        for run, opt_ in ((params, opt), (torch_params, ref)):
            for p, g in zip(run, grads):
                p.grad = None if g is None else g * 4.0
            opt_.grad_scale = torch.tensor(4.0, device=device)
            opt_.found_inf = torch.tensor(float(found_inf), device=device)
            opt_.step()
            del opt_.grad_scale, opt_.found_inf

    step_both([torch.randn_like(p) for p in params], found_inf=False)  # the state exists now
    extra = torch.randn(7, device=device)
    torch_extra = extra.clone()
    opt.add_param_group({"params": [extra]})
    ref.add_param_group({"params": [torch_extra]})
    params.append(extra)
    torch_params.append(torch_extra)
    before = copy.deepcopy((params, {id(p): dict(s) for p, s in opt.state.items()}))
    step_both([torch.full_like(params[0], 3.0), None, torch.ones_like(extra)], found_inf=True)
    for p, q in zip(params, before[0]):
        assert torch.equal(p, q)
    for p, state in opt.state.items():
        if p is extra:
            continue
        assert state.keys() == before[1][id(p)].keys()
        for key, value in state.items():
            assert torch.equal(value, before[1][id(p)][key]), key
    assert opt.schedule_step == (2 if count_skipped_steps else 1)
    assert_states_match(opt, ref, params, torch_params, "skipped", **F32)  # torch's fused AdamW: the same
    step_both([torch.randn_like(p) for p in params], found_inf=False)
    assert_states_match(opt, ref, params, torch_params, "after the skip", **F32)
    assert [float(opt.state[p]["step"]) for p in params] == [2.0, 2.0, 1.0]
    assert opt.schedule_step == (3 if count_skipped_steps else 2)


# --- Elsewhere, for every family (families.py): GradScaler step for step and master weights
# (test_amp.py), bad arguments, bad group values and sparse grads (test_bad_input.py), complex params
# (test_torch_compat.py), state dicts into torch's AdamW, the 1cycle resume and hold_final_lr
# (test_state_dicts.py), torch.compile (test_compile.py); DDP and DTensor / FSDP2 params
# (test_distributed.py).

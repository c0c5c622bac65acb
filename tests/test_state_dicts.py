"""State dicts for every family (families.py): lrfused's loaded into torch's optimizer and torch's into
lrfused's, each then continuing as the uninterrupted run does; a 1cycle run saved mid-schedule and
resumed bit for bit. (One family's own state: its file, e.g. AdamW's per-param step forms.)"""
import copy

import pytest
import torch

from conftest import DEVICES
from families import family_variants, families

RESUME_SHAPES = [(33,), (4, 5), (1,), (0,)]


def grads_at(step, device):
    generator = torch.Generator().manual_seed(1000 + step)
    grads = [torch.randn(s, generator=generator).to(device) for s in RESUME_SHAPES]
    if step < 3:
        grads[1] = None  # param 1 starts later: its state (and any per-param count) lags behind
    if step == 6:
        grads[2] = None
    return grads


def set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.to(p.dtype, copy=True)


def step_side_by_side(runs, step, device):
    """runs: (optimizer, params) pairs, each given the same grads of this step."""
    grads = grads_at(step, device)
    for opt, params in runs:
        set_grads(params, grads)
        opt.step()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", families())
def test_torch_state_dict_resumes_in_fused(family, device):
    """torch's optimizer for 5 steps, its state dict loaded into lrfused's, which continues as the
    uninterrupted torch run does (its state, per-param counts and all)."""
    kwargs = dict(lr=1e-2, **family.custom)
    torch_params = [torch.randn(s, device=device) for s in RESUME_SHAPES]
    ref = family.make_torch(torch_params, **kwargs)
    for step in range(5):
        step_side_by_side([(ref, torch_params)], step, device)
    fused_params = [p.clone() for p in torch_params]
    fused = family.fused(fused_params, **kwargs)
    fused.load_state_dict(copy.deepcopy(ref.state_dict()))
    family.reference.assert_states_match(fused, ref, fused_params, torch_params, "after loading", **family.tolerance())
    for step in range(5, 10):
        step_side_by_side([(ref, torch_params), (fused, fused_params)], step, device)
        family.reference.assert_states_match(fused, ref, fused_params, torch_params, step, **family.tolerance())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", families())
def test_fused_state_dict_resumes_in_torch(family, device):
    """lrfused's optimizer for 5 steps (beside torch's), its state dict loaded into torch's optimizer,
    which then continues as the uninterrupted torch run does."""
    kwargs = dict(lr=1e-2, **family.custom)
    start = [torch.randn(s, device=device) for s in RESUME_SHAPES]
    fused_params, torch_params = [p.clone() for p in start], [p.clone() for p in start]
    fused = family.fused(fused_params, **kwargs)
    ref = family.make_torch(torch_params, **kwargs)
    for step in range(5):
        step_side_by_side([(fused, fused_params), (ref, torch_params)], step, device)
    resumed_params = [p.clone() for p in fused_params]
    resumed = family.make_torch(resumed_params, **kwargs)
    resumed.load_state_dict(copy.deepcopy(fused.state_dict()))
    tolerance = family.tolerance()
    for step in range(5, 10):
        step_side_by_side([(ref, torch_params), (resumed, resumed_params)], step, device)
        for i, (r, q) in enumerate(zip(resumed_params, torch_params)):
            torch.testing.assert_close(r, q, **tolerance, msg=lambda m: f"step {step}, param {i}: {m}")
            if q not in ref.state:
                continue
            if family.count_key is not None:
                assert float(resumed.state[r][family.count_key]) == float(ref.state[q][family.count_key])
            for key in family.state_keys:
                assert (key in resumed.state[r]) == (key in ref.state[q]), (step, i, key)
                if key in ref.state[q]:
                    torch.testing.assert_close(resumed.state[r][key], ref.state[q][key], **tolerance)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family, options", family_variants())
def test_one_cycle_state_dict_resume_is_exact(family, options, device):
    """Saved mid-schedule and loaded into a new 1cycle drop-in: bit-identical to the uninterrupted run,
    the schedule's counter and the shown lr / momentum included."""
    kwargs = dict(max_lr=family.max_lr, total_steps=10, weight_decay=1e-2, **options)
    params = [torch.randn(s, device=device) for s in RESUME_SHAPES]
    opt = family.one_cycle(params, **kwargs)
    for step in range(4):
        step_side_by_side([(opt, params)], step, device)
    resumed_params = [p.clone() for p in params]
    resumed = family.one_cycle(resumed_params, **kwargs)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert resumed.schedule_step == opt.schedule_step == 4
    for step in range(4, 10):
        step_side_by_side([(opt, params), (resumed, resumed_params)], step, device)
        assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        assert family.shown(resumed.param_groups[0]) == family.shown(opt.param_groups[0])
        for p, q in zip(params, resumed_params):
            assert torch.equal(p, q), f"step {step}: the resumed run left the uninterrupted one"
            if p in opt.state:
                for key, value in opt.state[p].items():
                    assert torch.equal(resumed.state[q][key], value), (step, key)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", families())
def test_hold_final_lr(family, device):
    """The step after the last raises as OneCycleLR does (nothing changed), unless hold_final_lr=True:
    then the last lr and momentum hold (and a per-param count still counts)."""
    options = list(family.variants.values())[0]
    p, q = torch.randn(6, device=device), torch.randn(6, device=device)
    ending = family.one_cycle([p], max_lr=family.max_lr, total_steps=3, **options)
    held = family.one_cycle([q], max_lr=family.max_lr, total_steps=3, hold_final_lr=True, **options)
    for _ in range(3):
        p.grad, q.grad = torch.randn_like(p), torch.randn_like(q)
        ending.step()
        held.step()
    before = (p.clone(), {k: v.clone() for k, v in ending.state[p].items()})
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        ending.step()
    assert torch.equal(p, before[0]) and ending.schedule_step == 3
    assert all(torch.equal(v, before[1][k]) for k, v in ending.state[p].items())
    shown = family.shown(held.param_groups[0])
    held.step()
    assert family.shown(held.param_groups[0]) == shown
    if family.count_key is not None:
        assert float(held.state[q][family.count_key]) == 4


@pytest.mark.parametrize("family, options", family_variants())
def test_torch_state_of_low_precision_params_becomes_float32_under_master_weights(family, options):
    """torch's optimizer on bfloat16 params keeps bfloat16 state; loaded into lrfused with master
    weights, the state is kept in float32 beside the float32 master copy from the next step on."""
    params = [torch.randn(s).to(torch.bfloat16) for s in RESUME_SHAPES]
    ref = family.make_torch(params, lr=1e-2, **options)
    for step in range(3):
        step_side_by_side([(ref, params)], step, "cpu")
    fused_params = [p.clone() for p in params]
    fused = family.fused(fused_params, lr=1e-2, master_weights=True, **options)
    fused.load_state_dict(copy.deepcopy(ref.state_dict()))
    step_side_by_side([(fused, fused_params)], 3, "cpu")
    for i, p in enumerate(fused_params):
        state = fused.state[p]
        assert state["master_param"].dtype == torch.float32, i
        for key in family.state_keys:
            if key in state:
                assert state[key].dtype == torch.float32, (i, key)
        assert torch.equal(p, state["master_param"].to(p.dtype)), i


@pytest.mark.parametrize("family, options", family_variants())
def test_state_dict_is_plain_dicts_for_weights_only_loading(family, options, tmp_path):
    params = [torch.randn(7) for _ in range(3)]
    kwargs = dict(max_lr=family.max_lr, total_steps=20, cycle_momentum=False, weight_decay=1e-2, **options)
    opt = family.one_cycle(params, **kwargs)
    for p in params:
        p.grad = torch.randn(7)
    opt.step()
    path = tmp_path / "opt.pt"
    torch.save(opt.state_dict(), path)
    loaded = torch.load(path, weights_only=True)
    assert type(loaded["state"][0]) is dict
    fresh = family.one_cycle([p.clone() for p in params], **kwargs)
    fresh.load_state_dict(loaded)
    for p, q in zip(params, fresh.param_groups[0]["params"]):
        assert fresh.state[q].keys() == opt.state[p].keys()
        for key, value in opt.state[p].items():
            assert torch.equal(fresh.state[q][key], value), key

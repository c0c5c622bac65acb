"""torch.amp.GradScaler drives lrfused through the fused-optimizer contract (grad_scale and found_inf
read in the kernel), and float32 master weights for float16 / bfloat16 params."""
import copy

import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

import lrfused
from conftest import DEVICES
from families import assert_master_state_matches, family_variants

STEPS = 12
INF_STEPS = (0, 4, 5, 9)  # the first step too: the buffers' first write must wait for a real step


def _model(device):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(device)


def _batch(step, device):
    generator = torch.Generator().manual_seed(step)
    x = torch.randn(8, 6, generator=generator)
    if step in INF_STEPS:
        x[0, 0] = float("inf")  # overflows the (scaled) grads, as fp16 activations do
    return x.to(device), torch.randn(8, 3, generator=generator).to(device)


def _scaler(device):
    # growth_interval 3: the scale grows and backs off within the run
    return torch.amp.GradScaler(device, init_scale=2.0**10, growth_interval=3)


def _train_step(model, opt, scaler, step, device):
    x, y = _batch(step, device)
    opt.zero_grad()
    scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
    scale_before = scaler.get_scale()
    scaler.step(opt)
    scaler.update()
    return scaler.get_scale() < scale_before  # the step was skipped


# torch warns when the reference's first optimizer step was skipped by the scaler: expected here.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("count_skipped_steps", [True, False], ids=["skips_counted", "skips_not_counted"])
@pytest.mark.parametrize("family, options", family_variants())
def test_grad_scaler_matches_torch_step_for_step(family, options, count_skipped_steps, device):
    """Each family's 1cycle drop-in + GradScaler against torch's optimizer + OneCycleLR: torch's
    optimizer is not stepped on a skipped step (its state untouched), its scheduler after every step
    or only after real ones; the params, the state, the counter and the shown lr / momentum follow."""
    assert family.one_cycle._step_supports_amp_scaling
    fused_model, torch_model = _model(device), _model(device)
    kwargs = dict(max_lr=family.max_lr, total_steps=STEPS, weight_decay=1e-3, **options)
    fused = family.one_cycle(fused_model.parameters(), count_skipped_steps=count_skipped_steps, **kwargs)
    ref, sched = family.reference.torch_one_cycle(list(torch_model.parameters()), **kwargs)
    fused_scaler, torch_scaler = _scaler(device), _scaler(device)
    skipped = 0
    for step in range(STEPS):
        fused_skipped = _train_step(fused_model, fused, fused_scaler, step, device)
        torch_skipped = _train_step(torch_model, ref, torch_scaler, step, device)
        assert fused_skipped == torch_skipped == (step in INF_STEPS)
        if count_skipped_steps or not torch_skipped:
            sched.step()
        skipped += torch_skipped
        assert fused_scaler.get_scale() == torch_scaler.get_scale()
        assert fused.get_last_lr() == sched.get_last_lr()
        assert fused.param_groups[0]["lr"] == sched.get_last_lr()[0]
        assert family.shown(fused.param_groups[0]) == family.shown(ref.param_groups[0]), step
        assert fused.schedule_step == (step + 1 if count_skipped_steps else step + 1 - skipped)
        family.reference.assert_states_match(
            fused, ref, list(fused_model.parameters()), list(torch_model.parameters()), step, **family.tolerance()
        )


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("device", DEVICES)
def test_resuming_buffers_a_skipped_first_step_made_matches_the_uninterrupted_run(device):
    """Step 0 is skipped by the scaler, so its buffers exist but were never written. Saved there and
    resumed, the first real step must still start them as a copy of the grad (with dampening that is
    not what a buffer written before would give): resumed == uninterrupted == torch."""
    kwargs = dict(max_lr=0.5, total_steps=STEPS, cycle_momentum=False, momentum=0.9, dampening=0.3)
    model, torch_model = _model(device), _model(device)
    opt = lrfused.FusedOneCycleSGD(model.parameters(), **kwargs)
    ref = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, dampening=0.3, foreach=False)
    sched = OneCycleLR(ref, max_lr=0.5, total_steps=STEPS, cycle_momentum=False)
    scaler, torch_scaler = _scaler(device), _scaler(device)
    assert _train_step(model, opt, scaler, 0, device) and _train_step(torch_model, ref, torch_scaler, 0, device)
    sched.step()
    assert all(p in opt.state for p in model.parameters())  # made by the skipped step
    resumed_model = copy.deepcopy(model)
    resumed = lrfused.FusedOneCycleSGD(resumed_model.parameters(), **kwargs)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    resumed_scaler = _scaler(device)
    resumed_scaler.load_state_dict(scaler.state_dict())
    for step in range(1, 4):
        _train_step(model, opt, scaler, step, device)
        _train_step(resumed_model, resumed, resumed_scaler, step, device)
        _train_step(torch_model, ref, torch_scaler, step, device)
        sched.step()
        for p, q, r in zip(model.parameters(), resumed_model.parameters(), torch_model.parameters()):
            assert torch.equal(q, p), f"step {step}: the resumed run left the uninterrupted one"
            torch.testing.assert_close(p, r, msg=lambda m: f"step {step}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("count_skipped_steps", [True, False])
def test_a_skipped_step_changes_nothing_but_the_counter(count_skipped_steps, device):
    """found_inf != 0: params, buffers and first-step flags bit-identical; the counter as asked."""
    params = [torch.randn(33, device=device), torch.randn(4, 5, device=device)]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.3, total_steps=10, count_skipped_steps=count_skipped_steps)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()  # buffers exist now
    params[1].grad = None
    extra = torch.randn(7, device=device, requires_grad=True)
    opt.add_param_group({"params": [extra]})
    extra.grad = torch.randn_like(extra)
    for p in params:
        p.grad = torch.full_like(p, 3.0)
    before = copy.deepcopy((params, {id(p): dict(s) for p, s in opt.state.items()}))
    opt.grad_scale = torch.tensor(4.0, device=device)
    opt.found_inf = torch.tensor(1.0, device=device)
    opt.step()
    del opt.grad_scale, opt.found_inf
    for p, q in zip(params, before[0]):
        assert torch.equal(p, q)
    for p, state in opt.state.items():
        if p is extra:
            continue
        for key, value in state.items():
            assert torch.equal(value, before[1][id(p)][key]), key
    # The new param's state, made for this step, is still unwritten.
    assert int(opt.state[extra]["momentum_first_step"]) == lrfused._C.NEVER_WRITTEN
    assert opt.schedule_step == (2 if count_skipped_steps else 1)
    assert int(opt._step) == opt.schedule_step


@pytest.mark.parametrize("device", DEVICES)
def test_grad_scale_divides_the_grads(device):
    """A scaled grad with grad_scale gives the unscaled grad's update (float32 inverse, as unscale_)."""
    p, q = torch.randn(100, device=device), None
    q = p.clone()
    a = lrfused.FusedSGD([p], lr=0.1, momentum=0.9)
    b = lrfused.FusedSGD([q], lr=0.1, momentum=0.9)
    for _ in range(3):
        grad = torch.randn(100, device=device)
        p.grad, q.grad = grad * 1024.0, grad.clone()
        a.grad_scale = torch.tensor(1024.0, device=device)
        a.found_inf = torch.tensor(0.0, device=device)
        a.step()
        b.step()
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("grad_scale", torch.tensor(2.0, dtype=torch.float64), "grad_scale must be a one-element float32 tensor"),
        ("found_inf", torch.zeros(2), "found_inf must be a one-element float32 tensor"),
    ],
)
def test_bad_scaler_tensors_are_refused_before_anything_changes(name, value, message):
    p = torch.randn(5)
    opt = lrfused.FusedOneCycleSGD([p], max_lr=0.1, total_steps=3)
    p.grad = torch.ones(5)
    before = p.clone()
    setattr(opt, name, value)
    with pytest.raises(RuntimeError, match=message):
        opt.step()
    assert torch.equal(p, before) and opt.schedule_step == 0 and int(opt._step) == 0


# --- master weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("family, options", family_variants())
def test_master_weights_match_float32_training(family, options, dtype, device):
    """A float32 master copy and float32 state follow torch's float32 optimizer + OneCycleLR on the
    same (low-precision) grads; the param is the master rounded."""
    shapes = [(1,), (7, 3), (4097,), (0,), (70001,)]
    masters = [torch.randn(s, device=device) for s in shapes]
    params = [m.to(dtype) for m in masters]
    ref_params = [p.float() for p in params]
    kwargs = dict(max_lr=family.max_lr, total_steps=8, weight_decay=1e-2, **options)
    fused = family.one_cycle(params, master_weights=True, **kwargs)
    ref, sched = family.reference.torch_one_cycle(ref_params, **kwargs)
    for step in range(8):
        for p, r in zip(params, ref_params):
            p.grad = torch.randn_like(p)
            r.grad = p.grad.float()
        fused.step()
        ref.step()
        sched.step()
        for i, (p, r) in enumerate(zip(params, ref_params)):
            where = f"step {step}, param {i}"
            state = fused.state[p]
            torch.testing.assert_close(state["master_param"], r, **family.tolerance(), msg=lambda m: f"{where}: {m}")
            assert_master_state_matches(family, state, ref.state[r], p, where)


def test_master_weights_keep_small_updates_that_bfloat16_loses():
    """An update far below one bfloat16 ulp accumulates in the master copy instead of vanishing."""
    plain, mastered = torch.ones(64, dtype=torch.bfloat16), torch.ones(64, dtype=torch.bfloat16)
    a = lrfused.FusedSGD([plain], lr=1e-4)
    b = lrfused.FusedSGD([mastered], lr=1e-4, master_weights=True)
    for _ in range(100):
        plain.grad = torch.ones(64, dtype=torch.bfloat16)
        mastered.grad = torch.ones(64, dtype=torch.bfloat16)
        a.step()
        b.step()
    assert torch.all(plain == 1.0)  # 1 - 1e-4 rounds back to 1 every time
    torch.testing.assert_close(b.state[mastered]["master_param"], torch.full((64,), 0.99), rtol=0, atol=1e-5)
    assert torch.all(mastered < 1.0)


def test_master_weights_state_dict_resume_is_exact():
    """float32 master copies and buffers (and int64 first-step flags) survive torch's loader, which
    casts state tensors to the param's dtype."""
    torch.manual_seed(3)
    params = [torch.randn(300, dtype=torch.bfloat16) for _ in range(2)]
    resumed_params = [p.clone() for p in params]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.3, total_steps=400, master_weights=True)
    grads = [[torch.randn(300, dtype=torch.bfloat16) for _ in params] for _ in range(300)]
    for step in range(290):
        for p, g in zip(params, grads[step]):
            p.grad = g
        if step < 259:
            params[1].grad = None  # first written at step 259, which bfloat16 cannot hold (-> 260)
        opt.step()
    resumed = lrfused.FusedOneCycleSGD(resumed_params, max_lr=0.3, total_steps=400, master_weights=True)
    for p, q in zip(params, resumed_params):
        q.copy_(p)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    for q, first in zip(resumed_params, (0, 259)):
        assert resumed.state[q]["master_param"].dtype == torch.float32
        assert resumed.state[q]["momentum_first_step"].dtype == torch.int64
        assert int(resumed.state[q]["momentum_first_step"]) == first
    for step in range(290, 300):
        for run in (params, resumed_params):
            for p, g in zip(run, grads[step]):
                p.grad = g.clone()
        opt.step()
        resumed.step()
        for p, q in zip(params, resumed_params):
            assert torch.equal(p, q)
            assert torch.equal(opt.state[p]["master_param"], resumed.state[q]["master_param"])


def test_master_weights_ignore_float32_params():
    p, h = torch.randn(5), torch.randn(5, dtype=torch.float16)
    opt = lrfused.FusedSGD([p, h], lr=0.1, momentum=0.9, master_weights=True)
    p.grad, h.grad = torch.ones(5), torch.ones(5, dtype=torch.float16)
    opt.step()
    assert "master_param" not in opt.state[p] and opt.state[p]["momentum_buffer"].dtype == torch.float32
    assert opt.state[h]["master_param"].dtype == torch.float32


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("device", DEVICES)
def test_grad_scaler_with_unscale_and_clipping_matches_torch(device):
    """The clipping pattern: scaler.unscale_(opt); clip_grad_norm_; scaler.step(opt). The grads are
    unscaled already, so the kernel gets found_inf but no grad_scale."""
    fused_model, torch_model = _model(device), _model(device)
    fused = lrfused.FusedOneCycleSGD(fused_model.parameters(), max_lr=0.5, total_steps=STEPS)
    ref = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    sched = OneCycleLR(ref, max_lr=0.5, total_steps=STEPS)
    scalers = _scaler(device), _scaler(device)
    for step in range(STEPS):
        x, y = _batch(step, device)
        for model, opt, scaler in ((fused_model, fused, scalers[0]), (torch_model, ref, scalers[1])):
            opt.zero_grad()
            scaler.scale(torch.nn.functional.mse_loss(model(x), y)).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
            scaler.step(opt)
            scaler.update()
        sched.step()
        for p, q in zip(fused_model.parameters(), torch_model.parameters()):
            torch.testing.assert_close(p, q, msg=lambda m: f"step {step}: {m}")

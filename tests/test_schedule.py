"""The schedule: the values the kernel uses at every step equal torch's schedulers', phase
boundaries and the last step included."""
import pytest
import torch
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR

import lrfused
from conftest import DEVICES
from lrfused.schedules import OneCycle, Table, WarmupCosine
from reference.sgd import torch_cyclic, torch_one_cycle, torch_warm_restarts

ONE_CYCLE = {
    "cos": dict(total_steps=23),
    "linear": dict(total_steps=23, anneal_strategy="linear"),
    "three_phase": dict(total_steps=40, three_phase=True, pct_start=0.2),
    "three_phase_linear": dict(total_steps=31, three_phase=True, anneal_strategy="linear"),
    "pct_start_0": dict(total_steps=10, pct_start=0.0),
    "pct_start_high": dict(total_steps=10, pct_start=0.95),
    "one_step": dict(total_steps=1),
    "two_steps": dict(total_steps=2),
    "epochs": dict(epochs=3, steps_per_epoch=5),
    "factors": dict(total_steps=17, div_factor=3.0, final_div_factor=7.0, base_momentum=0.6, max_momentum=0.99),
}

CYCLIC = {
    "triangular": dict(base_lr=0.001, max_lr=0.1, step_size_up=4),
    "triangular2": dict(base_lr=0.001, max_lr=0.1, step_size_up=3, step_size_down=5, mode="triangular2"),
    "exp_range": dict(base_lr=0.001, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=0.97),
    "one_step_cycle": dict(base_lr=0.01, max_lr=0.1, step_size_up=1),
}


def kernel_values(opt, steps, device):
    """The (lr, momentum) the kernel uses at each step, read back from a float64 probe.

    Probe A (grad 1, buffer 0, param 0): the update is param = -lr * 1, exactly.
    Probe B (grad 0, buffer 1): the new buffer is momentum * 1, exactly.
    """
    lr_probe, momentum_probe = opt.param_groups[0]["params"]
    values = []
    for _ in range(steps):
        with torch.no_grad():
            lr_probe.zero_()
        lr_probe.grad = torch.ones_like(lr_probe)
        momentum_probe.grad = torch.zeros_like(momentum_probe)
        if lr_probe in opt.state:
            opt.state[lr_probe]["momentum_buffer"].zero_()
            opt.state[momentum_probe]["momentum_buffer"].fill_(1.0)
        opt.step()
        if values:
            momentum = opt.state[momentum_probe]["momentum_buffer"].item()
        else:  # the first step copies the (zero) grad into the buffer: read momentum from the display
            momentum = None
        values.append((-lr_probe.item(), momentum))
    return values


def probes(device):
    return [torch.zeros(1, dtype=torch.float64, device=device), torch.zeros(1, dtype=torch.float64, device=device)]


def torch_values(opt, sched, steps):
    values = []
    for _ in range(steps):
        values.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    return values


def assert_kernel_follows_torch(fused, torch_opt, torch_sched, steps, device):
    got = kernel_values(fused, steps, device)
    want = torch_values(torch_opt, torch_sched, steps)
    for step, ((lr, momentum), (want_lr, want_momentum)) in enumerate(zip(got, want)):
        assert lr == want_lr, f"step {step}: kernel lr {lr!r}, torch {want_lr!r}"
        if momentum is not None:
            assert momentum == want_momentum, f"step {step}: kernel momentum {momentum!r}, torch {want_momentum!r}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", ONE_CYCLE.values(), ids=ONE_CYCLE.keys())
def test_one_cycle_kernel_values(options, device):
    steps = options.get("total_steps") or options["epochs"] * options["steps_per_epoch"]
    fused = lrfused.FusedOneCycleSGD(probes(device), max_lr=0.7, **options)
    torch_opt, torch_sched = torch_one_cycle([torch.zeros(1)], max_lr=0.7, **options)
    assert_kernel_follows_torch(fused, torch_opt, torch_sched, steps, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", CYCLIC.values(), ids=CYCLIC.keys())
def test_cyclic_kernel_values(options, device):
    fused = lrfused.FusedCyclicSGD(probes(device), **options)
    torch_opt, torch_sched = torch_cyclic([torch.zeros(1)], **options)
    assert_kernel_follows_torch(fused, torch_opt, torch_sched, 25, device)


@pytest.mark.parametrize("options", ONE_CYCLE.values(), ids=ONE_CYCLE.keys())
def test_one_cycle_schedule_function_is_bit_exact(options):
    """_C.schedule_value at every step (the last one, total_steps, included) == OneCycleLR's value."""
    fused = lrfused.FusedOneCycleSGD([torch.zeros(1)], max_lr=0.7, **options)
    schedule = fused._group_config(0, fused.param_groups[0]).config.schedule
    opt = torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=0.7, **options)
    for step in range(sched.total_steps + 1):
        if step:
            opt.step()
            sched.step()
        assert lrfused._C.schedule_value(schedule, step) == (opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"])


@pytest.mark.parametrize("options", CYCLIC.values(), ids=CYCLIC.keys())
def test_cyclic_schedule_function_is_bit_exact(options):
    fused = lrfused.FusedCyclicSGD([torch.zeros(1)], **options)
    schedule = fused._group_config(0, fused.param_groups[0]).config.schedule
    opt = torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.9)
    sched = CyclicLR(opt, **options)
    for step in range(60):
        if step:
            opt.step()
            sched.step()
        assert lrfused._C.schedule_value(schedule, step) == (opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"])


def test_zero_length_warmup_is_at_max_lr():
    """pct_start * total_steps == 1 gives a warm-up phase of length 0, where OneCycleLR divides by
    zero; lrfused starts at max_lr and anneals from there."""
    opt = lrfused.FusedOneCycleSGD([torch.zeros(1)], max_lr=0.5, total_steps=10, pct_start=0.1)
    assert opt.param_groups[0]["lr"] == 0.5
    assert opt.param_groups[0]["momentum"] == 0.85
    with pytest.raises(ZeroDivisionError):
        OneCycleLR(torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.9), max_lr=0.5, total_steps=10, pct_start=0.1)


@pytest.mark.parametrize("device", DEVICES)
def test_past_the_end_raises_like_one_cycle_lr(device):
    p = torch.zeros(3, device=device)
    opt = lrfused.FusedOneCycleSGD([p], max_lr=0.1, total_steps=3)
    for _ in range(3):
        p.grad = torch.ones_like(p)
        opt.step()
    before = p.clone()
    buffer_before = opt.state[p]["momentum_buffer"].clone()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3.*hold_final_lr"):
        opt.step()
    assert torch.equal(p, before)
    assert torch.equal(opt.state[p]["momentum_buffer"], buffer_before)
    assert opt.schedule_step == 3


@pytest.mark.parametrize("schedule, advice", [
    (OneCycle(max_lr=0.1, total_steps=3), r"Give a larger total_steps \(or epochs / steps_per_epoch\), or pass hold_final_lr"),
    (WarmupCosine(total_steps=3), r"Give a larger total_steps, or pass hold_final_lr"),
    (Table([1.0, 0.5, 0.1]), r"Give a longer table \(lr_lambda and total_steps\), or pass hold_final_lr"),
], ids=["one_cycle", "warmup_cosine", "table"])
def test_past_the_end_advice_names_the_schedules_own_arguments(schedule, advice):
    """epochs / steps_per_epoch are OneCycle's only."""
    p = torch.zeros(3)
    opt = lrfused.FusedSGD([p], lr=0.1, schedule=schedule)
    for _ in range(3):
        p.grad = torch.ones_like(p)
        opt.step()
    with pytest.raises(ValueError, match=advice):
        opt.step()


def test_table_shows_lambda_lrs_value_after_the_last_step():
    """LambdaLR shows lr * lr_lambda(total_steps) after the last step; a lambda defined on the
    table's steps only (or a list of factors) shows the last factor."""
    factors = [1.0, 0.5, 0.25]
    shown = {}
    for name, lr_lambda in (("callable", lambda s: 0.1**s), ("indexing", lambda s: factors[s]), ("list", factors)):
        p = torch.zeros(2)
        opt = lrfused.FusedSGD([p], lr=0.01, schedule=Table(lr_lambda, total_steps=3))
        for _ in range(3):
            p.grad = torch.ones_like(p)
            opt.step()
        shown[name] = opt.param_groups[0]["lr"]
    q = torch.zeros(2)
    ref = torch.optim.SGD([q], lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(ref, lambda s: 0.1**s)
    for _ in range(3):
        ref.step()
        sched.step()
    assert shown["callable"] == ref.param_groups[0]["lr"] == 0.01 * 0.1**3
    assert shown["indexing"] == shown["list"] == 0.01 * 0.25


@pytest.mark.parametrize("device", DEVICES)
def test_hold_final_lr_keeps_training_at_the_final_values(device):
    fused = lrfused.FusedOneCycleSGD(probes(device), max_lr=0.4, total_steps=5, hold_final_lr=True)
    torch_opt, torch_sched = torch_one_cycle([torch.zeros(1)], max_lr=0.4, total_steps=5)
    want = torch_values(torch_opt, torch_sched, 5)
    got = kernel_values(fused, 9, device)
    assert [lr for lr, _ in got[:5]] == [lr for lr, _ in want]
    assert [lr for lr, _ in got[5:]] == [want[-1][0]] * 4
    assert [m for _, m in got[5:]] == [want[-1][1]] * 4
    assert fused.param_groups[0]["lr"] == want[-1][0]


WARM_RESTARTS = {
    "T_0_1": dict(T_0=1),
    "constant": dict(T_0=5, eta_min=0.01),
    "doubling": dict(T_0=2, T_mult=2),
    "tripling": dict(T_0=3, T_mult=3, eta_min=0.05),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", WARM_RESTARTS.values(), ids=WARM_RESTARTS.keys())
def test_warm_restarts_kernel_values(options, device):
    fused = lrfused.FusedWarmRestartsSGD(probes(device), max_lr=0.7, **options)
    torch_opt, torch_sched = torch_warm_restarts([torch.zeros(1)], max_lr=0.7, **options)
    assert_kernel_follows_torch(fused, torch_opt, torch_sched, 40, device)


@pytest.mark.parametrize("options", WARM_RESTARTS.values(), ids=WARM_RESTARTS.keys())
def test_warm_restarts_schedule_function_is_bit_exact(options):
    fused = lrfused.FusedWarmRestartsSGD([torch.zeros(1)], max_lr=0.7, **options)
    schedule = fused._group_config(0, fused.param_groups[0]).config.schedule
    opt, sched = torch_warm_restarts([torch.zeros(1)], max_lr=0.7, **options)
    for step in range(100):
        if step:
            opt.step()
            sched.step()
        assert lrfused._C.schedule_value(schedule, step)[0] == opt.param_groups[0]["lr"]


@pytest.mark.parametrize("device", DEVICES)
def test_warm_restarts_linear_sawtooth(device):
    """Starts each cycle at max_lr and falls linearly towards eta_min; cycles of 2, 4, 8 steps."""
    fused = lrfused.FusedWarmRestartsSGD(probes(device), max_lr=0.5, T_0=2, T_mult=2, eta_min=0.1,
                                         anneal_strategy="linear")
    got = [lr for lr, _ in kernel_values(fused, 14, device)]
    want = []
    for length in (2, 4, 8):
        want += [0.1 + (0.5 - 0.1) * (1 - t / length) for t in range(length)]
    assert got == pytest.approx(want, rel=1e-15)
    assert got[0] == got[2] == got[6] == 0.5  # the restarts

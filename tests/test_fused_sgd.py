"""lrfused.FusedSGD with each schedule against torch.optim.SGD + the matching torch scheduler, after
every step; and the general optimizer against the drop-ins."""
import math

import pytest
import torch

import lrfused
from conftest import DEVICES, DTYPES, dtype_id
from lrfused.schedules import Cyclic, OneCycle, Table, WarmupCosine
from test_numerics import SHAPES, run_and_compare

CONSTANT_OPTIONS = {
    "plain": dict(lr=0.1),
    "momentum_nesterov_decay": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "dampening_maximize": dict(lr=0.05, momentum=0.8, dampening=0.3, maximize=True),
}

WARMUP_COSINE_OPTIONS = {
    "warmup": dict(lr=0.3, total_steps=14, warmup_steps=4, momentum=0.9),
    "warmup_eta_min": dict(lr=0.3, total_steps=11, warmup_steps=3, start_factor=0.1, eta_min=0.01, weight_decay=1e-3),
    "cosine_only": dict(lr=0.2, total_steps=9, momentum=0.9, nesterov=True),
}


def _lambda(step):
    return 0.5 ** (step // 3) * (1 + 0.1 * math.sin(step))


TABLE_OPTIONS = {
    "callable": dict(lr=0.2, lr_lambda=_lambda, total_steps=13, momentum=0.9),
    "tensor": dict(lr=0.2, lr_lambda=torch.linspace(1.0, 0.0, 13), total_steps=13, weight_decay=1e-2),
    "with_momenta": dict(
        lr=0.1, lr_lambda=[1.0, 2.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.1, 0.05, 0.0, 0.0, 0.0], total_steps=13,
        momenta=[0.95, 0.9, 0.85, 0.0, 0.85, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95], dampening=0.1,
    ),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", CONSTANT_OPTIONS.values(), ids=CONSTANT_OPTIONS.keys())
def test_constant_matches_torch_sgd(options, dtype, device):
    run_and_compare("constant", [{"shapes": SHAPES}], dtype, device, 6, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", WARMUP_COSINE_OPTIONS.values(), ids=WARMUP_COSINE_OPTIONS.keys())
def test_warmup_cosine_matches_sequential_linear_cosine(options, dtype, device):
    run_and_compare("warmup_cosine", [{"shapes": SHAPES}], dtype, device, options["total_steps"], **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("options", TABLE_OPTIONS.values(), ids=TABLE_OPTIONS.keys())
def test_table_matches_lambda_lr(options, dtype, device):
    """Bit-exact LRs (LambdaLR's base_lr * factor) and momenta from the table, every step."""
    run_and_compare("table", [{"shapes": SHAPES}], dtype, device, options["total_steps"], **options)


@pytest.mark.parametrize("device", DEVICES)
def test_table_groups_scale_their_own_lr(device):
    groups = [{"shapes": [(5, 5), (300,)], "lr": 0.3}, {"shapes": [(7,)], "weight_decay": 0.0}]
    run_and_compare("table", groups, torch.float32, device, 8, lr=0.1, lr_lambda=lambda s: 1 / (s + 1),
                    total_steps=8, momentum=0.9, weight_decay=1e-3)


def test_constant_follows_group_lr_changed_by_hand():
    """As with torch.optim.SGD, writing group['lr'] between steps changes the next step."""
    p, q = torch.ones(3), torch.ones(3)
    fused = lrfused.FusedSGD([p], lr=0.1)
    ref = torch.optim.SGD([q], lr=0.1, foreach=False)
    for lr in (0.1, 0.5, 0.02):
        for opt in (fused, ref):
            opt.param_groups[0]["lr"] = lr
        p.grad, q.grad = torch.full((3,), 2.0), torch.full((3,), 2.0)
        fused.step()
        ref.step()
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "schedule, drop_in",
    [
        (OneCycle(0.4, total_steps=7, three_phase=True), lambda ps: lrfused.FusedOneCycleSGD(ps, 0.4, total_steps=7, three_phase=True)),
        (Cyclic(0.01, 0.3, step_size_up=2, mode="triangular2"),
         lambda ps: lrfused.FusedCyclicSGD(ps, 0.01, 0.3, step_size_up=2, mode="triangular2")),
    ],
    ids=["one_cycle", "cyclic"],
)
def test_fused_sgd_with_a_schedule_equals_its_drop_in(schedule, drop_in):
    """FusedSGD(schedule=OneCycle(...)) is FusedOneCycleSGD(...) (momentum 0.9 given to both)."""
    p = torch.randn(50)
    q = p.clone()
    general = lrfused.FusedSGD([p], momentum=0.9, schedule=schedule)
    special = drop_in([q])
    for _ in range(7):
        grad = torch.randn(50)
        p.grad, q.grad = grad, grad.clone()
        general.step()
        special.step()
        assert torch.equal(p, q)
        assert general.param_groups[0]["lr"] == special.param_groups[0]["lr"]
        assert general.param_groups[0]["momentum"] == special.param_groups[0]["momentum"]


@pytest.mark.parametrize("schedule", [WarmupCosine(total_steps=3), Table([1.0, 0.5, 0.1])], ids=["warmup_cosine", "table"])
def test_fixed_length_schedules_end_like_one_cycle(schedule):
    """The step after the last raises (nothing changed) unless hold_final_lr=True: then the last LR holds."""
    p = torch.ones(4)
    opt = lrfused.FusedSGD([p], lr=0.1, schedule=schedule)
    for _ in range(3):
        p.grad = torch.ones(4)
        opt.step()
    before = p.clone()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        opt.step()
    assert torch.equal(p, before) and opt.schedule_step == 3

    held = lrfused.FusedSGD([p], lr=0.1, schedule=schedule, hold_final_lr=True)
    lrs = []
    for _ in range(5):
        lrs.append(held.param_groups[0]["lr"])
        held.step()
    assert lrs[2] == lrs[3] == lrs[4] == held.param_groups[0]["lr"]


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda p: lrfused.FusedSGD(p, schedule="cos"), TypeError, "schedule must be one of lrfused.schedules"),
        (lambda p: lrfused.FusedSGD(p, lr=-1.0), ValueError, r"lr must be >= 0.0, got -1.0"),
        (lambda p: lrfused.FusedSGD([{"params": p, "lr": -1.0}]), ValueError, r"lr \(param group 0\) must be >= 0"),
        (lambda p: lrfused.FusedSGD(p, master_weights=1), TypeError, "master_weights must be a bool"),
        (lambda p: WarmupCosine(total_steps=5, warmup_steps=5), ValueError, "warmup_steps must be < total_steps"),
        (lambda p: WarmupCosine(total_steps=5, start_factor=0.0), ValueError, "start_factor must be > 0"),
        (lambda p: Table(lambda s: 1.0), ValueError, "total_steps is missing"),
        (lambda p: Table([1.0, float("nan")]), ValueError, r"lr_lambda at step 1 must be a finite number >= 0, got nan"),
        (lambda p: Table([1.0, -2.0]), ValueError, "lr_lambda at step 1 must be a finite number >= 0"),
        (lambda p: Table([]), ValueError, "lr_lambda is empty"),
        (lambda p: Table(torch.ones(2, 2)), ValueError, "lr_lambda must be a 1-D real tensor"),
        (lambda p: Table([1.0, 1.0], total_steps=3), ValueError, "lr_lambda has 2 values but total_steps is 3"),
        (lambda p: Table([1.0, 1.0], momentum=[0.9]), ValueError, "momentum has 1 values but total_steps is 2"),
        (lambda p: Table("fast"), TypeError, "lr_lambda must be a callable, a 1-D tensor or a list"),
        (lambda p: lrfused.FusedSGD(p, schedule=Table([1.0], momentum=[0.0]), nesterov=True), ValueError,
         "nesterov=True .* requires a momentum > 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_arguments_are_named(make, error, message):
    p = [torch.randn(3)]
    with pytest.raises(error, match=message):
        make(p)


def test_table_schedule_values_reach_the_kernel_exactly():
    """LR read back through a float64 probe (param 0, grad 1, no momentum): the param becomes -lr,
    LambdaLR's base_lr * factor to the last bit."""
    factors = [0.3, 1.7, 0.0, 123.456, 1e-9]
    p = torch.zeros(1, dtype=torch.float64)
    opt = lrfused.FusedSGD([p], lr=0.01, schedule=Table(factors))
    for factor in factors:
        p.zero_()
        p.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        assert -p.item() == 0.01 * factor


def test_constant_schedule_works_under_a_torch_scheduler():
    """FusedSGD() is a drop-in torch.optim.SGD: a torch scheduler setting group['lr'] drives it."""
    p, q = torch.randn(40), None
    q = p.clone()
    fused = lrfused.FusedSGD([p], lr=0.2, momentum=0.9, nesterov=True)
    ref = torch.optim.SGD([q], lr=0.2, momentum=0.9, nesterov=True, foreach=False)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (fused, ref)]
    for _ in range(7):
        grad = torch.randn(40)
        p.grad, q.grad = grad, grad.clone()
        fused.step()
        ref.step()
        for s in scheds:
            s.step()
        torch.testing.assert_close(p, q)
        assert fused.param_groups[0]["lr"] == ref.param_groups[0]["lr"]

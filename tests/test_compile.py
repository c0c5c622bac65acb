"""torch.compile: step() traces into the lrfused::fused_step_ op (no graph break), and the schedule lives
in the kernel, so steps are not recompiled as the LR changes."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

import lrfused
from families import FAMILIES, families
from lrfused.schedules import Cyclic, Table

STEPS = 8


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _models(dtype=torch.float32):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).to(dtype)
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).to(dtype)
    twin.load_state_dict(model.state_dict())
    return model, twin


def _backward(models, step, dtype=torch.float32):
    generator = torch.Generator().manual_seed(step)
    x, y = torch.randn(5, 8, generator=generator, dtype=dtype), torch.randn(5, 4, generator=generator, dtype=dtype)
    for m in models:
        m.zero_grad()
        torch.nn.functional.mse_loss(m(x), y).backward()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: lrfused.FusedOneCycleSGD(ps, max_lr=0.2, total_steps=STEPS, weight_decay=1e-3),
        lambda ps: lrfused.FusedCyclicSGD(ps, base_lr=0.01, max_lr=0.2, step_size_up=3, nesterov=True),
        lambda ps: lrfused.FusedSGD(ps, lr=0.1, momentum=0.9, schedule=Table(lambda s: 1 / (1 + s), STEPS)),
    ],
    ids=["one_cycle", "cyclic", "table"],
)
def test_compiled_step_equals_eager_without_recompiles(make):
    model, twin = _models()
    compiled_opt, eager_opt = make(model.parameters()), make(twin.parameters())
    backend = CompileCounterWithBackend("inductor")
    compiled_step = torch.compile(compiled_opt.step, backend=backend)
    frames = []
    for step in range(STEPS):
        _backward((model, twin), step)
        compiled_step()
        eager_opt.step()
        frames.append(backend.frame_count)
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q), f"step {step}"
    # One compile, one recompile once the momentum state exists, then none while the LR moves.
    assert frames[-1] <= 2 and frames[-1] == frames[2], frames
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert compiled_opt.schedule_step == eager_opt.schedule_step == STEPS
    assert compiled_opt.get_last_lr() == eager_opt.get_last_lr()


def _family_steps():
    """Per family: its general optimizer with a constant and with a cyclic schedule, and its 1cycle
    drop-in; the constant one with the family's fullest state layout (its last variant)."""
    cases = []
    for family in FAMILIES.values():
        first, last = list(family.variants.values())[0], list(family.variants.values())[-1]
        makers = {
            "constant": lambda ps, f=family, o=last: f.fused(ps, lr=1e-2, **o),
            "cyclic": lambda ps, f=family, o=first: f.fused(
                ps, lr=1e-3, schedule=Cyclic(base_lr=1e-3, max_lr=f.max_lr, step_size_up=3), **o
            ),
            "one_cycle": lambda ps, f=family, o=first: f.one_cycle(ps, max_lr=f.max_lr, total_steps=STEPS, **o),
        }
        cases += [pytest.param(family, make, id=f"{family}-{kind}") for kind, make in makers.items()]
    return cases


def _assert_same_runs(family, compiled_opt, eager_opt, model, twin, step):
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q), f"step {step}"
        for key, value in eager_opt.state[q].items():
            assert torch.equal(compiled_opt.state[p][key], value), (step, key)
    # A compiled step leaves the host count unknown: the groups show the next step's values once
    # get_last_lr() has read the device counter (documented).
    assert compiled_opt.get_last_lr() == eager_opt.get_last_lr(), step
    for g, h in zip(compiled_opt.param_groups, eager_opt.param_groups):
        assert family.shown(g) == family.shown(h), step


def _step_side_by_side(family, compiled_step, compiled_opt, eager_opt, model, twin, steps, backend=None, check=None):
    """Steps the compiled and the eager optimizer on the same grads, compared after every step (and
    check(step), if given); returns the backend's frame count after each step (if given)."""
    frames = []
    for step in steps:
        _backward((model, twin), step)
        compiled_step()
        eager_opt.step()
        if backend is not None:
            frames.append(backend.frame_count)
        _assert_same_runs(family, compiled_opt, eager_opt, model, twin, step)
        if check is not None:
            check(step)
    return frames


@pytest.mark.parametrize("family, make", _family_steps())
def test_compiled_step_with_fullgraph_equals_eager_without_recompiles(family, make):
    """After one eager step (state made), torch.compile(opt.step, fullgraph=True) runs as one graph
    (fullgraph raises on any graph break), is not recompiled as the LR and the momentum move, and
    equals the eager optimizer bit for bit."""
    model, twin = _models()
    compiled_opt, eager_opt = make(model.parameters()), make(twin.parameters())
    _backward((model, twin), 0)
    compiled_opt.step()
    eager_opt.step()
    backend = CompileCounterWithBackend("inductor")
    compiled_step = torch.compile(compiled_opt.step, backend=backend, fullgraph=True)
    frames = _step_side_by_side(family, compiled_step, compiled_opt, eager_opt, model, twin, range(1, STEPS), backend)
    # At most one recompile (a counter becoming dynamic), then none while the schedule moves.
    assert frames[-1] <= 2 and frames[-1] == frames[1], frames
    assert compiled_opt.schedule_step == eager_opt.schedule_step == STEPS


@pytest.mark.parametrize("family", families())
def test_compiled_step_from_the_first_step_equals_eager(family):
    """Each family's 1cycle drop-in compiled before any state exists (no fullgraph): no graph break,
    at most one recompile once the state exists, then none; bit for bit the eager run."""
    options = list(family.variants.values())[0]
    make = lambda ps: family.one_cycle(ps, max_lr=family.max_lr, total_steps=STEPS, **options)  # noqa: E731
    model, twin = _models()
    compiled_opt, eager_opt = make(model.parameters()), make(twin.parameters())
    backend = CompileCounterWithBackend("inductor")
    compiled_step = torch.compile(compiled_opt.step, backend=backend)
    frames = _step_side_by_side(family, compiled_step, compiled_opt, eager_opt, model, twin, range(STEPS), backend)
    assert frames[-1] <= 2 and frames[-1] == frames[2], frames
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])


def test_compiled_training_step_breaks_only_at_backward():
    """A whole compiled training step: dynamo's only break is its usual one at loss.backward()."""
    model, twin = _models()
    opt = lrfused.FusedOneCycleSGD(model.parameters(), max_lr=0.2, total_steps=STEPS)
    eager = lrfused.FusedOneCycleSGD(twin.parameters(), max_lr=0.2, total_steps=STEPS)

    def train_step(m, o, x, y):
        loss = torch.nn.functional.mse_loss(m(x), y)
        loss.backward()
        o.step()
        o.zero_grad(set_to_none=True)
        return loss

    compiled = torch.compile(train_step)
    for step in range(STEPS):
        generator = torch.Generator().manual_seed(step)
        x, y = torch.randn(5, 8, generator=generator), torch.randn(5, 4, generator=generator)
        compiled(model, opt, x, y)
        train_step(twin, eager, x, y)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q)  # the compiled forward/backward may fuse differently
    reasons = list(counters["graph_break"])
    assert all("backward" in r or "zero_grad" in r for r in reasons), reasons
    assert opt.schedule_step == STEPS


def test_compiled_step_with_master_weights_and_grad_scaler_tensors():
    model, twin = _models(torch.bfloat16)
    make = lambda ps: lrfused.FusedOneCycleSGD(ps, max_lr=0.2, total_steps=STEPS, master_weights=True)  # noqa: E731
    compiled_opt, eager_opt = make(model.parameters()), make(twin.parameters())
    compiled_step = torch.compile(compiled_opt.step)
    for step in range(STEPS):
        _backward((model, twin), step, torch.bfloat16)
        for opt in (compiled_opt, eager_opt):
            opt.grad_scale = torch.tensor(2.0)
            opt.found_inf = torch.tensor(float(step == 3))
        compiled_step()
        eager_opt.step()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q), f"step {step}"
            assert torch.equal(compiled_opt.state[p]["master_param"], eager_opt.state[q]["master_param"])


def test_compiled_step_sees_a_group_value_changed_by_hand():
    """weight_decay changed between compiled steps reaches the kernel (its config is rebuilt)."""
    model, twin = _models()
    compiled_opt = lrfused.FusedSGD(model.parameters(), lr=0.1, momentum=0.9)
    eager_opt = lrfused.FusedSGD(twin.parameters(), lr=0.1, momentum=0.9)
    compiled_step = torch.compile(compiled_opt.step)
    for step in range(4):
        if step == 2:
            for opt in (compiled_opt, eager_opt):
                opt.param_groups[0]["weight_decay"] = 0.5
        _backward((model, twin), step)
        compiled_step()
        eager_opt.step()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q), f"step {step}"


@pytest.mark.parametrize(
    "make_param, lr",
    [
        (lambda: torch.randn(7), torch.tensor(0.1)),
        (lambda: torch.randn(6, 5, 2)[..., 0], 0.1),
        (lambda: torch.randn(4, 3, dtype=torch.complex64), 0.1),  # eager behind a graph break
    ],
    ids=["tensor_lr", "strided_view", "complex"],
)
def test_compiled_step_matches_torch_with_drop_in_inputs(make_param, lr):
    param = make_param()
    twin = torch.empty_strided(param.shape, param.stride(), dtype=param.dtype).copy_(param)
    fused = lrfused.FusedSGD([param], lr=lr, momentum=0.9, weight_decay=0.1)
    reference = torch.optim.SGD([twin], lr=lr, momentum=0.9, weight_decay=0.1, foreach=False)
    step = torch.compile(fused.step)
    for _ in range(3):
        grad = torch.randn_like(param)
        param.grad, twin.grad = grad, grad.clone()
        step()
        reference.step()
        torch.testing.assert_close(param, twin)


def test_compiled_step_with_float_and_tensor_lr_groups_matches_torch():
    """Groups with a float lr and groups with a tensor lr side by side: each tensor lr goes to its own
    group (the op's table_index counts only the groups that give one)."""
    params = [torch.randn(5), torch.randn(3), torch.randn(4)]
    twins = [p.clone() for p in params]
    lrs = [0.1, torch.tensor(0.05), torch.tensor(0.2)]
    fused = lrfused.FusedSGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], momentum=0.9)
    reference = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(twins, lrs)], momentum=0.9, foreach=False)
    step = torch.compile(fused.step)
    for _ in range(3):
        for p, q in zip(params, twins):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        step()
        reference.step()
        for p, q in zip(params, twins):
            torch.testing.assert_close(p, q)


@pytest.mark.parametrize("family", families())
def test_compiled_step_skips_a_param_without_a_grad(family):
    """A param no loss reaches (grad None; placed first, so that a layout that kept it would shift
    every other param's state) is left out of the compiled step as of the eager one, as in torch:
    unchanged, no state made for it; the others bit for bit the eager run; and the step is the
    compiled one: a trace that fails makes dynamo run the frame eagerly instead, which would hide a
    broken compiled path, hence the check that the eager step never ran."""
    options = list(family.variants.values())[-1]
    make = lambda ps: family.one_cycle(ps, max_lr=family.max_lr, total_steps=STEPS, **options)  # noqa: E731
    model, twin = _models()
    unused, twin_unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    compiled_opt = make([unused, *model.parameters()])
    eager_opt = make([twin_unused, *twin.parameters()])
    eager_runs = []
    eager_step = compiled_opt._eager_step
    compiled_opt._eager_step = lambda *args: (eager_runs.append(args), eager_step(*args))  # noqa: E731
    def untouched(step):
        assert torch.equal(unused, torch.ones(3)) and unused.grad is None, step
        assert unused not in compiled_opt.state and twin_unused not in eager_opt.state, step

    compiled_step = torch.compile(compiled_opt.step)
    _step_side_by_side(family, compiled_step, compiled_opt, eager_opt, model, twin, range(5), check=untouched)
    assert not eager_runs, f"the compiled step ran eagerly {len(eager_runs)} times"
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])

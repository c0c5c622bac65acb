"""CUDA-only behaviour: no host sync in step(), CUDA graph capture and replay, one update launch per
eager step of any size; for every family (tests/families.py) or one family's own. (Numerics on CUDA run in the other files, parametrised
over the available devices.)"""
import pytest
import torch
from torch.optim.lr_scheduler import OneCycleLR

import lrfused
from conftest import requires_cuda, step_twice_without_host_sync
from families import FAMILIES, families
from reference.adamw import TOLERANCES, assert_states_match
from reference.sgd import step_both

pytestmark = requires_cuda()


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).cuda()


def _no_sync_cases():
    """Every state layout of every family, and its first one with bfloat16 params and master weights."""
    cases = [pytest.param(f, o, id=f"{f}-{v}") for f in FAMILIES.values() for v, o in f.variants.items()]
    return cases + [
        pytest.param(f, {**list(f.variants.values())[0], "master_weights": True}, id=f"{f}-master_weights")
        for f in FAMILIES.values()
    ]


@pytest.mark.parametrize("family, options", _no_sync_cases())
def test_step_does_not_sync_with_the_host(family, options):
    model = make_model()
    if options.get("master_weights"):
        model = model.to(torch.bfloat16)
    opt = family.one_cycle(model.parameters(), max_lr=0.1, total_steps=10, weight_decay=1e-2, **options)
    x = torch.randn(16, 32, device="cuda", dtype=next(model.parameters()).dtype)
    model(x).float().sum().backward()
    opt.step()  # the first step makes the state (and any per-param count)
    step_twice_without_host_sync(opt)
    if family.count_key is not None:
        assert all(float(opt.state[p][family.count_key]) == 3 for p in model.parameters())


def test_graph_replay_advances_the_schedule_like_eager_steps():
    steps, warmup = 12, 2
    data = [(torch.randn(16, 32, device="cuda"), torch.randint(0, 10, (16,), device="cuda")) for _ in range(steps)]
    loss_fn = torch.nn.CrossEntropyLoss()

    eager = make_model()
    eager_opt = lrfused.FusedOneCycleSGD(eager.parameters(), max_lr=0.5, total_steps=steps, nesterov=True)
    for x, y in data:
        eager_opt.zero_grad(set_to_none=False)
        loss_fn(eager(x), y).backward()
        eager_opt.step()

    graphed = make_model()
    opt = lrfused.FusedOneCycleSGD(graphed.parameters(), max_lr=0.5, total_steps=steps, nesterov=True)
    static_x, static_y = data[0][0].clone(), data[0][1].clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for x, y in data[:warmup]:
            opt.zero_grad(set_to_none=False)
            loss_fn(graphed(x), y).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)

    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        loss_fn(graphed(static_x), static_y).backward()
        opt.step()
    # Capture recorded but did not run the step: neither count moved.
    assert int(opt._step) == warmup and opt.schedule_step == warmup
    for x, y in data[warmup:]:
        static_x.copy_(x)
        static_y.copy_(y)
        for p in graphed.parameters():
            p.grad.zero_()
        graph.replay()
    torch.cuda.synchronize()
    assert int(opt._step) == steps
    for a, b in zip(eager.parameters(), graphed.parameters()):
        torch.testing.assert_close(a, b)


def test_capture_before_state_exists_is_refused():
    model = make_model()
    opt = lrfused.FusedOneCycleSGD(model.parameters(), max_lr=0.1, total_steps=10)
    x = torch.randn(16, 32, device="cuda")
    model(x).sum().backward()
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="take at least one eager step"):
        with torch.cuda.graph(graph):
            opt.step()
    assert not opt.state


def big_step_layout(with_huge_tensor=True):
    """More tensors and groups than one launch's argument holds (160, 16), with empty and
    one-element tensors among them, and (with_huge_tensor) more chunks (1,280 of 65,536 elements)."""
    params = [torch.randn(n, device="cuda") for n in [1, 3, 70000, 0] * 70]
    if with_huge_tensor:
        params.append(torch.randn(65536 * 1300 + 5, device="cuda"))
    return params, [{"params": params[i::18], "weight_decay": 1e-3 * i} for i in range(18)]


def update_launches(step):
    """The update kernels one step launches (the counter's one-thread kernel and copies not counted)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA and "fused_step" in e.name)


def big_step_optimizer(family, groups, steps=10):
    if family == "sgd":
        return lrfused.FusedCyclicSGD(groups, base_lr=0.01, max_lr=0.1, step_size_up=2)
    return lrfused.FusedOneCycleAdamW(groups, max_lr=0.05, total_steps=steps, amsgrad=True)


@pytest.mark.parametrize("family", ["sgd", "adamw"])
@pytest.mark.parametrize("with_huge_tensor", [False, True], ids=["many_tensors", "many_chunks"])
def test_an_eager_step_of_any_size_is_one_launch(with_huge_tensor, family):
    """One update launch (AdamW: its params' counts advance in a separate small kernel, not counted);
    every AdamW param's own step, the empty ones' included, advanced once per step."""
    params, groups = big_step_layout(with_huge_tensor)
    opt = big_step_optimizer(family, groups)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    assert update_launches(opt.step) == 1
    if family == "adamw":
        assert [float(opt.state[p]["step"]) for p in params] == [2.0] * len(params)


def adamw_150_tensors_and_30_empty_ones():
    """150 non-empty tensors (fit one launch's argument) with 30 empty ones among them: 180 counts."""
    params = [torch.randn(0 if i % 6 == 5 else 100, device="cuda") for i in range(180)]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = lrfused.FusedOneCycleAdamW(params, max_lr=0.05, total_steps=10)
    opt.step()
    return params, opt


def test_an_adamw_step_of_150_tensors_and_30_empty_ones_advances_every_count():
    params, opt = adamw_150_tensors_and_30_empty_ones()
    opt.step()
    assert [float(opt.state[p]["step"]) for p in params] == [2.0] * len(params)


def test_an_adamw_step_of_150_tensors_and_30_empty_ones_is_one_launch():
    """Empty AdamW tensors take places in a launch's count list: fits_one_launch counts them, so this
    step goes to the device table, one update launch."""
    _, opt = adamw_150_tensors_and_30_empty_ones()
    assert update_launches(opt.step) == 1


@pytest.mark.parametrize("with_huge_tensor", [False, True], ids=["many_tensors", "many_chunks"])
def test_an_eager_adamw_step_of_any_size_matches_torch(with_huge_tensor):
    """210 tensors (empty ones among them) in 18 groups, with and without a tensor of 1,300 chunks
    (the device-table path): params, moments and each param's step equal torch AdamW + OneCycleLR."""
    steps = 4
    params, groups = big_step_layout(with_huge_tensor)
    reference = [p.clone() for p in params]
    ref_groups = [{"params": reference[i::18], "weight_decay": 1e-3 * i} for i in range(18)]
    opt = big_step_optimizer("adamw", groups, steps)
    ref = torch.optim.AdamW(ref_groups, lr=0.05, amsgrad=True, foreach=False)
    sched = OneCycleLR(ref, max_lr=0.05, total_steps=steps)
    for step in range(steps):
        step_both(opt, ref, sched, params, reference)
        assert_states_match(opt, ref, params, reference, step, **TOLERANCES[torch.float32])


@pytest.mark.parametrize("with_huge_tensor", [False, True], ids=["many_tensors", "many_chunks"])
def test_an_eager_step_of_any_size_matches_torch(with_huge_tensor):
    params, groups = big_step_layout(with_huge_tensor)
    reference = [p.clone() for p in params]
    ref_groups = [{"params": reference[i::18], "weight_decay": 1e-3 * i} for i in range(18)]
    opt = lrfused.FusedCyclicSGD(groups, base_lr=0.01, max_lr=0.1, step_size_up=2)
    ref = torch.optim.SGD(ref_groups, lr=0.01, momentum=0.9, foreach=False)
    sched = torch.optim.lr_scheduler.CyclicLR(ref, base_lr=0.01, max_lr=0.1, step_size_up=2)
    for _ in range(4):
        step_both(opt, ref, sched, params, reference)
        for p, r in zip(params, reference):
            torch.testing.assert_close(p, r)


def test_a_captured_step_of_any_size_replays_like_eager_steps():
    """Under graph capture a big step takes one launch per argument-sized part (no table copy a
    replay could not repeat); replays equal eager steps."""
    steps = 4
    eager_params, eager_groups = big_step_layout()
    graphed_params = [p.clone() for p in eager_params]
    graphed_groups = [{"params": graphed_params[i::18], "weight_decay": 1e-3 * i} for i in range(18)]
    grads = [[torch.randn_like(p) for p in eager_params] for _ in range(steps)]
    eager = lrfused.FusedOneCycleSGD(eager_groups, max_lr=0.2, total_steps=steps)
    for step_grads in grads:
        for p, g in zip(eager_params, step_grads):
            p.grad = g.clone()
        eager.step()

    opt = lrfused.FusedOneCycleSGD(graphed_groups, max_lr=0.2, total_steps=steps)
    for p, g in zip(graphed_params, grads[0]):
        p.grad = g.clone()
    opt.step()  # eager: makes the state
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for step_grads in grads[1:]:
        for p, g in zip(graphed_params, step_grads):
            p.grad.copy_(g)
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(eager_params, graphed_params):
        torch.testing.assert_close(a, b)


# --- AdamW -------------------------------------------------------------------------------------------


# (No host sync in an AdamW step: test_step_does_not_sync_with_the_host above, for every family.)


def test_adamw_graph_replays_equal_torch_adamw_with_one_cycle_lr_step_for_step():
    """FusedOneCycleAdamW captured in a CUDA graph after two eager steps, then replayed with new grads:
    after every replay the params, moments (max_exp_avg_sq of the amsgrad group) and each param's own
    step equal eager torch.optim.AdamW + OneCycleLR on the same grads. Capture itself moves no count."""
    steps, warmup = 10, 2
    shapes = [(1,), (7, 3), (4097,), (65536 + 3,), (300,)]
    start = [torch.randn(s, device="cuda") for s in shapes]
    grads = [[torch.randn(s, device="cuda") for s in shapes] for _ in range(steps)]
    params, reference = [p.clone() for p in start], [p.clone() for p in start]

    def groups(ps):
        return [{"params": ps[:2], "amsgrad": True}, {"params": ps[2:4], "weight_decay": 0.1}, {"params": ps[4:]}]

    kwargs = dict(max_lr=0.05, total_steps=steps)
    opt = lrfused.FusedOneCycleAdamW(groups(params), weight_decay=1e-2, **kwargs)
    ref = torch.optim.AdamW(groups(reference), lr=0.1, weight_decay=1e-2, foreach=False)
    sched = OneCycleLR(ref, **kwargs)

    def torch_step(step):
        for r, g in zip(reference, grads[step]):
            r.grad = g.clone()
        ref.step()
        sched.step()

    for step in range(warmup):
        for p, g in zip(params, grads[step]):
            p.grad = g.clone()
        opt.step()
        torch_step(step)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    torch.cuda.synchronize()
    # Capture recorded but did not run the step: no count moved.
    assert int(opt._step) == warmup and opt.schedule_step == warmup
    assert [float(opt.state[p]["step"]) for p in params] == [float(warmup)] * len(params)
    assert_states_match(opt, ref, params, reference, "after capture", **TOLERANCES[torch.float32])
    for step in range(warmup, steps):
        for p, g in zip(params, grads[step]):
            p.grad.copy_(g)
        graph.replay()
        torch_step(step)
        torch.cuda.synchronize()
        assert [float(opt.state[p]["step"]) for p in params] == [float(step + 1)] * len(params)
        assert_states_match(opt, ref, params, reference, step, **TOLERANCES[torch.float32])
    assert int(opt._step) == steps
    assert opt.get_last_lr() == sched.get_last_lr()
    assert [tuple(g["betas"]) for g in opt.param_groups] == [tuple(g["betas"]) for g in ref.param_groups]


@pytest.mark.parametrize("family", families())
def test_every_family_graph_replays_equal_torch_with_one_cycle_lr_step_for_step(family):
    """The family's 1cycle drop-in captured in a CUDA graph after two eager steps, then replayed with
    new grads: after every replay the params and state equal the family's torch reference +
    OneCycleLR on the same grads, and the groups show the scheduler's lr and momentum."""
    steps, warmup = 8, 2
    shapes = [(1,), (7, 3), (4097,), (300,)]
    start = [torch.randn(s, device="cuda") for s in shapes]
    grads = [[torch.randn(s, device="cuda") for s in shapes] for _ in range(steps)]
    params, reference = [p.clone() for p in start], [p.clone() for p in start]
    kwargs = dict(max_lr=family.max_lr, total_steps=steps, weight_decay=1e-2, **list(family.variants.values())[0])
    opt = family.one_cycle(params, **kwargs)
    ref, sched = family.reference.torch_one_cycle(reference, **kwargs)

    def torch_step(step):
        for r, g in zip(reference, grads[step]):
            r.grad = g.clone()
        ref.step()
        sched.step()

    for step in range(warmup):
        for p, g in zip(params, grads[step]):
            p.grad = g.clone()
        opt.step()
        torch_step(step)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    torch.cuda.synchronize()
    assert opt.schedule_step == warmup  # capture recorded the step without running it
    family.reference.assert_states_match(opt, ref, params, reference, "after capture", **family.tolerance())
    for step in range(warmup, steps):
        for p, g in zip(params, grads[step]):
            p.grad.copy_(g)
        graph.replay()
        torch_step(step)
        torch.cuda.synchronize()
        family.reference.assert_states_match(opt, ref, params, reference, step, **family.tolerance())
    assert opt.schedule_step == steps
    assert opt.get_last_lr() == sched.get_last_lr()
    assert [family.shown(g) for g in opt.param_groups] == [family.shown(g) for g in ref.param_groups]

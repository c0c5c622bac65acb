"""CUDA-only behaviour: no host sync in step(), CUDA graph capture and replay. (Numerics on CUDA
run in the other files, parametrised over the available devices.)"""
import pytest
import torch

import lrfused
from conftest import requires_cuda, step_twice_without_host_sync
from reference import step_both

pytestmark = requires_cuda()


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).cuda()


def test_step_does_not_sync_with_the_host():
    model = make_model()
    opt = lrfused.FusedOneCycleSGD(model.parameters(), max_lr=0.1, total_steps=10, weight_decay=1e-4)
    x = torch.randn(16, 32, device="cuda")
    model(x).sum().backward()
    opt.step()  # the first step allocates the momentum state
    step_twice_without_host_sync(opt)


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


@pytest.mark.parametrize("with_huge_tensor", [False, True], ids=["many_tensors", "many_chunks"])
def test_an_eager_step_of_any_size_is_one_launch(with_huge_tensor):
    params, groups = big_step_layout(with_huge_tensor)
    opt = lrfused.FusedCyclicSGD(groups, base_lr=0.01, max_lr=0.1, step_size_up=2)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    assert update_launches(opt.step) == 1


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

"""CUDA-only behaviour: no host sync in step(), CUDA graph capture and replay. (Numerics on CUDA
run in the other files, parametrised over the available devices.)"""
import pytest
import torch

import lrfused
from conftest import requires_cuda

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
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


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
    # Capture recorded but did not run the step; its host count moved by one, the device's did not.
    assert int(opt._step) == warmup
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


def test_many_tensors_and_groups_span_several_launches():
    """More tensors, blocks and groups than one launch's tables hold."""
    params = [torch.randn(n, device="cuda") for n in [1, 3, 70000] * 70] + [torch.randn(65536 * 1300 + 5, device="cuda")]
    groups = [{"params": params[i::14], "weight_decay": 1e-3 * i} for i in range(14)]
    reference = [p.clone() for p in params]
    ref_groups = [{"params": reference[i::14], "weight_decay": 1e-3 * i} for i in range(14)]
    opt = lrfused.FusedCyclicSGD(groups, base_lr=0.01, max_lr=0.1, step_size_up=2)
    ref = torch.optim.SGD(ref_groups, lr=0.01, momentum=0.9, foreach=False)
    sched = torch.optim.lr_scheduler.CyclicLR(ref, base_lr=0.01, max_lr=0.1, step_size_up=2)
    for _ in range(3):
        for p, r in zip(params, reference):
            g = torch.randn_like(p)
            p.grad, r.grad = g, g.clone()
        opt.step()
        ref.step()
        sched.step()
    for p, r in zip(params, reference):
        torch.testing.assert_close(p, r)

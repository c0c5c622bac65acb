"""The step counter, the first-step flags and a Table's device rows across a model move, a CUDA
graph capture and a state-dict load (the CUDA review of issue 19)."""
import copy
import gc
import weakref

import pytest
import torch

import lrfused
from conftest import DEVICES, requires_cuda
from lrfused.schedules import Constant, Cyclic, OneCycle, Ramp, Table, WarmRestarts, WarmupCosine
from reference.sgd import step_both, torch_one_cycle

SCHEDULES = {
    "constant": lambda: Constant(),
    "one_cycle": lambda: OneCycle(max_lr=0.1, total_steps=10),
    "cyclic": lambda: Cyclic(base_lr=0.01, max_lr=0.1, step_size_up=2),
    "warm_restarts": lambda: WarmRestarts(max_lr=0.1, T_0=3),
    "warmup_cosine": lambda: WarmupCosine(total_steps=10, warmup_steps=2),
    "ramp": lambda: Ramp(start_lr=1e-3, end_lr=1.0, num_iter=10),
    "table": lambda: Table([1.0, 0.5, 0.25], momentum=[0.9, 0.8, 0.7]),
}


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _backward(model, device):
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1)).to(device)
    model.zero_grad()
    model(x).square().mean().backward()


@requires_cuda()
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_model_moved_to_cuda_after_construction_steps(schedule):
    """The counter follows the params before the groups' configs are built: a Table's rows are
    copied to the params' device at the first step, not left on the CPU."""
    model, twin = _model(), _model().cuda()
    opt = lrfused.FusedSGD(model.parameters(), lr=0.05, momentum=0.9, schedule=SCHEDULES[schedule]())
    made_on_cuda = lrfused.FusedSGD(twin.parameters(), lr=0.05, momentum=0.9, schedule=SCHEDULES[schedule]())
    model.cuda()
    for _ in range(3):
        for m, o in ((model, opt), (twin, made_on_cuda)):
            _backward(m, "cuda")
            o.step()
    assert opt._step.is_cuda and opt.schedule_step == 3
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def _train(fused, torch_opt, sched, params, ref_params, steps):
    for _ in range(steps):
        step_both(fused, torch_opt, sched, params, ref_params)
        for p, r in zip(params, ref_params):
            torch.testing.assert_close(p, r)
            torch.testing.assert_close(fused.state[p]["momentum_buffer"], torch_opt.state[r]["momentum_buffer"])


@pytest.mark.parametrize("device", DEVICES)
def test_a_schedule_restarted_by_a_lower_step_keeps_the_momentum(device):
    """A state dict with a lower schedule_step restarts the schedule; every buffer continues (torch:
    a new OneCycleLR on an SGD that has its buffers), on the CPU and on CUDA alike."""
    params = [torch.randn(n, device=device) for n in (1, 300, 4097)]
    ref_params = [p.clone() for p in params]
    kwargs = dict(max_lr=0.2, total_steps=6, weight_decay=1e-3)
    fused = lrfused.FusedOneCycleSGD(params, **kwargs)
    torch_opt, sched = torch_one_cycle(ref_params, **kwargs)
    _train(fused, torch_opt, sched, params, ref_params, 3)

    restarted = copy.deepcopy(fused.state_dict())
    restarted["schedule_step"] = torch.tensor(0)
    fused.load_state_dict(restarted)
    assert fused.schedule_step == 0
    # Every flag below the counter: the CUDA kernel reads flag == step as "first written in this step".
    assert all(int(fused.state[p]["momentum_first_step"]) < 0 for p in params)
    buffers = [torch_opt.state[r]["momentum_buffer"] for r in ref_params]
    torch_opt, sched = torch_one_cycle(ref_params, **kwargs)
    for r, b in zip(ref_params, buffers):
        torch_opt.state[r]["momentum_buffer"] = b
    _train(fused, torch_opt, sched, params, ref_params, 6)


def test_load_state_dict_writes_the_counter_in_place():
    """A graph captured before a load holds the counter's address: the load writes into it."""
    params = [torch.randn(5)]
    opt = lrfused.FusedSGD(params, lr=0.1, schedule=Table([1.0, 0.5, 0.25, 0.125]))
    counter = opt._step
    for _ in range(3):
        params[0].grad = torch.randn(5)
        opt.step()
    state = copy.deepcopy(opt.state_dict())
    state["schedule_step"] = torch.tensor(1)
    opt.load_state_dict(state)
    assert opt._step is counter and int(counter) == 1 and opt.schedule_step == 1
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5


@requires_cuda()
def test_a_captured_step_leaves_the_host_count_unknown_until_read():
    """Capture records the step without running it: schedule_step and get_last_lr() stay at the
    last eager step; after a capture they read the device each time (replays move the counter), and
    the end-of-schedule check holds after the replays."""
    total, warmup = 6, 2
    params = [torch.randn(300, device="cuda")]
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.2, total_steps=total)
    twin = lrfused.FusedOneCycleSGD([torch.randn(300, device="cuda")], max_lr=0.2, total_steps=total)
    params[0].grad = torch.randn(300, device="cuda")
    for _ in range(warmup):
        opt.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    assert opt.schedule_step == warmup
    for _ in range(warmup):
        twin.param_groups[0]["params"][0].grad = torch.zeros(300, device="cuda")
        twin.step()
    assert opt.get_last_lr() == twin.get_last_lr()
    graph.replay()
    assert opt.schedule_step == warmup + 1
    for _ in range(total - warmup - 1):
        graph.replay()
    assert opt.schedule_step == total
    with pytest.raises(ValueError, match=f"Tried to step {total + 1} times"):
        opt.step()


@requires_cuda()
def test_a_load_keeps_what_a_captured_graph_reads():
    """After a load, replaying a graph captured before it advances the loaded counter (written in
    place) and reads the Table rows captured (kept alive), with a warning to capture again."""
    rows = [1.0, 0.5, 0.25, 0.125, 0.0625]
    p = torch.zeros(4, device="cuda")
    opt = lrfused.FusedSGD([p], lr=1.0, schedule=Table(rows))
    p.grad = torch.ones(4, device="cuda")
    opt.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    table = weakref.ref(opt._configs[0].table)
    state = copy.deepcopy(opt.state_dict())
    state["schedule_step"] = torch.tensor(3)
    with pytest.warns(UserWarning, match="capture it again"):
        opt.load_state_dict(state)
    opt._configs.clear()
    gc.collect()
    assert table() is not None
    before = p.clone()
    graph.replay()
    torch.cuda.synchronize()
    assert int(opt._step) == 4
    torch.testing.assert_close(p, before - rows[3], rtol=0, atol=0)


def test_a_table_rebuilt_inside_a_capture_is_refused_before_anything_changes(monkeypatch):
    """A group whose config is rebuilt (a changed setting; a load while the host count is unknown,
    after captured steps) sends a Table's rows to the device again at the next step: inside a CUDA
    graph capture that copy from pageable memory is forbidden, so the step refuses, naming the fix,
    with the params and the counter untouched. (The capture check is stood in for, so that the CPU
    reaches the path.)"""
    import lrfused._graphs as graphs

    p = torch.zeros(4)
    opt = lrfused.FusedSGD([p], lr=1.0, momentum=0.9, schedule=Table([1.0, 0.5, 0.25]))
    p.grad = torch.ones(4)
    opt.step()
    opt.param_groups[0]["weight_decay"] = 1e-3
    before, step = p.clone(), int(opt._step)
    monkeypatch.setattr(graphs, "capturing", lambda device: True)
    with pytest.raises(RuntimeError, match="take one eager step\\(\\) after loading or editing"):
        opt.step()
    assert torch.equal(p, before) and int(opt._step) == step
    monkeypatch.setattr(graphs, "capturing", lambda device: False)
    opt.step()  # eagerly the table is rebuilt and the step runs
    assert not torch.equal(p, before)

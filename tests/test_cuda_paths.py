"""The CUDA step's less travelled paths: misaligned views (the scalar fallback), a graph over more
tensors than one launch holds whose first momentum write happens in a replay (AdamW: whose counts
advance once although a tensor spans two launches), the device-table launch without host syncs,
CPU and CUDA on the same inputs (SGD and AdamW), and torch.compile on CUDA."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch.optim.lr_scheduler import OneCycleLR

import lrfused
from conftest import DEVICES, DTYPES, dtype_id, requires_cuda, step_twice_without_host_sync
from reference.adamw import MOMENT_KEYS, TOLERANCES, assert_states_match, random_grad
from reference.sgd import step_both, torch_one_cycle

ONE_CYCLE = dict(max_lr=0.3, total_steps=6, weight_decay=1e-3, nesterov=True)


def _misaligned(n, dtype, device):
    """n elements one past the start of a buffer: 4 or 8 bytes off a 16-byte boundary."""
    return torch.randn(n + 1, dtype=dtype, device=device)[1:]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=dtype_id)
def test_misaligned_views_match_torch(dtype, device):
    """Params and grads that are views one element into their storage take the scalar loop."""
    sizes = [1, 7, 4097, 65536 + 3]
    params = [_misaligned(n, dtype, device) for n in sizes]
    ref_params = [p.clone() for p in params]
    fused = lrfused.FusedOneCycleSGD(params, **ONE_CYCLE)
    torch_opt, sched = torch_one_cycle(ref_params, **ONE_CYCLE)
    for step in range(ONE_CYCLE["total_steps"]):
        step_both(fused, torch_opt, sched, params, ref_params, make_grad=lambda p: _misaligned(p.numel(), p.dtype, p.device))
        for p, r in zip(params, ref_params):
            assert p.data_ptr() % 16 != 0
            torch.testing.assert_close(p, r, msg=lambda m: f"step {step}: {m}")
            torch.testing.assert_close(fused.state[p]["momentum_buffer"], torch_opt.state[r]["momentum_buffer"])


@requires_cuda()
@pytest.mark.parametrize("count_skipped_steps", [True, False])
def test_a_graph_over_many_tensors_writes_the_first_momentum_in_a_replay(count_skipped_steps):
    """200 tensors and one of 1,300 chunks: several launches under capture, one tensor split between
    two of them. The eager warm-up step is skipped for found_inf, so every buffer is first written
    (buf = grad) by a replay. Replays equal eager steps, counter and first-step flags included."""
    steps = 4
    sizes = [1, 3, 70000, 0] * 50 + [65536 * 1300 + 5]
    initial = [torch.randn(n, device="cuda") for n in sizes]
    grads = [[torch.randn(n, device="cuda") for n in sizes] for _ in range(steps)]
    found = [1.0] + [0.0] * (steps - 1)

    def make(params):
        groups = [{"params": params[i::3], "weight_decay": 1e-3 * i} for i in range(3)]
        return lrfused.FusedOneCycleSGD(groups, max_lr=0.2, total_steps=steps, count_skipped_steps=count_skipped_steps)

    eager_params = [p.clone() for p in initial]
    eager = make(eager_params)
    for step in range(steps):
        for p, g in zip(eager_params, grads[step]):
            p.grad = g.clone()
        eager.found_inf = torch.tensor(found[step], device="cuda")
        eager.step()

    params = [p.clone() for p in initial]
    opt = make(params)
    for p, g in zip(params, grads[0]):
        p.grad = g.clone()
    found_inf = torch.tensor(found[0], device="cuda")
    opt.found_inf = found_inf
    opt.step()  # eager and skipped: the state exists, no buffer is written
    assert all(int(opt.state[p]["momentum_first_step"]) == lrfused._C.NEVER_WRITTEN for p in params)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for step in range(1, steps):
        for p, g in zip(params, grads[step]):
            p.grad.copy_(g)
        found_inf.fill_(found[step])
        graph.replay()
    torch.cuda.synchronize()

    assert int(opt._step) == int(eager._step) == (steps if count_skipped_steps else steps - 1)
    for i, (p, q) in enumerate(zip(params, eager_params)):
        torch.testing.assert_close(p, q, msg=lambda m: f"param {i}: {m}")
        torch.testing.assert_close(opt.state[p]["momentum_buffer"], eager.state[q]["momentum_buffer"])
        first = int(opt.state[p]["momentum_first_step"])
        assert first == int(eager.state[q]["momentum_first_step"])
        if p.numel() > 0:  # (no block runs for an empty tensor)
            assert first == (1 if count_skipped_steps else 0)


@requires_cuda()
@pytest.mark.parametrize("family", ["sgd", "adamw"])
def test_the_device_table_step_does_not_sync_with_the_host(family):
    """An eager step over more than 160 tensors: its table goes through pinned memory to the
    device, asynchronously, and the step is one launch (AdamW: and one launch of the table's count
    kernel, which advances the empty tensors' counts too)."""
    sizes = [1, 3, 700] * 70 if family == "sgd" else [1, 3, 700, 0] * 70
    params = [torch.randn(n, device="cuda") for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)
    if family == "sgd":
        opt = lrfused.FusedCyclicSGD(params, base_lr=0.01, max_lr=0.1, step_size_up=2, weight_decay=1e-4)
    else:
        opt = lrfused.FusedOneCycleAdamW(params, max_lr=0.05, total_steps=10, amsgrad=True)
    opt.step()  # makes the momentum state
    step_twice_without_host_sync(opt)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        opt.step()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    assert sum("fused_step_table_kernel" in n for n in names) == 1 and not any("fused_step_kernel" in n for n in names)
    if family == "adamw":
        assert sum("advance_table_counts_kernel" in n for n in names) == 1
        assert not any("advance_counts_kernel" in n for n in names)
        assert [float(opt.state[p]["step"]) for p in params] == [4.0] * len(params)


@requires_cuda()
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_cpu_and_cuda_give_the_same_step(dtype):
    """Each step from the same params, buffers and grads on both devices: the results agree to
    torch.testing's default tolerance of the dtype (README: CUDA contracts multiply-adds, the CPU
    does not; float16/bfloat16 round once from float32, so they differ by at most one unit)."""
    sizes = [1, 7, 4097, 65536 + 3]
    cpu = [torch.randn(n, dtype=dtype) for n in sizes]
    cuda = [p.cuda() for p in cpu]

    def make(params):
        groups = [{"params": params[:2], "dampening": 0.2}, {"params": params[2:], "nesterov": True, "weight_decay": 1e-2}]
        return lrfused.FusedOneCycleSGD(groups, max_lr=0.3, total_steps=6)

    on_cpu, on_cuda = make(cpu), make(cuda)
    for step in range(6):
        for p, q in zip(cpu, cuda):
            q.copy_(p)  # the same inputs for this step
            if p in on_cpu.state:
                on_cuda.state[q]["momentum_buffer"].copy_(on_cpu.state[p]["momentum_buffer"])
            p.grad = torch.randn_like(p)
            q.grad = p.grad.cuda()
        on_cpu.step()
        on_cuda.step()
        for p, q in zip(cpu, cuda):
            torch.testing.assert_close(q.cpu(), p, msg=lambda m: f"step {step}: {m}")
            torch.testing.assert_close(on_cuda.state[q]["momentum_buffer"].cpu(), on_cpu.state[p]["momentum_buffer"])
    assert on_cpu.get_last_lr() == on_cuda.get_last_lr()


@requires_cuda()
@pytest.mark.parametrize("count_skipped_steps", [True, False], ids=["skips_counted", "skips_not_counted"])
def test_an_adamw_graph_over_many_tensors_advances_each_count_once_per_replay(count_skipped_steps):
    """200 tensors (50 empty) and one of 1,300 chunks under capture: several by-value launches (more
    tensors, counts and chunks than one holds), the big tensor's chunks in two of them. Each replay
    advances every param's own step exactly once (the big one's after its last chunk, so all its
    blocks use the same step), a replay skipped for found_inf none; params, moments and steps equal
    torch AdamW + OneCycleLR (a skipped step: no opt.step(), and sched.step() if skips count)."""
    steps, skipped = 5, 3
    sizes = [1, 3, 70000, 0] * 50 + [65536 * 1300 + 5]
    initial = [torch.randn(n, device="cuda") for n in sizes]
    grads = [[torch.randn(n, device="cuda") for n in sizes] for _ in range(steps)]
    params, reference = [p.clone() for p in initial], [p.clone() for p in initial]

    def groups(ps):
        return [{"params": ps[i::3], "weight_decay": 1e-3 * i, "amsgrad": i == 2} for i in range(3)]

    kwargs = dict(max_lr=0.05, total_steps=steps)
    opt = lrfused.FusedOneCycleAdamW(groups(params), count_skipped_steps=count_skipped_steps, **kwargs)
    ref = torch.optim.AdamW(groups(reference), lr=0.1, foreach=False)
    sched = OneCycleLR(ref, **kwargs)
    found_inf = torch.zeros((), device="cuda")
    opt.found_inf = found_inf
    for p, g in zip(params, grads[0]):
        p.grad = g.clone()
    opt.step()  # eager: makes the state
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    assert [float(opt.state[p]["step"]) for p in params] == [1.0] * len(params)

    expected = 1
    for step in range(steps):
        for r, g in zip(reference, grads[step]):
            r.grad = g.clone()
        if step != skipped:
            ref.step()
        if step != skipped or count_skipped_steps:
            sched.step()
        if step == 0:
            continue  # the eager step above
        for p, g in zip(params, grads[step]):
            p.grad.copy_(g)
        found_inf.fill_(float(step == skipped))
        graph.replay()
        torch.cuda.synchronize()
        expected += step != skipped
        counts = torch.stack([opt.state[p]["step"] for p in params]).cpu()
        assert counts.eq(expected).all(), f"replay {step}: counts {counts.unique().tolist()}, expected {expected}"
        assert_states_match(opt, ref, params, reference, step, **TOLERANCES[torch.float32])
    assert int(opt._step) == (steps if count_skipped_steps else steps - 1)


@requires_cuda()
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_cpu_and_cuda_give_the_same_adamw_step(dtype):
    """AdamW: each step from the same params, moments, steps and grads on both devices (3 groups:
    amsgrad, maximize, no weight decay); the results agree to torch.testing's default tolerance of
    the dtype (CUDA contracts multiply-adds, the CPU does not)."""
    sizes = [1, 7, 4097, 65536 + 3, 0]
    cpu = [torch.randn(n, dtype=dtype) for n in sizes]
    cuda = [p.cuda() for p in cpu]

    def make(params):
        groups = [{"params": params[:2], "amsgrad": True}, {"params": params[2:4], "maximize": True},
                  {"params": params[4:], "weight_decay": 0.0}]
        return lrfused.FusedOneCycleAdamW(groups, max_lr=0.05, total_steps=6, weight_decay=1e-2)

    on_cpu, on_cuda = make(cpu), make(cuda)
    for step in range(6):
        for p, q in zip(cpu, cuda):
            q.copy_(p)  # the same inputs for this step
            if p in on_cpu.state:
                for key in MOMENT_KEYS + ("step",):
                    if key in on_cpu.state[p]:
                        on_cuda.state[q][key].copy_(on_cpu.state[p][key])
            p.grad = random_grad(p.shape, dtype, "cpu")
            q.grad = p.grad.cuda()
        on_cpu.step()
        on_cuda.step()
        for i, (p, q) in enumerate(zip(cpu, cuda)):
            where = f"step {step}, param {i}"
            torch.testing.assert_close(q.cpu(), p, msg=lambda m: f"{where}: {m}")
            assert on_cuda.state[q].keys() == on_cpu.state[p].keys(), where
            assert float(on_cuda.state[q]["step"]) == float(on_cpu.state[p]["step"]) == step + 1, where
            for key in MOMENT_KEYS:
                if key in on_cpu.state[p]:
                    torch.testing.assert_close(on_cuda.state[q][key].cpu(), on_cpu.state[p][key],
                                               msg=lambda m: f"{where}, {key}: {m}")
    assert on_cpu.get_last_lr() == on_cuda.get_last_lr()


@requires_cuda()
def test_a_compiled_step_on_cuda_equals_eager_steps():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).cuda()
    twin = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).cuda()
    twin.load_state_dict(model.state_dict())
    compiled_opt = lrfused.FusedOneCycleSGD(model.parameters(), max_lr=0.2, total_steps=8, weight_decay=1e-3)
    eager_opt = lrfused.FusedOneCycleSGD(twin.parameters(), max_lr=0.2, total_steps=8, weight_decay=1e-3)
    backend = CompileCounterWithBackend("inductor")
    compiled_step = torch.compile(compiled_opt.step, backend=backend)
    for step in range(8):
        x = torch.randn(5, 8, device="cuda")
        for m in (model, twin):
            m.zero_grad()
            m(x).square().mean().backward()
        compiled_step()
        eager_opt.step()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q), f"step {step}"
    # One compile, one recompile once the momentum state exists, none while the LR moves.
    assert backend.frame_count <= 2
    assert compiled_opt.schedule_step == eager_opt.schedule_step == 8
    assert compiled_opt.get_last_lr() == eager_opt.get_last_lr()
    torch._dynamo.reset()

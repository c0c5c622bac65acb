"""lrfused under torch.distributed on CPU (gloo, 2 processes): DDP, DTensor / FSDP2 parameters (the
kernel updates the local shards), and the range test under DDP."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.optim.lr_scheduler import OneCycleLR

import lrfused

WORLD = 2
STEPS = 6

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(worker, tmp_path):
    mp.spawn(_entry, args=(worker, _free_port(), str(tmp_path)), nprocs=WORLD, join=True)


def _entry(rank, worker, port, tmp):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        worker(rank, tmp)
    finally:
        dist.destroy_process_group()


def _model():
    torch.manual_seed(0)  # the same initial weights on every rank
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _shard(rank, step):
    generator = torch.Generator().manual_seed(100 * step + rank)  # each rank its own data
    return torch.randn(8, 6, generator=generator), torch.randn(8, 3, generator=generator)


def _ddp_worker(rank, tmp):
    from torch.nn.parallel import DistributedDataParallel as DDP

    fused_model, torch_model = DDP(_model()), DDP(_model())
    fused = lrfused.FusedOneCycleSGD(fused_model.parameters(), max_lr=0.3, total_steps=STEPS, weight_decay=1e-3)
    ref = torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=False)
    sched = OneCycleLR(ref, max_lr=0.3, total_steps=STEPS)
    for step in range(STEPS):
        x, y = _shard(rank, step)
        for model, opt in ((fused_model, fused), (torch_model, ref)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()  # DDP averages the grads
            opt.step()
        sched.step()
        for p, q in zip(fused_model.parameters(), torch_model.parameters()):
            torch.testing.assert_close(p, q)
    # Every rank holds the same weights.
    for p in fused_model.parameters():
        gathered = [torch.empty_like(p) for _ in range(WORLD)]
        dist.all_gather(gathered, p.detach())
        assert all(torch.equal(g, gathered[0]) for g in gathered)


def test_ddp_matches_torch_sgd_one_cycle(tmp_path):
    _run(_ddp_worker, tmp_path)


def _dtensor_worker(rank, tmp):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (WORLD,))
    torch.manual_seed(0)
    full = [torch.randn(10, 3), torch.randn(7), torch.randn(4, 4)]
    reference = [t.clone() for t in full]
    sharded = [torch.nn.Parameter(distribute_tensor(t.clone(), mesh, [Shard(0)])) for t in full]
    fused = lrfused.FusedOneCycleSGD(sharded, max_lr=0.3, total_steps=STEPS, weight_decay=1e-2, nesterov=True)
    ref = torch.optim.SGD(reference, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True, foreach=False)
    sched = OneCycleLR(ref, max_lr=0.3, total_steps=STEPS)
    for step in range(STEPS):
        torch.manual_seed(step)
        grads = [torch.randn_like(t) for t in full]
        for p, r, g in zip(sharded, reference, grads):
            p.grad = distribute_tensor(g, mesh, [Shard(0)])
            r.grad = g.clone()
        fused.step()
        ref.step()
        sched.step()
        for p, r in zip(sharded, reference):
            torch.testing.assert_close(p.full_tensor(), r)
            torch.testing.assert_close(fused.state[p]["momentum_buffer"].full_tensor(), ref.state[r]["momentum_buffer"])


def test_dtensor_params_update_their_local_shards(tmp_path):
    _run(_dtensor_worker, tmp_path)


def _fsdp2_worker(rank, tmp):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))
    sharded_model, local_model = _model(), _model()
    for layer in sharded_model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(sharded_model, mesh=mesh)
    fused = lrfused.FusedOneCycleSGD(sharded_model.parameters(), max_lr=0.3, total_steps=STEPS)
    ref = torch.optim.SGD(local_model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    sched = OneCycleLR(ref, max_lr=0.3, total_steps=STEPS)
    for step in range(STEPS):
        shards = [_shard(r, step) for r in range(WORLD)]
        x, y = shards[rank]
        fused.zero_grad()
        torch.nn.functional.mse_loss(sharded_model(x), y).backward()  # FSDP2 reduce-scatters the mean grad
        fused.step()
        ref.zero_grad()
        x_all, y_all = torch.cat([s[0] for s in shards]), torch.cat([s[1] for s in shards])
        torch.nn.functional.mse_loss(local_model(x_all), y_all).backward()  # the same mean over all data
        ref.step()
        sched.step()
        for p, q in zip(sharded_model.parameters(), local_model.parameters()):
            torch.testing.assert_close(p.full_tensor(), q, rtol=1e-5, atol=1e-6)


def test_fsdp2_fully_shard_matches_unsharded_training(tmp_path):
    _run(_fsdp2_worker, tmp_path)


def _range_test_worker(rank, tmp):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from lrfused.find import range_test

    model = DDP(_model())
    data = [_shard(rank, step) for step in range(40)]
    result = range_test(model, data, torch.nn.functional.mse_loss, num_iter=40, end_lr=100.0, progress=False)
    result.plot(os.path.join(tmp, f"rank{rank}.png"))
    losses = torch.tensor([v if v == v else -1.0 for v in result.losses])
    gathered = [torch.empty_like(losses) for _ in range(WORLD)]
    dist.all_gather(gathered, losses)  # same length too: all ranks stopped at the same step
    assert torch.equal(gathered[0], gathered[1])


def test_range_test_under_ddp_averages_losses_and_rank_0_writes(tmp_path):
    _run(_range_test_worker, tmp_path)
    assert (tmp_path / "rank0.png").exists() and not (tmp_path / "rank1.png").exists()

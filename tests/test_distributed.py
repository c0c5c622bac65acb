"""lrfused under torch.distributed on CPU (gloo, 2 processes): DDP, DTensor / FSDP2 parameters (the
kernel updates the local shards), and the range test under DDP."""
import datetime
import functools
import math
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.optim.lr_scheduler import OneCycleLR

import lrfused

WORLD = 2
STEPS = 6

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _run(worker, tmp_path):
    mp.spawn(_entry, args=(worker, str(tmp_path)), nprocs=WORLD, join=True)


def _entry(rank, worker, tmp):
    torch.set_num_threads(1)
    # Five minutes, not gloo's default half hour: a rank left waiting fails the test rather than hang
    # it, with room for a loaded machine.
    # The ranks meet through a file in the test's own folder: no port to race other processes for.
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=300),
    )
    try:
        worker(rank, tmp)
    finally:
        dist.destroy_process_group()
    _exit_without_finalizing()


def _exit_without_finalizing():
    """Ends a worker that passed without running the interpreter's shutdown.

    A DDP model keeps the gloo process group, and so its worker threads, alive past
    destroy_process_group(). A gloo thread drops its reference to a finished collective's tensors a
    moment after the collective returns; if the last Python reference is already gone (the tensors
    of the worker's final all_gather, freed when it returns), that drop must take the GIL, and
    during Py_FinalizeEx taking the GIL ends the thread inside a noexcept destructor:
    std::terminate, SIGABRT ("terminate called without an active exception"; pytorch/pytorch
    #190489). Whether the thread is that late depends on scheduling, so the crash came and went.
    Skipping finalization removes the race; a worker that raised still exits through mp.spawn,
    which reports its traceback."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _model():
    torch.manual_seed(0)  # the same initial weights on every rank
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _shard(rank, step):
    generator = torch.Generator().manual_seed(100 * step + rank)  # each rank its own data
    return torch.randn(8, 6, generator=generator), torch.randn(8, 3, generator=generator)


def _ddp_matches(rank, make_fused, make_ref):
    """Fused and torch optimizers (+ OneCycleLR) train two DDP copies of one model on each rank's data."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    fused_model, torch_model = DDP(_model()), DDP(_model())
    fused, ref = make_fused(fused_model.parameters()), make_ref(torch_model.parameters())
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


def _ddp_worker(rank, tmp):
    _ddp_matches(
        rank,
        lambda ps: lrfused.FusedOneCycleSGD(ps, max_lr=0.3, total_steps=STEPS, weight_decay=1e-3),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=False),
    )


def _ddp_adamw_worker(rank, tmp):
    _ddp_matches(
        rank,
        lambda ps: lrfused.FusedOneCycleAdamW(ps, max_lr=0.3, total_steps=STEPS, weight_decay=1e-2, amsgrad=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=1e-2, amsgrad=True, foreach=False),
    )


def test_ddp_matches_torch_sgd_one_cycle(tmp_path):
    _run(_ddp_worker, tmp_path)


def test_ddp_matches_torch_adamw_one_cycle(tmp_path):
    _run(_ddp_adamw_worker, tmp_path)


def _dtensor_matches(make_fused, make_ref, state_keys):
    """The kernel updates each rank's local shards; the full tensors (params and the state under
    `state_keys`) equal torch's optimizer + OneCycleLR on the unsharded params."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (WORLD,))
    torch.manual_seed(0)
    full = [torch.randn(10, 3), torch.randn(7), torch.randn(4, 4)]
    reference = [t.clone() for t in full]
    sharded = [torch.nn.Parameter(distribute_tensor(t.clone(), mesh, [Shard(0)])) for t in full]
    fused, ref = make_fused(sharded), make_ref(reference)
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
            for key in state_keys:
                torch.testing.assert_close(fused.state[p][key].full_tensor(), ref.state[r][key])


def _dtensor_worker(rank, tmp):
    _dtensor_matches(
        lambda ps: lrfused.FusedOneCycleSGD(ps, max_lr=0.3, total_steps=STEPS, weight_decay=1e-2, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True, foreach=False),
        ["momentum_buffer"],
    )


def _dtensor_adamw_worker(rank, tmp):
    """As above; each param's step is a plain tensor on its device, not a DTensor."""
    _dtensor_matches(
        lambda ps: lrfused.FusedOneCycleAdamW(ps, max_lr=0.3, total_steps=STEPS, weight_decay=1e-2, amsgrad=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=1e-2, amsgrad=True, foreach=False),
        ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
    )


def test_dtensor_params_update_their_local_shards(tmp_path):
    _run(_dtensor_worker, tmp_path)


def test_dtensor_params_update_their_local_shards_adamw(tmp_path):
    _run(_dtensor_adamw_worker, tmp_path)


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


def _params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def _sweep_on_every_rank(rank, data, loss_fn=torch.nn.functional.mse_loss, **kwargs):
    """A DDP range test; checks that every rank stopped at the same step with the same losses and
    got its model back, and returns the result."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from lrfused.find import range_test

    model = DDP(_model())
    before = _params_of(model)
    result = range_test(model, data, loss_fn, progress=False, **kwargs)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    ends = [None] * WORLD  # (passes over the data are each rank's own)
    end = (result.end["reason"], result.end["step"], [v if math.isfinite(v) else repr(v) for v in result.losses])
    dist.all_gather_object(ends, end)
    assert all(end == ends[0] for end in ends), ends
    return result


def _non_finite_on_one_rank_worker(rank, tmp, at_step):
    calls = []

    def loss_fn(out, target):  # rank 1's loss is inf at `at_step` (before any divergence)
        calls.append(1)
        loss = torch.nn.functional.mse_loss(out, target)
        return loss * math.inf if rank == 1 and len(calls) == at_step + 1 else loss

    data = [_shard(rank, step) for step in range(30)]
    result = _sweep_on_every_rank(rank, data, loss_fn, num_iter=30, end_lr=1e-3)
    assert result.end["reason"] == "diverged" and result.end["step"] == at_step


def test_range_test_under_ddp_stops_every_rank_when_one_rank_loss_is_not_finite(tmp_path):
    _run(functools.partial(_non_finite_on_one_rank_worker, at_step=6), tmp_path)


def _early_divergence_worker(rank, tmp):
    data = [_shard(rank, step) for step in range(30)]
    result = _sweep_on_every_rank(rank, data, start_lr=10.0, end_lr=1e6, num_iter=30)
    assert result.end["reason"] == "diverged" and result.end["step"] <= 5


def test_range_test_under_ddp_diverging_early_stops_every_rank_together(tmp_path):
    _run(_early_divergence_worker, tmp_path)


def _out_of_data_worker(rank, tmp, kind):
    full = [_shard(rank, step) for step in range(20)]
    if kind == "one_shot_iterator":  # rank 1's runs out after 7 batches, rank 0's after 20
        data, expected_steps = iter(full if rank == 0 else full[:7]), 7
    else:  # rank 1 has no data at all
        data, expected_steps = (full if rank == 0 else []), 0
    result = _sweep_on_every_rank(rank, data, num_iter=20, end_lr=1e-2)
    assert result.end["reason"] == "out_of_data" and len(result.losses) == expected_steps


@pytest.mark.parametrize("kind", ["one_shot_iterator", "empty_list"])
def test_range_test_under_ddp_ends_every_rank_when_one_rank_runs_out_of_data(tmp_path, kind):
    _run(functools.partial(_out_of_data_worker, kind=kind), tmp_path)


def _different_settings_worker(rank, tmp):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from lrfused.find import range_test

    model = DDP(_model())
    before = _params_of(model)
    data = [_shard(rank, step) for step in range(10)]
    with pytest.raises(ValueError, match=r"same settings on every rank; by rank, end_lr: \[1.0, 2.0\]; num_iter: \[10, 12\]"):
        range_test(model, data, torch.nn.functional.mse_loss, num_iter=10 + 2 * rank, end_lr=1.0 + rank, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_range_test_under_ddp_refuses_settings_that_differ_between_ranks(tmp_path):
    _run(_different_settings_worker, tmp_path)


def _refused_on_one_rank_worker(rank, tmp):
    from torch.nn.parallel import DistributedDataParallel as DDP

    from lrfused.find import range_test

    model = DDP(_model())
    before = _params_of(model)
    data = [_shard(rank, step) for step in range(10)]
    sweep = functools.partial(range_test, model, data, torch.nn.functional.mse_loss, num_iter=10, progress=False)
    # rank 1's own argument is refused: every rank raises instead of waiting for it
    expected = r"^accumulation_steps" if rank == 1 else r"refused on another rank \(rank 1: ValueError: accumulation_steps"
    with pytest.raises(ValueError, match=expected):
        sweep(accumulation_steps=0 if rank == 1 else 1)
    # validation data on one rank only: each validation pass is collective under DDP
    with pytest.raises(ValueError, match=r"val_batches: \[2, None\]"):
        sweep(val_data=data[:2] if rank == 0 else None)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_range_test_under_ddp_raises_on_every_rank_when_one_rank_refuses_its_arguments(tmp_path):
    _run(_refused_on_one_rank_worker, tmp_path)

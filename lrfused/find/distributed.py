"""The range test under torch.distributed (DDP): every rank sees the same averaged losses, so all stop
at the same step; only rank 0 shows progress and writes files.

Every rank must call range_test with the same settings: the sweep's collectives (DDP's gradient
all-reduce in each backward, the loss average at each check, the agreement on batches below) then
come in the same order on every rank. The settings are compared once, before the sweep starts.
"""
import torch
import torch.distributed as dist


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def is_main_rank():
    """Rank 0, or the only process."""
    return not is_distributed() or dist.get_rank() == 0


def average_across_ranks(values):
    """`values` (a tensor) averaged over all ranks; itself outside distributed runs. (SUM then divide:
    gloo has no AVG.)"""
    if not is_distributed():
        return values
    return sum_tensor_across_ranks(values) / dist.get_world_size()


def sum_tensor_across_ranks(values):
    """`values` (a tensor) summed over all ranks; itself outside distributed runs."""
    if not is_distributed():
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def sum_across_ranks(counts, device):
    """Element-wise sums over all ranks of a few small integers (one all-reduce); `counts` itself
    outside distributed runs. `device`: where the collective runs (the model's device, which NCCL
    needs)."""
    if not is_distributed():
        return list(counts)
    return sum_tensor_across_ranks(torch.tensor(counts, dtype=torch.int64, device=device)).tolist()


def check_same_on_every_rank(settings, error=None):
    """Raises on every rank if any rank's argument checks failed (`error`: this rank's, or None) or
    any setting differs between ranks, in one all-gather: a rank that raised alone, or ranks that
    disagree on num_iter or check_every, would leave the others waiting in a collective forever.
    Outside distributed runs, raises `error` if given."""
    if not is_distributed():
        if error is not None:
            raise error
        return
    by_rank = [None] * dist.get_world_size()
    dist.all_gather_object(by_rank, (settings, None if error is None else f"{type(error).__name__}: {error}"))
    if error is not None:
        raise error
    failed = [(rank, message) for rank, (_, message) in enumerate(by_rank) if message is not None]
    if failed:
        detail = "; ".join(f"rank {rank}: {message}" for rank, message in failed)
        raise ValueError(f"range_test's arguments were refused on another rank ({detail})")
    differing = {name: [s.get(name) for s, _ in by_rank] for name in settings}
    differing = {name: values for name, values in differing.items() if any(v != values[0] for v in values)}
    if differing:
        detail = "; ".join(f"{name}: {values}" for name, values in differing.items())
        raise ValueError(f"range_test under torch.distributed needs the same settings on every rank; by rank, {detail}")

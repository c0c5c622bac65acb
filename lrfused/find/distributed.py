"""The range test under torch.distributed (DDP): every rank sees the same averaged losses, so all stop
at the same step; only rank 0 shows progress and writes files."""
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
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / dist.get_world_size()

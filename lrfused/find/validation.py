"""The loss on validation data during the sweep (torch-lr-finder's val_loader mode): every
`val_every` steps, in eval mode, without grad, at the sweep's precision."""
import collections.abc

import torch

from lrfused.find.batch import to_device
from lrfused.find.distributed import sum_tensor_across_ranks


def check_val_data(val_data):
    if val_data is None:
        return
    if isinstance(val_data, collections.abc.Iterator) or not isinstance(val_data, collections.abc.Iterable):
        raise TypeError(f"val_data must be re-iterable batches (a list, a DataLoader), got {type(val_data).__name__}")


@torch.no_grad()
def validation_loss(model, val_data, loss_of, precision, device):
    """The mean batch loss over val_data (under torch.distributed, over every rank's batches); the
    model is left in train mode, as the sweep runs it."""
    model.eval()
    try:
        total_and_count = torch.zeros(2, device=device)
        for batch in val_data:
            with precision.autocast():
                total_and_count[0] += loss_of(model, to_device(batch, device)).float()
            total_and_count[1] += 1
    finally:
        model.train()
    total, count = sum_tensor_across_ranks(total_and_count).tolist()  # before any raise: every rank takes part
    if count == 0:
        raise ValueError("val_data: no batches")
    return total / count

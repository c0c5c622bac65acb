"""What the range test is given on a task, as a new user would give it: a fresh model (its init from
the sweep seed), a shuffled DataLoader over the training set, the validation set, and the task's
optimizer family and weight decay."""
import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.lr_quality.training import fresh_model, val_batches


def sweep_inputs(task, seed):
    """(model, loader, loss_fn, settings): settings are range_test's keyword arguments."""
    model = fresh_model(task, seed)
    x, y, _, _ = task.tensors
    loader = DataLoader(TensorDataset(x, y), batch_size=task.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    settings = {"optimizer": task.family, "weight_decay": task.weight_decay, "progress": False}
    return model, loader, task.loss_fn(), settings


def validation_data(task):
    return val_batches(task)

"""A batch of any shape, and its loss: (inputs, targets) pairs, mappings (Hugging Face style, given to
the model as keyword arguments), or anything a `batch_loss(model, batch)` callable understands."""
import collections.abc

import torch


def map_tensors(fn, batch):
    """`batch` with fn applied to every tensor in it, nested in tuples, lists and mappings (mappings
    come back as dicts)."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, collections.abc.Mapping):
        return {key: map_tensors(fn, value) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(map_tensors(fn, item) for item in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(map_tensors(fn, item) for item in batch)
    return batch


def tensors_in(batch):
    """The tensors in `batch`, in the order map_tensors visits them."""
    found = []
    map_tensors(found.append, batch)
    return found


def to_device(batch, device):
    return map_tensors(lambda t: t.to(device, non_blocking=True), batch)


class BatchLoss:
    """loss(model, batch) -> the scalar loss the sweep trains on:
    - batch_loss(model, batch) when given;
    - a LightningModule (duck-typed: a model with training_step): training_step(batch, batch_idx),
      a tensor or a dict with "loss";
    - a mapping: model(**batch), then loss_fn(output, batch), or the output's `.loss` / `["loss"]`
      without a loss_fn;
    - an (inputs, targets) pair: loss_fn(model(inputs), targets), cross-entropy by default."""

    def __init__(self, loss_fn=None, batch_loss=None, model=None):
        if batch_loss is not None and loss_fn is not None:
            raise ValueError("loss_fn and batch_loss: give one or the other (batch_loss computes the whole loss)")
        self._lightning = batch_loss is None and callable(getattr(model, "training_step", None))
        if self._lightning and loss_fn is not None:
            raise ValueError(f"loss_fn: the model ({type(model).__name__}) has a training_step, which computes the loss; "
                             "give no loss_fn (or a batch_loss to compute it otherwise)")
        self._batch_idx = 0
        for name, value in (("loss_fn", loss_fn), ("batch_loss", batch_loss)):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__}")
        self._loss_fn = loss_fn
        self._batch_loss = batch_loss

    def __call__(self, model, batch):
        if self._batch_loss is not None:
            return _scalar(self._batch_loss(model, batch), "batch_loss(model, batch)")
        if self._lightning:
            output = model.training_step(batch, self._batch_idx)
            self._batch_idx += 1
            if isinstance(output, collections.abc.Mapping):
                output = output.get("loss")
            return _scalar(output, "model.training_step(batch, batch_idx)")
        if isinstance(batch, collections.abc.Mapping):
            output = model(**batch)
            if self._loss_fn is not None:
                return _scalar(self._loss_fn(output, batch), "loss_fn(output, batch)")
            return _scalar(_output_loss(output), "the model's output loss")
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(f"data must yield (inputs, targets) pairs or mappings, got {type(batch).__name__}; "
                            "for other batches give batch_loss(model, batch) -> loss")
        inputs, targets = batch
        loss_fn = self._loss_fn if self._loss_fn is not None else torch.nn.functional.cross_entropy
        return _scalar(loss_fn(model(inputs), targets), "loss_fn(outputs, targets)")


def _output_loss(output):
    loss = output.get("loss") if isinstance(output, collections.abc.Mapping) else getattr(output, "loss", None)
    if loss is None:
        raise ValueError(f"loss_fn: the model's output for a mapping batch ({type(output).__name__}) has no loss; "
                         "put the labels in the batch or give loss_fn(output, batch) -> loss")
    return loss


def _scalar(loss, what):
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"{what} must return a scalar tensor (the loss), got {got}")
    return loss

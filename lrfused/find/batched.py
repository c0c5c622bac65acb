"""A grid of range tests as one batched computation: the model's parameters stacked once per
(weight decay, momentum) combination, forward and backward of all copies in one `torch.func.vmap`,
and one fused step of the sweep's family updating every copy (one param group per combination, each
with its own weight decay, and momentum where the family's grid varies it). The same initial
weights, batches (and dropout masks) for every combination, as the sequential grid gives them.
"""
import math
import time

import torch

from lrfused.find.analysis import Smoother
from lrfused.find.distributed import average_across_ranks
from lrfused.find.batch import to_device
from lrfused.find.families import FAMILIES
from lrfused.find.sweep import Batches, OutOfData, SweepRecord
from lrfused.ramp import Ramp


def _as_pair(batch):
    """The batched grid trains on (inputs, targets) pairs only."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"data must yield (inputs, targets) pairs, got {type(batch).__name__}")
    return batch


class VmapUnsupported(Exception):
    """The model cannot run under torch.func.vmap (found at the first step, before any update)."""


def run_batched_sweeps(model, data, loss_fn, config, combinations, progress):
    """Sweeps every (weight_decay, momentum) of `combinations` at once; one SweepRecord each. The
    model itself is not modified (the copies are stacked tensors), but the caller restores RNGs."""
    from torch.func import functional_call, grad_and_value, vmap

    count = len(combinations)
    device = next(model.parameters()).device
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("model has no parameters that require grad: there is nothing to sweep")
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}

    def stacked(tensors):
        return {name: t.detach().unsqueeze(0).repeat(count, *([1] * t.dim())).contiguous() for name, t in tensors.items()}

    params, buffers = stacked(trained), stacked(dict(model.named_buffers()))

    def loss_of_one_copy(copy_params, copy_buffers, x, y):
        return loss_fn(functional_call(model, {**copy_params, **copy_buffers, **frozen}, (x,)), y)

    grads_and_losses = vmap(grad_and_value(loss_of_one_copy), in_dims=(0, 0, None, None), randomness="same")
    # Copy k's params are views params[name][k]: leaves (no autograd history), so an optimizer takes
    # them. Their grads are views of one stacked buffer per param, filled by one copy each step
    # (instead of count x params grad assignments).
    copies = [{name: params[name][k] for name in trained} for k in range(count)]
    grad_buffers = {name: torch.zeros_like(params[name]) for name in trained}
    for k, copy in enumerate(copies):
        for name, view in copy.items():
            view.grad = grad_buffers[name][k]
    family = FAMILIES[config.optimizer]
    groups = [{"params": list(copy.values()), **family.grid_point(wd, m)} for copy, (wd, m) in zip(copies, combinations)]
    ramp = Ramp(start_lr=config.start_lr, end_lr=config.end_lr, num_iter=config.num_iter, mode=config.mode)
    opt = family.sweep_optimizer(groups, config, ramp)
    history = torch.full((config.num_iter, count), math.nan, dtype=torch.float32, device=device)
    records = [SweepRecord(path="batched_vmap") for _ in range(count)]
    smoothers = [Smoother(config.smooth, config.diverge_threshold) for _ in range(count)]
    running = set(range(count))  # combinations not diverged yet
    batches = Batches(data, device)
    was_training = model.training
    model.train()
    checked = step = 0
    start = time.perf_counter()
    try:
        while step < config.num_iter and running:
            try:
                x, y = _as_pair(batches.next())
            except OutOfData:
                for k in running:
                    records[k].end = "out_of_data"
                break
            x, y = to_device((x, y), device)
            try:
                grads, losses = grads_and_losses(params, buffers, x, y)
            except (RuntimeError, NotImplementedError) as error:
                if step > 0:
                    raise
                # e.g. a data-dependent branch, .item(), an in-place op on an unbatched tensor
                raise VmapUnsupported(f"{type(error).__name__}: {error}") from error
            for name, buffer in grad_buffers.items():
                buffer.copy_(grads[name])
            history.index_copy_(0, opt.step_counter.view(1).clamp(max=config.num_iter - 1), losses.detach().float().view(1, count))
            opt.step()
            step += 1
            if step - checked >= config.check_every or step == config.num_iter:
                chunk = average_across_ranks(history[checked:step]).tolist()  # the one sync of this chunk
                for i, row in enumerate(chunk, start=checked):
                    for k in sorted(running):
                        records[k].losses.append(row[k])
                        if smoothers[k].add(row[k])[1]:
                            records[k].end, records[k].diverged_at = "diverged", i
                            running.discard(k)
                progress.update(step - checked)
                checked = step
    finally:
        model.train(was_training)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    for record in records:
        record.timings.update(sweep_s=elapsed, steps=step)
        record.passes = getattr(batches, "passes", 1)
    return records

"""The sweep: train for num_iter steps while the LR rises (applied as lrfused.find.stepping says), and
record every step's loss.

Each step writes its loss into a device-side history at the index of the optimizer's step counter,
so the host reads losses (and checks for divergence) only every `check_every` steps: one sync per
chunk. On CUDA, after a few eager warm-up steps, the training step (forward, backward, loss write,
fused step with the ramp computed in the kernel) is captured in a CUDA graph and replayed; the host
only copies each batch into static input buffers. Anything the capture cannot handle falls back to
eager steps, with the reason recorded.
"""
import collections.abc
import contextlib
import math
import time
from dataclasses import dataclass, field

import torch

from lrfused.find.analysis import Smoother
from lrfused.find.batch import map_tensors, tensors_in, to_device
from lrfused.find.distributed import average_across_ranks, is_distributed, sum_across_ranks
from lrfused.find.families import DEFAULT
from lrfused.find.precision import Precision
from lrfused.find.stepping import make_stepper, put
from lrfused.find.validation import validation_loss

WARMUP_STEPS = 3  # eager steps before capture: the optimizer state and autograd's buffers exist then
PRELOAD_FRACTION = 0.25  # preload the sweep's batches if they take at most this share of free memory


class OutOfData(Exception):
    """A one-shot iterator (or an empty iterable) had no further batch."""


@dataclass
class SweepConfig:
    start_lr: float
    end_lr: float
    num_iter: int
    mode: str
    smooth: float
    diverge_threshold: float
    momentum: float
    weight_decay: float
    nesterov: bool
    check_every: int
    cuda_graph: bool
    optimizer: str = DEFAULT  # a lrfused.find.families name | "<class name> (given)"
    precision: str = "fp32"  # fp32 | bf16 | fp16
    accumulation_steps: int = 1
    val_every: int = 1  # steps between validation losses, when val_data is given
    betas: tuple = None  # (settings of the families that take them: lrfused.find.families)
    eps: float = None
    one_cycle_lr: float = None  # set: a 1cycle run at this max_lr instead of the ramp (lrfused.find.confirm)


@dataclass
class SweepRecord:
    losses: list = field(default_factory=list)
    end: str = "completed"  # completed | diverged | out_of_data
    diverged_at: int = None
    path: str = "eager"  # eager | cuda_graph
    fallback_reason: str = None
    passes: int = 1  # passes over the data (it is cycled)
    skipped: list = field(default_factory=list)  # steps the fp16 GradScaler skipped (their losses not used)
    val: list = field(default_factory=list)  # (step, validation loss after it)
    timings: dict = field(default_factory=dict)


class Batches:
    """Batches from `data`, starting a new pass when one ends, unless `data` is a
    one-shot iterator (then OutOfData).

    Under torch.distributed every rank takes a batch or none: when one rank's data runs out, the
    sweep ends there on every rank (a rank that stopped alone would leave the others waiting in
    DDP's all-reduce). The ranks agree with one small all-reduce at the first batch, and at every
    batch if some rank's data can run out (a one-shot iterator, or an iterable without a length);
    data with a length, cycled, cannot.
    """

    def __init__(self, data, device):
        self._data = data
        self._device = device
        self._one_shot = isinstance(data, collections.abc.Iterator)
        self._can_run_out = self._one_shot or not _has_length(data)
        self._iterator = iter(data)
        self.passes = 1
        self.agree_each_batch = None  # known after the first batch

    def next(self):
        batch = self._take()
        missing = batch is None
        if self.agree_each_batch is not False:
            missing_ranks, ranks_that_can_run_out = sum_across_ranks([missing, self._can_run_out], self._device)
            if self.agree_each_batch is None:
                self.agree_each_batch = is_distributed() and ranks_that_can_run_out > 0
            missing = missing_ranks > 0
        if missing:
            raise OutOfData
        return batch

    def _take(self):
        """This rank's next batch, or None if its data ran out."""
        try:
            return next(self._iterator)
        except StopIteration:
            pass
        if self._one_shot:
            return None
        self._iterator = iter(self._data)
        self.passes += 1
        try:
            return next(self._iterator)
        except StopIteration:
            return None


def _has_length(data):
    try:
        len(data)
    except TypeError:
        return False
    return True


def run_sweep(model, data, loss_of, config, progress, optimizer=None, val_data=None):
    """Trains `model` through the sweep (the caller restores it) and returns the SweepRecord.
    loss_of(model, batch) -> the scalar loss (a lrfused.find.batch.BatchLoss).
    optimizer: a torch optimizer instance to sweep instead of config.optimizer. val_data: batches
    whose mean loss is recorded every config.val_every steps."""
    device = next(model.parameters()).device
    # The model's device made current (it need not be cuda:0), so that its work runs on the streams
    # the sweep sets up and captures.
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        return _sweep(model, data, loss_of, config, progress, optimizer, val_data, device)


def _sweep(model, data, loss_of, config, progress, optimizer, val_data, device):
    stepper = make_stepper(model, config, optimizer)
    opt = stepper.optimizer
    history = torch.full((config.num_iter,), math.nan, dtype=torch.float32, device=device)
    precision = Precision(config.precision, device)
    skipped = torch.zeros_like(history)  # 1 where the GradScaler skipped the step
    batches = Batches(data, device)
    record = SweepRecord()
    model.train()

    def train_step(micro_batches, set_to_none=True):
        """One LR step over config.accumulation_steps micro-batches, the loss averaged as in training."""
        opt.zero_grad(set_to_none=set_to_none)
        index, total = stepper.index(), 0.0
        for batch in micro_batches:
            with precision.autocast():
                loss = loss_of(model, batch)
            precision.backward(loss / len(micro_batches))
            total = total + loss.detach().float()
        put(history, index, total / len(micro_batches))
        was_skipped = precision.step(stepper)
        if was_skipped is not None:
            put(skipped, index, was_skipped.float())

    graph = None
    use_graph = config.cuda_graph and device.type == "cuda"
    if use_graph and not stepper.capturable:
        record.fallback_reason = f"optimizer {config.optimizer}: its LR is written on the host each step, not capturable; ran eager"
    elif use_graph and precision.scaler is not None:
        record.fallback_reason = "precision fp16: the GradScaler's bookkeeping runs on the host each step; ran eager"
    use_graph = use_graph and record.fallback_reason is None
    smoother = Smoother(config.smooth, config.diverge_threshold)
    checked, step = 0, 0
    counter_checked = not stepper.capturable  # only the kernel ramp keeps a device step counter
    start = time.perf_counter()
    stream = torch.cuda.Stream(device) if use_graph else None
    static = preloaded = None
    static_tensors = []  # the captured graph's input tensors, in tensors_in order
    try:
        while step < config.num_iter:
            try:
                batch = [to_device(batches.next(), device) for _ in range(config.accumulation_steps)]
            except OutOfData:
                record.end = "out_of_data"
                break
            if use_graph and step == 0 and not batches.agree_each_batch:  # (else every rank's next batch is a collective)
                preloaded = _preload(batches, batch[0], (config.num_iter - 1) * len(batch), device)
            if use_graph and step >= WARMUP_STEPS and graph is None and record.fallback_reason is None:
                static = map_tensors(torch.clone, batch)
                static_tensors = tensors_in(static)
                capture_start = time.perf_counter()
                graph, reason = _capture(train_step, static, opt, device)
                record.timings["capture_s"] = time.perf_counter() - capture_start
                if graph is None:
                    record.fallback_reason = reason
                    use_graph = False
            batch_tensors = tensors_in(batch) if graph is not None else None
            if graph is not None and _same_shapes(batch_tensors, static_tensors):
                for into, value in zip(static_tensors, batch_tensors):
                    into.copy_(value, non_blocking=True)
                graph.replay()
            elif use_graph and step < WARMUP_STEPS:
                stream.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(stream):
                    train_step(batch)
                torch.cuda.current_stream(device).wait_stream(stream)
            else:  # CPU, a fallback, or a batch whose shape the graph was not captured for
                train_step(batch, set_to_none=graph is None)
            step += 1
            if val_data is not None and step % config.val_every == 0:
                record.val.append((step - 1, validation_loss(model, val_data, loss_of, precision, device)))
            if preloaded is not None:
                batches = preloaded
            if step - checked >= config.check_every or step == config.num_iter:
                if not counter_checked and (graph is not None or not use_graph):  # warm-up over
                    _check_steps_ran(opt, step)
                    counter_checked = True
                # the one sync of this chunk; under DDP the mean over ranks, so all ranks stop together
                losses = average_across_ranks(history[checked:step]).tolist()
                was_skipped = skipped[checked:step].tolist() if precision.scaler is not None else [0.0] * len(losses)
                for i, (loss, skip) in enumerate(zip(losses, was_skipped), start=checked):
                    record.losses.append(loss)
                    if skip:
                        record.skipped.append(i)
                    elif smoother.add(loss)[1]:
                        record.end, record.diverged_at = "diverged", i
                        break
                progress.update(step - checked)
                checked = step
                if record.end == "diverged":
                    break
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        record.timings["sweep_s"] = time.perf_counter() - start
        record.timings["steps"] = step
    record.path = "cuda_graph" if graph is not None else "eager"
    record.passes = getattr(batches, "passes", 1)
    return record


def _check_steps_ran(opt, steps):
    """Once, after the first chunk on the sweep's final path: the counter moved once per step. A graph
    whose work ran on a stream it did not capture is empty, and its replays would leave NaN losses
    that read as divergence."""
    counted = int(opt.step_counter)
    if counted != steps:
        raise RuntimeError(
            f"the sweep's training steps did not run: the optimizer counted {counted} of {steps} steps "
            "(an empty CUDA graph: the model's work ran on a stream that was not captured); "
            "run with cuda_graph=False"
        )


def _same_shapes(ours, captured):
    """Whether a graph captured with the tensors `captured` can replay a batch of the tensors `ours`
    (copied into them)."""
    return len(ours) == len(captured) and all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(ours, captured))


def _capture(train_step, static, opt, device):
    """A CUDA graph of one training step, or (None, reason) if it cannot be captured."""
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)  # grads are allocated inside the graph's pool, static across replays
    try:
        # A stream of the model's device: torch's default capture stream is made on whichever
        # device was current the first time any graph was captured.
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(device)):
            train_step(static, set_to_none=False)
    except Exception as error:  # the model syncs, allocates host memory, has dynamic control flow...
        torch.cuda.synchronize(device)
        return None, f"CUDA graph capture failed ({type(error).__name__}: {str(error).splitlines()[0]}); ran eager"
    return graph, None


class _Preloaded:
    """The sweep's remaining batches, already on the device."""

    def __init__(self, items, passes):
        self._items = collections.deque(items)
        self.passes = passes

    def next(self):
        if not self._items:
            raise OutOfData
        return self._items.popleft()


def _preload(batches, batch, count, device):
    """Copies the sweep's next `count` batches (each like `batch`) to the device if they fit comfortably."""
    per_batch = sum(t.numel() * t.element_size() for t in tensors_in(batch))
    free, _ = torch.cuda.mem_get_info(device)
    if per_batch * (count + 1) > PRELOAD_FRACTION * free:
        return None
    items = []
    try:
        for _ in range(count):
            items.append(to_device(batches.next(), device))
    except OutOfData:
        pass
    return _Preloaded(items, batches.passes)

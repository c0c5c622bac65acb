"""range_test(): Leslie Smith's LR range test on any model and data, model restored afterwards."""
import collections.abc
import math
import time
import warnings

import torch
import torch.distributed as dist

from lrfused._checks import check_bool, check_int, check_number
from lrfused.find import analysis
from lrfused.find.batch import BatchLoss
from lrfused.find.confirm import cannot_confirm, confirm, planned_steps
from lrfused.find.distributed import check_same_on_every_rank, is_distributed, is_main_rank
from lrfused.find.families import DEFAULT, SGD_MOMENTUM
from lrfused.find.precision import check_precision
from lrfused.find.restore import Snapshot
from lrfused.find.recommendation import as_json, sweep_recommendations
from lrfused.find.stepping import check_optimizer, optimizer_name
from lrfused.find.result import RangeTestResult
from lrfused.find.sweep import SweepConfig, run_sweep
from lrfused.find.validation import check_val_data
from lrfused.ramp import check_ramp, ramp_lr


def range_test(
    model,
    data,
    loss_fn=None,
    *,
    start_lr=1e-7,
    end_lr=10.0,
    num_iter=100,
    mode="exp",
    smooth=0.95,
    diverge_threshold=4.0,
    momentum=SGD_MOMENTUM,
    weight_decay=None,
    nesterov=False,
    check_every=None,
    cuda_graph=True,
    progress=True,
    optimizers=(),
    optimizer=DEFAULT,
    betas=None,
    eps=None,
    batch_loss=None,
    precision="fp32",
    accumulation_steps=1,
    val_data=None,
    val_every=1,
    total_steps=None,
):
    """Sweeps the LR from start_lr to end_lr over num_iter training steps and returns what it found.

    model: an nn.Module, on the device to sweep on. data: an iterable of batches (a DataLoader, a
    list...), cycled when it runs out; a one-shot iterator that runs out ends the sweep
    ("out_of_data"). Tensors in a batch (nested in tuples, lists and dicts) move to the model's
    device. A batch is
      - an (inputs, targets) pair: the loss is loss_fn(model(inputs), targets), cross-entropy by
        default;
      - a mapping (Hugging Face style): model(**batch), and the loss is loss_fn(output, batch), or
        without a loss_fn the output's `.loss` (or `["loss"]`);
      - anything: batch_loss(model, batch) -> the scalar loss (instead of loss_fn).
    A LightningModule as the model (anything with training_step(batch, batch_idx) returning the
    loss or a dict with "loss") trains on its training_step; a LightningDataModule as the data
    (anything with train_dataloader()) gives its train_dataloader() after prepare_data() and
    setup("fit").

    Step i (0-based) trains at lr_i = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1)) for
    mode='exp' (start_lr + (end_lr - start_lr) * i / (num_iter - 1) for 'linear'): exactly start_lr
    at the first step and end_lr at the last. The optimizer swept (a family by name: its entry in
    lrfused.find.families says what it trains, takes and recommends):
      - optimizer="sgd": SGD with `momentum`, `weight_decay` (default 0), `nesterov`, the whole step,
        LR included, in one fused kernel;
      - optimizer="adamw": AdamW with `betas`, `eps` and `weight_decay`, torch's defaults ((0.9,
        0.999), 1e-8, 1e-2), the whole step, LR included, in one fused kernel (lrfused.FusedAdamW);
      - a torch.optim.Optimizer instance over the model's parameters: its own hyperparameters, the
        LR of its first param group swept as above and every other group's kept in the same ratio
        to it; its state is restored afterwards.
    precision: "fp32", "bf16" or "fp16": the forward under autocast to that type; fp16 with a
    torch.amp.GradScaler, whose skipped steps (inf/NaN grads) are listed in
    result.skipped_steps and left out of the curve. accumulation_steps=k: each LR step trains on k
    batches, each loss divided by k as in training; the recorded loss is the mean of the k.
    val_data: batches (re-iterable) whose mean loss, in eval mode without grad, is recorded every
    `val_every` steps (result.val_lrs / val_losses), plotted, and read for the suggestions instead
    of the training loss (divergence is still judged on the training loss); val_every=None records
    none during the sweep (val_data then only scores the confirmation's candidates).

    total_steps: the number of optimizer steps the 1cycle training will take. Given, the recommended
    max_lr is confirmed by training (lrfused.find.confirm): four candidate max_lrs below the LR
    at the training loss's smoothed minimum, each trained total_steps // 16 steps of 1cycle from the
    model's starting point with the sweep's optimizer and settings and scored by the validation loss
    (val_data) or else the training loss it ends with; the best, refined between its neighbours,
    divided by 2**0.75 (a short run favours a higher LR than the full budget). The whole find then
    costs num_iter + total_steps // 4 training steps. Without it (or where the confirmation cannot
    run: result.confirmation says why) max_lr is the LR at the smoothed minimum / 3.

    The sweep stops when it diverges (see lrfused.find.analysis), checking every `check_every` steps
    (1 on CPU, 10 on CUDA by default). On CUDA the step is captured in a CUDA graph unless
    cuda_graph=False (or the LR is written on the host: an optimizer instance; or fp16).

    The model's parameters, buffers, grads and train/eval modes, the state of `optimizer` (an
    instance) and of any `optimizers` given, and the RNG states are restored bit for bit
    afterwards: on completion, on divergence, on an exception and on KeyboardInterrupt.
    """
    config, loss, device = checked_config(
        model, data, loss_fn, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, mode=mode, smooth=smooth,
        diverge_threshold=diverge_threshold, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
        check_every=check_every, cuda_graph=cuda_graph, optimizer=optimizer, betas=betas, eps=eps,
        batch_loss=batch_loss, precision=precision, accumulation_steps=accumulation_steps,
        val_data=val_data, val_every=val_every, total_steps=total_steps,
    )
    if _is_datamodule(data):  # prepared only once the arguments are known to be good
        data = _train_dataloader(data)
    started = time.perf_counter()
    instance = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    snapshot = Snapshot(model, (*optimizers, *([instance] if instance else [])), cuda=device.type == "cuda")
    unconfirmed = cannot_confirm(total_steps, optimizer, data)  # (the ranks agreed on what it reads)
    if val_data is not None and val_every is None and unconfirmed is not None:
        warnings.warn(f"val_data is not used: val_every=None records none during the sweep, and no confirmation "
                      f"runs ({unconfirmed})", stacklevel=2)
    bar = _progress_bar(num_iter + (planned_steps(total_steps) if unconfirmed is None else 0), progress)
    confirmation = {"ran": False, "reason": unconfirmed}
    try:
        sweep_val = val_data if val_every is not None else None
        record = run_sweep(model, data, loss, config, bar, optimizer=instance, val_data=sweep_val)
        curve = read_curve(record, config)
        anchor = curve["train_minimum_lr"]
        if unconfirmed is None and (anchor is None or curve["suggestions"]["minimum"] is None):
            confirmation["reason"] = "no usable curve to place the candidates on (or to recommend from)"
        elif unconfirmed is None:
            snapshot.restore()  # each candidate trains from the model's starting point
            confirmation = confirm(model, data, loss, config, snapshot.restore, anchor, total_steps, val_data, bar)
    finally:
        bar.close()
        snapshot.restore()
    return result_of(record, config, device, started, confirmation, total_steps, curve)


def checked_config(model, data, loss_fn, **settings):
    """range_test's arguments checked (raising before anything runs; under torch.distributed, on every
    rank if any rank's arguments are refused or the ranks' settings differ), as (SweepConfig,
    BatchLoss, device)."""
    try:
        config, loss, device = _checked_here(model, data, loss_fn, **settings)
    except (TypeError, ValueError) as error:
        check_same_on_every_rank(None, error)  # raises it (under torch.distributed, once every rank knows)
        raise
    val_data = settings.get("val_data")
    # total_steps and whether data is one-shot: whether a confirmation runs (a rank alone in it would hang)
    check_same_on_every_rank({**vars(config), "val_batches": _count_of(val_data),
                              "total_steps": settings.get("total_steps"),
                              "one_shot_data": isinstance(data, collections.abc.Iterator)})
    return config, loss, device


def _count_of(val_data):
    """What the ranks must agree on about val_data (each validation pass is collective under DDP):
    its length, or whether it is given where it has none."""
    if val_data is None:
        return None
    try:
        return len(val_data)
    except TypeError:
        return "given"


def _checked_here(model, data, loss_fn, *, start_lr, end_lr, num_iter, mode, smooth, diverge_threshold, momentum,
                  weight_decay, nesterov, check_every, cuda_graph, optimizer=DEFAULT, betas=None, eps=None,
                  batch_loss=None, precision="fp32", accumulation_steps=1, val_data=None, val_every=1,
                  total_steps=None):
    """This rank's arguments checked, as (SweepConfig, BatchLoss, device)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError("model has no parameters")
    if not isinstance(data, collections.abc.Iterable) and not _is_datamodule(data):
        raise TypeError(f"data must be an iterable of batches or a LightningDataModule, got {type(data).__name__}")
    check_ramp(start_lr, end_lr, num_iter, mode)
    check_number("smooth", smooth, maximum=0.999999)
    check_number("diverge_threshold", diverge_threshold, minimum=1.0, strictly_above=True)
    check_bool("cuda_graph", cuda_graph)
    loss = BatchLoss(loss_fn, batch_loss, model)
    device = next(model.parameters()).device
    if check_every is None:
        check_every = 10 if device.type == "cuda" else 1
    check_int("check_every", check_every, minimum=1)
    check_int("accumulation_steps", accumulation_steps, minimum=1)
    if val_every is not None:
        check_int("val_every", val_every, minimum=1)
    if total_steps is not None:
        check_int("total_steps", total_steps, minimum=1)
    check_val_data(val_data)
    check_precision(precision, device)
    # (a setting the swept optimizer does not take comes back None: not used, not reported)
    settings = check_optimizer(model, optimizer, momentum=momentum, nesterov=nesterov, betas=betas, eps=eps,
                               weight_decay=weight_decay)
    config = SweepConfig(
        start_lr=float(start_lr),
        end_lr=float(end_lr),
        num_iter=num_iter,
        mode=mode,
        smooth=float(smooth),
        diverge_threshold=float(diverge_threshold),
        check_every=check_every,
        cuda_graph=cuda_graph,
        optimizer=optimizer_name(optimizer),
        precision=precision,
        accumulation_steps=accumulation_steps,
        val_every=val_every,
        **settings,
    )
    return config, loss, device


def _is_datamodule(data):
    """A LightningDataModule, duck-typed: not itself iterable, with a train_dataloader()."""
    return not isinstance(data, collections.abc.Iterable) and callable(getattr(data, "train_dataloader", None))


def _train_dataloader(datamodule):
    """A LightningDataModule's training batches, prepared and set up as a Trainer's fit would:
    prepare_data() once (on rank 0 under torch.distributed, the others waiting), setup("fit") on
    every rank."""
    if callable(getattr(datamodule, "prepare_data", None)):
        if is_main_rank():
            datamodule.prepare_data()
        if is_distributed():
            dist.barrier()
    if callable(getattr(datamodule, "setup", None)):
        datamodule.setup("fit")
    return datamodule.train_dataloader()


def read_curve(record, config):
    """A finished sweep's curves and suggestions: the recorded steps' lrs, losses and smoothed losses,
    the validation points, the suggestions (read off the validation curve where there is one, before
    divergence) and train_minimum_lr, the LR at the training loss's smoothed minimum (None without a
    usable finite curve), which places the confirmation's candidates."""
    start_lr, end_lr, num_iter, mode = config.start_lr, config.end_lr, config.num_iter, config.mode
    end = record.diverged_at + 1 if record.diverged_at is not None else len(record.losses)
    skipped = set(record.skipped)
    steps = [i for i in range(end) if i not in skipped]  # a skipped step trained nothing
    losses = [record.losses[i] for i in steps]
    lrs = [ramp_lr(start_lr, end_lr, num_iter, mode, i) for i in steps]
    smoothed = analysis.smooth(losses, config.smooth)
    # Suggestions read the curve before divergence: the diverged step itself is shown, not used.
    usable = len(losses) - 1 if record.diverged_at is not None else len(losses)
    val = [(i, loss) for i, loss in record.val if i < end]
    val_lrs = [ramp_lr(start_lr, end_lr, num_iter, mode, i) for i, _ in val]
    val_losses = [loss for _, loss in val]
    if val:  # the suggestions read the validation curve (before divergence) instead
        read = [k for k, (i, _) in enumerate(val) if record.diverged_at is None or i < record.diverged_at]
        curve_lrs, curve = [val_lrs[k] for k in read], analysis.smooth([val_losses[k] for k in read], config.smooth)
    else:
        curve_lrs, curve = lrs[:usable], smoothed[:usable]
    suggestions = analysis.suggest(curve_lrs, curve)
    if not all(math.isfinite(s) for s in curve):
        suggestions = {name: None for name in suggestions}
    train_curve = smoothed[:usable]
    train_minimum_lr = None
    if len(train_curve) >= 3 and all(math.isfinite(s) for s in train_curve):
        train_minimum_lr = lrs[min(range(usable), key=train_curve.__getitem__)]
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed, "val_lrs": val_lrs, "val_losses": val_losses,
            "suggestions": suggestions, "last_lr": lrs[usable - 1] if usable else end_lr,
            "train_minimum_lr": train_minimum_lr}


def result_of(record, config, device, started, confirmation=None, total_steps=None, curve=None):
    """The RangeTestResult of a finished sweep (and of its confirmation, lrfused.find.confirm);
    `curve`: read_curve(record, config) where the caller has it already."""
    curve = curve or read_curve(record, config)
    confirmation = confirmation or {"ran": False, "reason": None}
    numbers = analysis.recommend(curve["suggestions"], curve["last_lr"], confirmation.get("max_lr"))
    recommendations = sweep_recommendations(numbers, config)
    timings = dict(record.timings)
    timings["total_s"] = time.perf_counter() - started
    if record.timings.get("steps"):
        timings["ms_per_step"] = 1e3 * record.timings["sweep_s"] / record.timings["steps"]
    return RangeTestResult(
        lrs=curve["lrs"],
        losses=curve["losses"],
        smoothed=curve["smoothed"],
        suggestions=curve["suggestions"],
        recommendation=as_json(numbers, recommendations),
        recommendations=recommendations,
        end={"reason": record.end, "step": record.diverged_at, "passes": record.passes},
        skipped_steps=list(record.skipped),
        val_lrs=curve["val_lrs"],
        val_losses=curve["val_losses"],
        timings=timings,
        path=record.path,
        fallback_reason=record.fallback_reason,
        config={**vars(config), "device": str(device)},
        confirmation=confirmation,
        cost=cost_of(record, confirmation, total_steps),
    )


def cost_of(record, confirmation, total_steps):
    """The find's training steps (each accumulation_steps forward+backward passes): the sweep's and the
    confirmation's, the latter also as a share of the training budget when it is known (at most 1/4)."""
    sweep_steps = record.timings.get("steps", len(record.losses))
    confirmation_steps = confirmation.get("steps_run", 0)
    cost = {"sweep_steps": sweep_steps, "confirmation_steps": confirmation_steps, "total_steps": total_steps}
    if total_steps:
        cost["confirmation_share"] = confirmation_steps / total_steps
    return cost


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress_bar(total, enabled):
    """A tqdm bar (rank 0 only), or nothing; `enabled` may be a label for the bar."""
    if not enabled or not is_main_rank():
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar without it
        return _NoProgress()
    label = enabled if isinstance(enabled, str) else "LR range test"
    return tqdm(total=total, desc=label, unit="step", leave=False)

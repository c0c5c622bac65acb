"""Range tests over a grid of weight decays and momenta (Smith's disciplined approach): one LR sweep
per combination, all from the same initial weights and data order, compared in one picture.

Ranking: by the lowest smoothed loss a sweep reached (lower is better), ties broken by the largest
LR it reached before diverging (higher is better): the combination that trains at the highest
rates with the lowest loss.
"""
import dataclasses
import inspect
import itertools
import json
import math
import time
from dataclasses import dataclass

import torch

from lrfused._checks import check_int, check_number
from lrfused.find.distributed import is_main_rank
from lrfused.find.batched import VmapUnsupported, run_batched_sweeps
from lrfused.find.families import DEFAULT, SGD_MOMENTUM, family_of, taking
from lrfused.find.range_test import _progress_bar, checked_config, range_test, result_of
from lrfused.find.restore import Snapshot
from lrfused.find.recommendation import grid_recommendation
from lrfused.find.stepping import optimizer_name
from lrfused.find.result import finite_or_none

MAX_COMBINATIONS = 16  # more needs an explicit yes (the CLI's --yes, the API's max_combinations)


def check_grid(weight_decays, momenta, max_combinations=MAX_COMBINATIONS, names=("weight_decays", "momenta"),
               more="raise max_combinations"):
    """The grid's values as float lists; raises naming the argument before anything runs.

    `names` and `more` let the command line speak of its own flags."""
    out = []
    for name, values in zip(names, (weight_decays, momenta)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a list of numbers, got {type(values).__name__}")
        values = list(values)
        if not values:
            raise ValueError(f"{name} is empty: give at least one value")
        checked = []
        for v in values:
            if name == names[1]:
                checked.append(check_number(f"{name} value", v, maximum=0.999999))
            else:
                checked.append(check_number(f"{name} value", v))
        if len(set(checked)) != len(checked):
            raise ValueError(f"{name} has repeated values: {values}")
        out.append(checked)
    check_int("max_combinations", max_combinations, minimum=1)
    count = len(out[0]) * len(out[1])
    if count > max_combinations:
        raise ValueError(f"the grid has {count} combinations, more than {max_combinations}: {more} to run them all")
    return out


@dataclass
class GridResult:
    runs: list  # [{"weight_decay", "momentum", "result": RangeTestResult}], in grid order
    ranking: list  # rows, best first
    path: str = "sequential"  # sequential | batched_vmap
    fallback_reason: str = None  # why a batched grid ran sequentially

    @property
    def best(self):
        return self.ranking[0] if self.ranking else None

    @property
    def one_cycle(self):
        """The 1cycle drop-in for the best combination, as a Recommendation, or None."""
        best = self.best
        if best is None or best["max_lr"] is None:
            return None
        return grid_recommendation(self.optimizer, best)

    def call(self):
        """The optimizer call to paste for the best combination, or None."""
        return None if self.one_cycle is None else self.one_cycle.text()

    @property
    def optimizer(self):
        """The family the grid's sweeps trained (a lrfused.find.families name)."""
        return self.runs[0]["result"].config.get("optimizer", DEFAULT) if self.runs else DEFAULT

    def to_dict(self):
        return {
            "runs": [
                {"weight_decay": r["weight_decay"], "momentum": r["momentum"], **r["result"].to_dict()}
                for r in self.runs
            ],
            "ranking": self.ranking,
            "best": self.best,
            "call": self.call(),
            "path": self.path,
            "fallback_reason": self.fallback_reason,
        }

    def to_json(self):
        return json.dumps(finite_or_none(self.to_dict()), indent=1)

    def summary(self):
        how = "as one batched computation" if self.path == "batched_vmap" else "one after another"
        lines = [f"LR range tests over {len(self.runs)} combinations ({how}), best first:"]
        if self.fallback_reason:
            lines.append(f"  (not batched: {self.fallback_reason})")
        lines.append(f"  {'rank':>4} {'weight_decay':>12} {'momentum':>8} {'lowest loss':>12} {'largest LR':>11} {'max_lr':>8}  end")
        for i, row in enumerate(self.ranking, 1):
            max_lr = "-" if row["max_lr"] is None else f"{row['max_lr']:.3g}"
            lines.append(
                f"  {i:>4} {row['weight_decay']:>12g} {row['momentum']:>8g} {row['lowest_loss']:>12.4g} "
                f"{row['largest_lr']:>11.3g} {max_lr:>8}  {row['end']}"
            )
        call = self.call()
        lines.append(f"  recommended: {call}" if call else "  no recommendation: no sweep gave a usable curve")
        return "\n".join(lines)

    def plot(self, path=None):
        """The smoothed curves overlaid, one colour per combination, the best one's max_lr marked."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from lrfused.find.result import frame_y

        fig, ax = plt.subplots(figsize=(8, 5))
        best = self.best
        for i, run in enumerate(self.runs):
            r = run["result"]
            is_best = best is not None and (run["weight_decay"], run["momentum"]) == (best["weight_decay"], best["momentum"])
            label = f"wd {run['weight_decay']:g}, momentum {run['momentum']:g}" + ("  (best)" if is_best else "")
            ax.plot(r.lrs, r.smoothed, color=f"C{i % 10}", linewidth=3 if is_best else 1.3, label=label)
            if is_best and r.recommendation is not None:
                ax.axvline(r.recommendation["max_lr"], color=f"C{i % 10}", linestyle="--",
                           label=f"best max_lr {r.recommendation['max_lr']:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("smoothed loss")
        ax.set_title("LR range tests: weight decay x momentum")
        frame_y(ax, [s for run in self.runs for s in run["result"].smoothed])
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            if is_main_rank():  # under DDP, rank 0 writes
                fig.savefig(path, dpi=120)
            plt.close(fig)
        return ax


def rank(runs):
    rows = []
    for run in runs:
        r = run["result"]
        usable = len(r.smoothed) - (1 if r.end["reason"] == "diverged" else 0)
        smoothed = [s for s in r.smoothed[:usable] if math.isfinite(s)]
        rows.append({
            "weight_decay": run["weight_decay"],
            "momentum": run["momentum"],
            "lowest_loss": min(smoothed) if smoothed else math.inf,
            "largest_lr": r.lrs[usable - 1] if usable > 0 else 0.0,
            "max_lr": None if r.recommendation is None else r.recommendation["max_lr"],
            "end": r.end_text(),
        })
    return sorted(rows, key=lambda row: (row["lowest_loss"], -row["largest_lr"]))


def range_test_grid(model, data, loss_fn=None, *, weight_decays=(0.0,), momenta=(0.9,),
                    max_combinations=MAX_COMBINATIONS, progress=True, on_start=None, batched="auto", **kwargs):
    """One range_test per (weight_decay, momentum) combination, all from the same initial weights and
    data order.

    batched: True runs all combinations as one computation (the model's parameters stacked per
    combination, torch.func.vmap over the copies, one fused step for all; see
    lrfused.find.batched); False runs range_test once per combination, the model restored between
    sweeps; "auto" (default) batches on CUDA and runs one after another on CPU, where batching gains
    little. A model vmap cannot run falls back to sequential (GridResult.fallback_reason says why).

    `data` is an iterable (reused: range_test restores the RNG after each sweep, so a DataLoader
    shuffling with the global RNG gives every sweep the same order) or a callable returning one
    (called per sweep, for loaders with their own generator). Other keyword arguments go to
    range_test. on_start(index, count, weight_decay, momentum) is called before each sequential
    sweep.
    """
    for name, axis in (("weight_decay", "weight_decays"), ("momentum", "momenta")):
        if name in kwargs:  # (the sequential sweeps would get it twice, the batched one would ignore it)
            raise TypeError(f"{name}: the grid sweeps one value per combination; give the values as {axis}=[...]")
    weight_decays, momenta = check_grid(weight_decays, momenta, max_combinations)
    optimizer = kwargs.get("optimizer", DEFAULT)
    family = family_of(optimizer)
    if momenta != [SGD_MOMENTUM] and (family is None or "momentum" not in family.grid_axes):  # before any sweep
        raise ValueError(f"momenta: the grid's momenta set the fused {taking('momentum')[1]} sweep; with optimizer="
                         f"{optimizer_name(optimizer)} vary weight_decays only (got momenta {momenta})")
    if batched not in (True, False, "auto"):
        raise ValueError(f"batched must be True, False or 'auto', got {batched!r}")
    combinations = list(itertools.product(weight_decays, momenta))
    fallback_reason = None
    unbatchable = _why_not_batched(kwargs)
    if batched == "auto":
        batched = _batches_by_default(model)
        if batched and unbatchable is not None:
            fallback_reason, batched = f"{unbatchable}: ran one sweep after another", False
    elif batched and unbatchable is not None:
        raise ValueError(f"{unbatchable} (batched=False; --batched no on the CLI)")
    if batched:
        try:
            runs = _batched_grid(model, data, loss_fn, combinations, progress, kwargs)
            return GridResult(runs=runs, ranking=rank(runs), path="batched_vmap")
        except VmapUnsupported as error:
            fallback_reason = str(error)
    runs = []
    for index, (wd, m) in enumerate(combinations):
        if on_start is not None:
            on_start(index, len(combinations), wd, m)
        sweep_data = data() if callable(data) else data
        result = range_test(model, sweep_data, loss_fn, weight_decay=wd, momentum=m,
                            progress=_label(progress, index, len(combinations), wd, m), **kwargs)
        runs.append({"weight_decay": wd, "momentum": m, "result": result})
    return GridResult(runs=runs, ranking=rank(runs), path="sequential", fallback_reason=fallback_reason)


def _batches_by_default(model):
    """batched="auto": on CUDA, where one computation for every combination pays."""
    return next(model.parameters()).device.type == "cuda"


def _why_not_batched(kwargs):
    """Why the batched grid cannot sweep with these range_test settings, or None."""
    if kwargs.get("optimizers"):
        return "optimizers: the batched grid does not train the model itself; nothing to restore"
    if isinstance(kwargs.get("optimizer"), torch.optim.Optimizer):
        return "optimizer: the batched grid trains one of lrfused's fused families (an optimizer name), not an instance"
    defaults = _sweep_defaults()
    other = [name for name in ("batch_loss", "precision", "accumulation_steps", "val_data")
             if kwargs.get(name, defaults[name]) is not defaults[name] and kwargs[name] != defaults[name]]
    if other:
        return (f"{', '.join(other)}: the batched grid trains in fp32 on (inputs, targets), a batch per step, "
                "without validation")
    return None


def _batched_grid(model, data, loss_fn, combinations, progress, kwargs):
    kwargs = {name: value for name, value in kwargs.items() if name != "optimizers"}
    settings = _sweep_defaults()
    unknown = set(kwargs) - set(settings)
    if unknown:
        raise TypeError(f"range_test_grid got unexpected keyword arguments {sorted(unknown)}")
    sweep_data = data() if callable(data) else data
    # the weight decay (and a family's grid momentum) are the grid's, per combination: the shared config
    # holds neither
    family = family_of(kwargs.get("optimizer", DEFAULT))
    settings.update(kwargs, **(family.grid_point(0.0, 0.0) if family else {}))  # (no family: checked_config refuses the name)
    config, _, device = checked_config(model, sweep_data, loss_fn, **settings)
    loss_fn = torch.nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    started = time.perf_counter()
    snapshot = Snapshot(model, (), cuda=device.type == "cuda")
    label = f"[{len(combinations)} combinations, batched]" if progress else False
    bar = _progress_bar(config.num_iter, label)
    try:
        records = run_batched_sweeps(model, sweep_data, loss_fn, config, combinations, bar)
    finally:
        bar.close()
        snapshot.restore()
    runs = []
    for (wd, m), record in zip(combinations, records):
        combo_config = dataclasses.replace(config, **family.grid_point(wd, m))
        runs.append({"weight_decay": wd, "momentum": m, "result": result_of(record, combo_config, device, started)})
    return runs


def _sweep_defaults():
    """range_test's sweep settings and their defaults (read from its signature, not copied)."""
    own = ("progress", "optimizers")  # the grid shows progress itself; the batched grid trains no optimizer
    return {name: p.default for name, p in inspect.signature(range_test).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in own}


def _label(progress, index, count, wd, m):
    """range_test's progress argument: a bar labelled with the combination and the overall count."""
    if not progress:
        return False
    return f"[{index + 1}/{count}] wd={wd:g} momentum={m:g}"

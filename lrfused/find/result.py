"""RangeTestResult: what a sweep found, as a table, a JSON-ready dict and a plot."""
import json
import math
from dataclasses import dataclass, field

from lrfused.find.confirm import FLAT, HORIZON_DIVISOR
from lrfused.find.distributed import is_main_rank
from lrfused.find.families import DEFAULT


@dataclass
class RangeTestResult:
    lrs: list  # the LR of every recorded step
    losses: list  # its raw loss
    smoothed: list  # its smoothed loss (see lrfused.find.analysis)
    suggestions: dict  # valley / steep / minimum: an LR or None
    recommendation: dict  # max_lr, base_lr and the calls to paste, or None (lrfused.find.recommendation.as_json)
    end: dict  # {"reason": completed | diverged | out_of_data, "step": int or None, "passes": int}
    timings: dict
    path: str  # eager | cuda_graph
    fallback_reason: str = None
    config: dict = field(default_factory=dict)
    skipped_steps: list = field(default_factory=list)  # steps an fp16 GradScaler skipped: not in lrs/losses
    val_lrs: list = field(default_factory=list)  # the LR of each validation loss (with val_data)
    val_losses: list = field(default_factory=list)
    # how max_lr was chosen: lrfused.find.confirm's record ({"ran": True, "candidates": ...}), or
    # {"ran": False, "reason": why not} (then the curve's rule stands)
    confirmation: dict = field(default_factory=lambda: {"ran": False, "reason": None})
    cost: dict = field(default_factory=dict)  # training steps of the sweep and the confirmation
    # the calls as data: schedule -> lrfused.find.recommendation.Recommendation (empty without a recommendation)
    recommendations: dict = field(default_factory=dict)

    @property
    def one_cycle(self):
        """The recommended 1cycle call as a Recommendation (what --then-train trains), or None."""
        return self.recommendations.get("one_cycle")

    def to_dict(self):
        skipped = set(self.skipped_steps)  # (numbered as the sweep's steps)
        numbers = [i for i in range(len(self.lrs) + len(skipped)) if i not in skipped]
        return {
            "steps": [
                {"step": i, "lr": lr, "loss": loss, "smoothed_loss": s}
                for i, lr, loss, s in zip(numbers, self.lrs, self.losses, self.smoothed)
            ],
            "suggestions": self.suggestions,
            "recommendation": self.recommendation,
            "end": self.end,
            "timings": self.timings,
            "path": self.path,
            "fallback_reason": self.fallback_reason,
            "config": self.config,
            "skipped_steps": self.skipped_steps,
            "validation": [{"lr": lr, "loss": loss} for lr, loss in zip(self.val_lrs, self.val_losses)],
            "confirmation": self.confirmation,
            "cost": self.cost,
        }

    def to_json(self):
        # NaN/inf losses are written as null: JSON has no spelling for them.
        return json.dumps(finite_or_none(self.to_dict()), indent=1)

    def summary(self):
        """A short table of the suggestions and the recommended settings."""
        lines = [f"LR range test: {self.end_text()}, {len(self.lrs)} steps in {self.timings.get('sweep_s', 0):.2f}s "
                 f"({self.path}; {self.training_text()})"]
        if self.skipped_steps:
            lines.append(f"  the fp16 GradScaler skipped steps {self.skipped_steps} (inf/NaN grads): not in the curve")
        if self.fallback_reason:
            lines.append(f"  note: {self.fallback_reason}")
        lines.append(f"  {'suggestion':<10} {'lr':>10}")
        for name in ("valley", "steep", "minimum"):
            lr = self.suggestions.get(name)
            lines.append(f"  {name:<10} {'-' if lr is None else format(lr, '.3g'):>10}")
        if self.recommendation is None:
            lines.append("  no recommendation: the loss curve is too short (or not finite) to read")
        else:
            r = self.recommendation
            lines.append(f"  the smoothed loss bottoms out at lr {r['lr_at_minimum']:.3g}")
            if r["still_falling_at_end"]:
                lines.append("  warning: the loss was still falling at the last LR: sweep to a higher --end-lr")
            lines.extend(f"  {line}" for line in self.how_chosen())
            lines.append(f"  recommended 1cycle max_lr {r['max_lr']:.3g}; cyclical band [{r['base_lr']:.3g}, {r['max_lr']:.3g}]")
            lines.append(f"    {r['one_cycle']}")
            lines.append(f"    {r['cyclic']}")
            lines.append(f"    {r['warm_restarts']}")
        return "\n".join(lines)

    def how_chosen(self):
        """Lines on how max_lr was chosen: the confirmation's candidates, pick, spread, warnings and
        cost; or the curve's rule and why no confirmation ran."""
        c, r = self.confirmation, self.recommendation
        if not c.get("ran"):
            why = c.get("reason") or "no confirmation ran"
            return [f"max_lr by the curve's rule (LR at the smoothed minimum / 3): {why}",
                    "  (pass total_steps / --total-steps, the steps you will train for, to confirm it by training)"]
        lines = [f"confirmation: {len(c['candidates'])} candidates below the training loss's minimum at lr "
                 f"{c['anchor_lr']:.3g}, {c['steps_per_candidate']} steps of 1cycle each, scored by {c['scored_by']}:",
                 f"  {'max_lr':>10} {'score':>10}"]
        for candidate in c["candidates"]:
            score = candidate["score"]
            shown = format(score, ".4g") if math.isfinite(score) else candidate["end"]
            best = "  <- best" if candidate["max_lr"] == c["best_candidate"] else ""
            lines.append(f"  {candidate['max_lr']:>10.3g} {shown:>10}{best}")
        if r["rule"] == "confirmed":
            low, high = c["spread"]["near_best_lrs"]
            how = "the best refined between its neighbours" if c["refined"] else "the best"
            lines.append(f"  {how}, / {HORIZON_DIVISOR:.2f} for the full budget "
                         f"(a short run favours a higher LR): max_lr {r['max_lr']:.3g}")
            lines.append(f"  spread: candidates within {FLAT:.0%} of the best span lr {low:.3g} to {high:.3g}; "
                         f"the worst scored {c['spread']['worst_above_best']:.1%} above the best")
        lines.extend(f"warning: {warning}" for warning in c["warnings"])
        cost = self.cost
        if cost.get("total_steps"):
            lines.append(f"cost: {cost['sweep_steps']} sweep + {cost['confirmation_steps']} confirmation steps "
                         f"(the confirmation {cost['confirmation_share']:.2f} of the "
                         f"{cost['total_steps']}-step training)")
        return lines

    def training_text(self):
        """The optimizer, precision and accumulation the sweep trained with."""
        c = self.config
        text = f"{c.get('optimizer', DEFAULT)}, {c.get('precision', 'fp32')}"
        k = c.get("accumulation_steps", 1)
        return text + (f", {k} batches per step" if k > 1 else "")

    def end_text(self):
        if self.end["reason"] == "diverged":
            return f"diverged at step {self.end['step']}"
        if self.end["reason"] == "out_of_data":
            return f"ran out of data after {len(self.lrs)} steps"
        return "completed"

    def plot(self, path=None, ax=None):
        """Loss vs LR (log x): raw and smoothed, the suggestions marked, the recommended max_lr and
        the cyclical band shaded. Saves to `path` if given; returns the matplotlib Axes."""
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(self.lrs, self.losses, color="0.75", linewidth=1, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", linewidth=2, label="smoothed loss")
        if self.val_losses:
            ax.plot(self.val_lrs, self.val_losses, color="C4", marker=".", linewidth=1.5, label="validation loss")
        markers = {"valley": ("C1", "o"), "steep": ("C2", "v"), "minimum": ("C3", "s")}
        for name, (color, marker) in markers.items():
            lr = self.suggestions.get(name)
            if lr is not None:
                ax.plot([lr], [_smoothed_at(self, lr)], marker=marker, color=color, linestyle="none",
                        markersize=8, label=f"{name} {lr:.2g}")
        if self.recommendation is not None:
            r = self.recommendation
            ax.axvspan(r["base_lr"], r["max_lr"], color="C1", alpha=0.15, label="cyclical [base_lr, max_lr]")
            ax.axvline(r["max_lr"], color="C1", linestyle="--", label=f"1cycle max_lr {r['max_lr']:.2g}")
        _plot_candidates(self, ax)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title(f"LR range test ({self.training_text()}; {self.end_text()})")
        frame_y(ax, self.smoothed)  # raw spikes may leave the plot
        ax.legend(fontsize=8)
        ax.grid(True, which="major", alpha=0.3)
        if fig is not None:
            fig.tight_layout()
            if path is not None:
                if is_main_rank():  # under DDP, rank 0 writes
                    fig.savefig(path, dpi=120)
                plt.close(fig)
        return ax


def _plot_candidates(result, ax):
    """The confirmation's candidates and their scores, on a right-hand axis (diverged ones marked
    at its top)."""
    c = result.confirmation
    if not c.get("ran"):
        return
    twin = ax.twinx()
    finite = [(x["max_lr"], x["score"]) for x in c["candidates"] if math.isfinite(x["score"])]
    failed = [x["max_lr"] for x in c["candidates"] if not math.isfinite(x["score"])]
    if finite:
        twin.plot(*zip(*finite), color="C5", marker="D", linewidth=1, label="confirmation candidates")
        top = max(score for _, score in finite)
    else:
        top = 1.0
    if failed:
        twin.plot(failed, [top] * len(failed), color="C5", marker="x", linestyle="none", markersize=9,
                  label="candidate diverged")
    twin.set_ylabel(f"candidate's {c['scored_by'].split(' (')[0]} after {c['steps_per_candidate']} steps", color="C5")
    twin.legend(fontsize=8, loc="lower left")


def frame_y(ax, values):
    """Sets the y range to the finite `values`, with a margin."""
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        pad = 0.1 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)


def _smoothed_at(result, lr):
    i = min(range(len(result.lrs)), key=lambda k: abs(result.lrs[k] - lr))
    return result.smoothed[i]


def finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value

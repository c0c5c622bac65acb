"""The benchmark's tables (markdown, for RESULTS.md) and one picture per task."""
import math
import os
import statistics

from benchmarks.lr_quality.scoring import mean

RULES = ("recommended", "curve rule (min / 3)", "suggestion valley", "suggestion steep", "suggestion minimum",
         "torch-lr-finder", "Lightning")
PEER_NAMES = {"prodigy": "Prodigy (untuned)", "schedule_free": "Schedule-Free AdamW (untuned)"}
WORST_ALLOWED, MEAN_ALLOWED, PEER_MARGIN = 0.03, 0.02, 0.02  # the bar (issue 24)


def pct(value):
    return "diverged" if not math.isfinite(value) else f"{100 * value:.1f}%"


def regrets(task_result, rule):
    return [s["scores"][rule]["regret"] for s in task_result["sweeps"]]


def tables(results):
    lines = ["Regret in validation loss (loss at the rule's max_lr / the oracle's best - 1): mean over the 5 "
             "sweep seeds (worst). `recommended` is trained (5 training seeds); every other rule is read off "
             "the oracle curve between its grid points; the peers are trained (5 seeds).", ""]
    header = ["task", *RULES, *PEER_NAMES.values()]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [f"{r['task']} ({r['family']})"]
        cells += [f"{pct(mean(regrets(r, rule)))} ({pct(max(regrets(r, rule)))})" for rule in RULES]
        cells += [pct(r["peers"][name]["regret"]) for name in PEER_NAMES]
        lines.append("| " + " | ".join(cells) + " |")
    means = {rule: mean(mean(regrets(r, rule)) for r in results) for rule in RULES}
    peer_means = {name: mean(r["peers"][name]["regret"] for r in results) for name in PEER_NAMES}
    lines.append("| **mean over tasks** | " + " | ".join(pct(means[rule]) for rule in RULES) + " | "
                 + " | ".join(pct(peer_means[name]) for name in PEER_NAMES) + " |")
    lines += ["", "The recommendation in detail: its max_lr over the oracle's best (range over sweep seeds), the "
              "accuracy gap in points (mean, worst), how it was chosen, and what the find cost in training steps "
              "(the sweep's + the confirmation's, at most; the confirmation's as a share of the training run), and "
              "the find's time on this machine (one CPU thread).", ""]
    lines += ["| task | oracle max_lr | recommended / oracle | accuracy gap | rule | cost | find time |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        best = r["oracle"]["best"]["lr"]
        ratios = [s["picks"]["recommended"] / best for s in r["sweeps"] if s["picks"]["recommended"]]
        gaps = [s["scores"]["recommended"]["accuracy_gap"] for s in r["sweeps"]]
        gap = "-" if None in gaps else f"{statistics.fmean(gaps):.2f} ({max(gaps):.2f})"
        rules = sorted({s["rule"] for s in r["sweeps"]}, key=str)
        sweep_steps = max(s["cost"]["sweep_steps"] for s in r["sweeps"])
        confirmation_steps = max(s["cost"]["confirmation_steps"] for s in r["sweeps"])
        seconds = statistics.fmean(s["find_s"] for s in r["sweeps"])
        lines.append(f"| {r['task']} | {best:.3g} | {min(ratios):.2f}-{max(ratios):.2f} | {gap} | "
                     f"{', '.join(map(str, rules))} | {sweep_steps} + {confirmation_steps} "
                     f"({confirmation_steps / r['total_steps']:.2f} of {r['total_steps']}) | {seconds:.1f}s |")
    lines += ["", *verdict(results, means, peer_means), ""]
    return "\n".join(lines)


def verdict(results, means, peer_means):
    """The issue's bar, each part stated as met or not."""
    worst = max(max(regrets(r, "recommended")) for r in results)
    per_task = {r["task"]: mean(regrets(r, "recommended")) for r in results}
    behind = [f"{r['task']} (vs {PEER_NAMES[name]}: {pct(per_task[r['task']])} against {pct(r['peers'][name]['regret'])})"
              for r in results for name in PEER_NAMES
              if (1 + per_task[r["task"]]) > (1 + r["peers"][name]["regret"]) * (1 + PEER_MARGIN)]
    lines = [
        f"- every task and sweep seed within {WORST_ALLOWED:.0%} of the oracle: "
        f"{'met' if worst <= WORST_ALLOWED else 'NOT met'} (worst {pct(worst)})",
        f"- mean regret <= {MEAN_ALLOWED:.0%}: {'met' if means['recommended'] <= MEAN_ALLOWED else 'NOT met'} "
        f"({pct(means['recommended'])})",
        f"- mean below every untuned peer's: "
        f"{'met' if all(means['recommended'] < m for m in peer_means.values()) else 'NOT met'} "
        f"({pct(means['recommended'])} against " + ", ".join(pct(m) for m in peer_means.values()) + ")",
        f"- on no task more than {PEER_MARGIN:.0%} worse than a peer: {'met' if not behind else 'NOT met: ' + '; '.join(behind)}",
    ]
    return lines


def plot_task(task_result, path):
    """The oracle curve (mean validation loss vs max_lr) with each rule's picks over the sweep seeds
    and the peers' losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path), exist_ok=True)
    curve = task_result["oracle"]["curve"]
    finite = [p for p in curve if math.isfinite(p["val_loss"])]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot([p["lr"] for p in finite], [p["val_loss"] for p in finite], color="0.2", marker="o", markersize=3,
            label="oracle: full 1cycle trainings (mean of 5 seeds)")
    best = task_result["oracle"]["best"]
    low, high = min(p["val_loss"] for p in finite), max(p["val_loss"] for p in finite)
    for k, rule in enumerate(RULES):
        lrs = [s["picks"][rule] for s in task_result["sweeps"] if s["picks"][rule]]
        y = low - (0.04 + 0.035 * k) * (high - low)  # each rule's picks in a row below the curve
        ax.plot(lrs, [y] * len(lrs), linestyle="none", marker="|" if k else "D", markersize=10 if k else 6,
                color=f"C{k}", label=rule)
    for k, (name, label) in enumerate(PEER_NAMES.items()):
        loss = best["val_loss"] * (1 + task_result["peers"][name]["regret"])
        if math.isfinite(loss):
            ax.axhline(loss, color=f"C{7 + k}", linestyle=":", label=f"{label}: {loss:.3g}")
    ax.axvline(best["lr"], color="0.5", linestyle="--", linewidth=1, label=f"oracle best {best['lr']:.3g}")
    ax.set_xscale("log")
    ax.set_ylim(low - 0.3 * (high - low), low + 1.05 * (high - low))
    ax.set_xlabel("1cycle max_lr")
    ax.set_ylabel("validation loss")
    ax.set_title(f"{task_result['task']} ({task_result['kind']}, {task_result['family']}, "
                 f"{task_result['total_steps']} steps)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

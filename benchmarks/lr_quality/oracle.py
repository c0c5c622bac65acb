"""The oracle: the best max_lr of a grid of full 1cycle trainings (plain torch SGD / AdamW +
OneCycleLR), GRID_PER_DECADE points a decade, extended until the best has worse points on both sides,
each point the mean over TRAIN_SEEDS seeds."""
import math
import statistics

from benchmarks.lr_quality.cache import lr_text
from benchmarks.lr_quality.training import train_one_cycle

GRID_PER_DECADE = 8
TRAIN_SEEDS = (0, 1, 2, 3, 4)
START = {"sgd": (-3.0, 0.5), "adamw": (-4.0, -1.0)}  # log10 span the grid starts from
SIDE_POINTS = 3  # points the grid keeps on each side of its best
LIMITS = (-7.0, 2.0)  # log10 span the grid never leaves


def scored(task, runs, lr, save):
    """Mean validation loss and accuracy over TRAIN_SEEDS at `lr` (trained unless cached)."""
    key = lr_text(lr)
    if key not in runs:
        runs[key] = [train_one_cycle(task, lr, seed) for seed in TRAIN_SEEDS]
        save()
    results = runs[key]
    losses = [r["val_loss"] for r in results]
    loss = statistics.fmean(losses) if all(math.isfinite(v) for v in losses) else math.inf
    accuracy = statistics.fmean(r["val_accuracy"] for r in results) if task.classifies else None
    return {"lr": lr, "val_loss": loss, "val_accuracy": accuracy, "seed_losses": losses}


def grid(task, runs, save):
    """The oracle curve: [scored(lr)] over the grid, low LR first."""
    low, high = (round(v * GRID_PER_DECADE) for v in START[task.family])
    points = {}

    def fill():
        for k in range(low, high + 1):
            if k not in points:
                points[k] = scored(task, runs, 10 ** (k / GRID_PER_DECADE), save)

    fill()
    while True:
        best = min(points, key=lambda k: points[k]["val_loss"])
        grow_low = best - low < SIDE_POINTS and low / GRID_PER_DECADE > LIMITS[0]
        grow_high = high - best < SIDE_POINTS and math.isfinite(points[high]["val_loss"]) and high / GRID_PER_DECADE < LIMITS[1]
        if not (grow_low or grow_high):
            break
        low, high = low - 2 * grow_low, high + 2 * grow_high
        fill()
    return [points[k] for k in sorted(points)]


def best_of(curve):
    return min(curve, key=lambda p: p["val_loss"])

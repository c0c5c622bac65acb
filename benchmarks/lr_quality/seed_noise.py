"""python -m benchmarks.lr_quality.seed_noise: how much of a regret is the training seeds' luck.

The oracle's best and its 3 grid points on each side retrained over 5 fresh training seeds
(FRESH_SEEDS, never used by the oracle or the picks): the oracle's own max_lr scored as a pick would be
if it met other seeds (its fresh mean / the oracle's best - 1), and where the fresh seeds put the best.
The quality benchmark trains a pick over the oracle's own seeds (a paired comparison), so most of this
luck cancels there; it does not cancel near a cliff, where one seed's fate changes between close LRs.

Cached in seed_noise.json; writes seed_noise.md (the table of RESULTS.md)."""
import os
import statistics

import torch

from benchmarks.lr_quality import oracle
from benchmarks.lr_quality.cache import HERE, ResultCache, lr_text
from benchmarks.lr_quality.tasks import TASKS
from benchmarks.lr_quality.training import train_one_cycle

FRESH_SEEDS = (5, 6, 7, 8, 9)
SIDE_POINTS = 3


def fresh_losses(task, runs, lr, save):
    key = lr_text(lr)
    if key not in runs:
        runs[key] = [train_one_cycle(task, lr, seed)["val_loss"] for seed in FRESH_SEEDS]
        save()
    return runs[key]


def row(task, curve, runs, save):
    i = min(range(len(curve)), key=lambda j: curve[j]["val_loss"])
    best = curve[i]
    near = curve[max(0, i - SIDE_POINTS) : i + SIDE_POINTS + 1]
    fresh = {p["lr"]: statistics.fmean(fresh_losses(task, runs, p["lr"], save)) for p in near}
    fresh_best = min(fresh, key=fresh.get)
    edge = fresh_best in (near[0]["lr"], near[-1]["lr"])  # then the fresh best may lie beyond: a lower bound
    spread = statistics.stdev(best["seed_losses"]) / best["val_loss"]
    return (f"| {task.name} | {best['lr']:.3g} | {100 * spread:.1f}% | "
            f"{100 * (fresh[best['lr']] / best['val_loss'] - 1):+.1f}% | {fresh_best:.3g}{' (edge)' if edge else ''} | "
            f"{100 * (fresh[best['lr']] / fresh[fresh_best] - 1):+.1f}%{' or more' if edge else ''} |")


def main():
    torch.set_num_threads(1)  # as the oracle was trained
    oracle_cache = ResultCache(os.path.join(HERE, "oracle.json"))
    cache = ResultCache(os.path.join(HERE, "seed_noise.json"))
    lines = ["The oracle's best max_lr against 5 fresh training seeds: one training's spread (the standard "
             "deviation of the oracle's 5 seeds at its best, relative), the oracle's max_lr scored on the fresh "
             "seeds against the oracle's best, the fresh seeds' best grid point (of the 7 around it; \"edge\": "
             "the last of them, so the fresh best may lie beyond), and the oracle's max_lr against that, both "
             "on the fresh seeds.", "",
             "| task | oracle max_lr | one seed's spread | oracle max_lr, fresh seeds | fresh seeds' best | "
             "oracle's against it |", "|---|---|---|---|---|---|"]
    for task in TASKS:
        curve = oracle.grid(task, oracle_cache.runs(task, oracle.TRAIN_SEEDS), oracle_cache.save)
        lines.append(row(task, curve, cache.runs(task, FRESH_SEEDS), cache.save))
        print(f"{task.name}: done", flush=True)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(HERE, "seed_noise.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

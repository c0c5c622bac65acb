"""python -m benchmarks.lr_quality [task...] (make quality): the range test's recommended max_lr
against the oracle, on every task and sweep seed, with the published rules and the untuned peers.

Per task: the oracle curve (oracle.json, trained if missing); per sweep seed, range_test as a user
runs it (finds.py), its recommendation trained over the oracle's training seeds (picks.json) and every
other rule scored on the oracle curve between grid points (interpolate.py); the peers trained over
the same seeds (peers.json). Writes results.json, results.md (the tables of RESULTS.md) and one
picture per task under plots/."""
import json
import os
import sys
import time

import torch

from benchmarks.lr_quality import oracle, report, scoring
from benchmarks.lr_quality.cache import HERE, ResultCache
from benchmarks.lr_quality.finds import find
from benchmarks.lr_quality.peers import PEERS
from benchmarks.lr_quality.tasks import BY_NAME, TASKS

SWEEP_SEEDS = (100, 101, 102, 103, 104)


def run_task(task, caches):
    oracle_cache, picks_cache, peers_cache = caches
    curve = oracle.grid(task, oracle_cache.runs(task, oracle.TRAIN_SEEDS), oracle_cache.save)
    best = oracle.best_of(curve)
    pick_runs = picks_cache.runs(task, oracle.TRAIN_SEEDS)
    sweeps = []
    for seed in SWEEP_SEEDS:
        start = time.perf_counter()
        found = find(task, seed)
        seconds = time.perf_counter() - start
        scores = {}
        for rule, lr in found["picks"].items():
            if rule == "recommended" and lr is not None:  # trained, not read off the curve
                point = oracle.scored(task, pick_runs, lr, picks_cache.save)
                scores[rule] = scoring.of_point(point, best)
            else:
                scores[rule] = scoring.interpolated(curve, best, lr)
        sweeps.append({"seed": seed, "find_s": seconds, **found, "scores": scores})
    peer_runs = peers_cache.runs(task, oracle.TRAIN_SEEDS)
    peers = {}
    for name, train in PEERS.items():
        if name not in peer_runs:
            peer_runs[name] = [train(task, seed) for seed in oracle.TRAIN_SEEDS]
            peers_cache.save()
        peers[name] = scoring.trained(peer_runs[name], best)
    return {"task": task.name, "kind": task.kind, "family": task.family, "total_steps": task.total_steps,
            "oracle": {"best": best, "curve": curve}, "sweeps": sweeps, "peers": peers}


def main(names):
    torch.set_num_threads(1)  # as the oracle was trained: the same numbers on any machine's core count
    caches = tuple(ResultCache(os.path.join(HERE, f"{name}.json")) for name in ("oracle", "picks", "peers"))
    results = []
    for task in [BY_NAME[n] for n in names] or TASKS:
        start = time.time()
        results.append(run_task(task, caches))
        print(f"{task.name}: {time.time() - start:.0f}s", flush=True)
        report.plot_task(results[-1], os.path.join(HERE, "plots", f"{task.name}.png"))
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    text = report.tables(results)
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])

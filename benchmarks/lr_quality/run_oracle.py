"""python -m benchmarks.lr_quality.run_oracle [task...]: fills the oracle cache."""
import os
import sys
import time

import torch

from benchmarks.lr_quality import oracle
from benchmarks.lr_quality.cache import HERE, ResultCache
from benchmarks.lr_quality.tasks import BY_NAME, TASKS

if __name__ == "__main__":
    torch.set_num_threads(1)
    cache = ResultCache(os.path.join(HERE, "oracle.json"))
    for task in [BY_NAME[n] for n in sys.argv[1:]] or TASKS:
        start = time.time()
        curve = oracle.grid(task, cache.runs(task, oracle.TRAIN_SEEDS), cache.save)
        best = oracle.best_of(curve)
        print(f"{task.name}: best max_lr {best['lr']:.3g} val loss {best['val_loss']:.4f} "
              f"({len(curve)} points, {time.time() - start:.0f}s)", flush=True)
        for p in curve:
            print(f"   {p['lr']:.3g} {p['val_loss']:.4f} {p['val_accuracy']}", flush=True)

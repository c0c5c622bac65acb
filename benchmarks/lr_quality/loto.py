"""python -m benchmarks.lr_quality.loto: the confirmation's divisor chosen leaving one task out.

Re-picks every sweep's stored candidates (results.json, from python -m benchmarks.lr_quality) with
each divisor on a 2**(1/4) grid, scores the picks on the oracle curve (interpolate.py), and for each
task chooses the divisor with the best worst case (then mean) over the other tasks: the held-out
task's regret under the divisor it did not help choose."""
import json
import math
import os
import statistics

from benchmarks.lr_quality import interpolate
from benchmarks.lr_quality.cache import HERE
from lrfused.find import confirm

DIVISORS = tuple(2 ** (k / 4) for k in range(9))


def regrets(task_result, divisor):
    curve, best = task_result["oracle"]["curve"], task_result["oracle"]["best"]["val_loss"]
    out = []
    for sweep in task_result["sweeps"]:
        candidates = [{**c, "score": math.inf if c["score"] is None else float(c["score"])}
                      for c in sweep["confirmation"]["candidates"]]
        refined = confirm.pick(candidates)["max_lr"] * confirm.HORIZON_DIVISOR
        out.append(interpolate.loss_at(curve, refined / divisor) / best - 1)
    return out


def main():
    with open(os.path.join(HERE, "results.json")) as f:
        results = json.load(f)
    table = {d: {r["task"]: regrets(r, d) for r in results} for d in DIVISORS}

    def on_others(divisor, held_out):
        rows = [v for task, v in table[divisor].items() if task != held_out]
        return max(max(v) for v in rows), statistics.fmean(statistics.fmean(v) for v in rows)

    print("| held-out task | divisor chosen on the others | held-out regret, mean (worst) |")
    print("|---|---|---|")
    for r in results:
        divisor = min(DIVISORS, key=lambda d: on_others(d, r["task"]))
        v = table[divisor][r["task"]]
        print(f"| {r['task']} | {divisor:.2f} | {100 * statistics.fmean(v):.1f}% ({100 * max(v):.1f}%) |")


if __name__ == "__main__":
    main()

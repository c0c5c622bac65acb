"""The recommendation's confirmation stage, run when range_test knows the training budget
(total_steps): a few candidate max_lrs, each trained briefly with 1cycle from the model's starting
point (the sweep's own loop, lrfused.find.sweep, on a OneCycle schedule instead of the ramp), scored
by the loss it ends with; the best, refined between its neighbours, divided by HORIZON_DIVISOR.

Why: the LR at the sweep's smoothed minimum sits 2x to 20x above the best 1cycle max_lr depending on
the task (benchmarks/lr_quality), so no divisor of it fits every task; a short 1cycle run ranks LRs
by what training ends with, not by where the ramp's loss turned. A short run favours a higher LR
than the full budget does (it has fewer steps to cover the same distance), hence the divisor. The
constants were chosen on the benchmark's tasks leaving each task out in turn (RESULTS.md).
"""
import collections.abc
import dataclasses
import math
import statistics

from lrfused.find.sweep import run_sweep

SHARE = 16  # each candidate trains total_steps // SHARE steps: the four together a quarter of the budget
OFFSETS = tuple(2.0 ** -(0.5 + i) for i in range(4))  # candidates: the LR at the training loss's smoothed minimum x these
HORIZON_DIVISOR = 2.0 ** 0.75  # the refined best candidate / this = the recommended max_lr
MIN_STEPS = 8  # shorter candidate runs rank LRs by noise: no confirmation below this
FLAT = 0.01  # candidates within 1% of the best score are indistinguishable from it


def candidate_steps(total_steps):
    return total_steps // SHARE


def planned_steps(total_steps):
    """The confirmation's training steps, all candidates together (fewer if some diverge)."""
    return candidate_steps(total_steps) * len(OFFSETS)


def cannot_confirm(total_steps, optimizer, data):
    """Why the confirmation cannot run (then the curve's rule stands), or None."""
    if total_steps is None:
        return "no total_steps given: the max_lr is the curve's rule (LR at the smoothed minimum / 3)"
    if not isinstance(optimizer, str):
        return "the confirmation trains one of lrfused's fused families: not run for a given optimizer instance"
    if isinstance(data, collections.abc.Iterator):
        return "data is a one-shot iterator, used up by the sweep: no batches left to confirm on"
    if candidate_steps(total_steps) < MIN_STEPS:
        return (f"total_steps={total_steps} gives candidate runs of {candidate_steps(total_steps)} steps "
                f"(< {MIN_STEPS}), too short to rank LRs: the curve's rule stands")
    return None


def confirm(model, data, loss_of, config, restore, anchor, total_steps, val_data=None, progress=None):
    """Trains each candidate (anchor x OFFSETS) for candidate_steps(total_steps) steps, restore()
    after each, and returns the confirmation's record: the candidates, the pick and how sure it is."""
    steps = candidate_steps(total_steps)
    use_val = val_data is not None
    candidates, steps_run = [], 0
    for factor in OFFSETS:
        record = candidate_run(model, data, loss_of, config, anchor * factor, steps, val_data, progress)
        restore()
        steps_run += record.timings.get("steps", 0)
        candidates.append({"max_lr": anchor * factor, "score": candidate_score(record, use_val), "end": record.end})
    return {
        "ran": True,
        "anchor_lr": anchor,
        "scored_by": "validation loss" if use_val else "training loss (mean of the last quarter)",
        "steps_per_candidate": steps,
        "steps_run": steps_run,
        "candidates": candidates,
        **pick(candidates),
    }


def candidate_run(model, data, loss_of, config, max_lr, steps, val_data=None, progress=None):
    """Trains `model` (the caller restores it) for `steps` 1cycle steps at `max_lr` with the sweep's
    optimizer and settings; returns the SweepRecord (its val list holds the validation loss after
    the last step when val_data is given)."""
    run = dataclasses.replace(config, num_iter=steps, one_cycle_lr=max_lr, val_every=steps)
    return run_sweep(model, data, loss_of, run, progress or _Quiet(), val_data=val_data)


def candidate_score(record, use_val):
    """The loss a candidate ends with, lower is better: the validation loss after its last step, or
    the mean training loss of its last quarter (the annealed end of its cycle); inf if it diverged
    or stopped early."""
    if record.end != "completed":
        return math.inf
    if use_val:
        return record.val[-1][1] if record.val else math.inf
    skipped = set(record.skipped)  # steps an fp16 GradScaler skipped: not trained, their losses not read
    trained = [loss for i, loss in enumerate(record.losses) if i not in skipped]
    tail = trained[-max(1, len(trained) // 4):]
    score = statistics.fmean(tail) if tail else math.inf
    return score if math.isfinite(score) else math.inf


def pick(candidates):
    """{"max_lr", "best_candidate", "refined", "spread", "warnings"} from the scored candidates (highest LR
    first). The best is refined by a parabola through it and its neighbours in log LR (when it has
    both), then divided by HORIZON_DIVISOR. None as max_lr if every candidate failed."""
    scores = [c["score"] for c in candidates]
    warnings = []
    if not any(math.isfinite(s) for s in scores):
        return {"max_lr": None, "best_candidate": None, "refined": False, "spread": None,
                "warnings": ["every candidate diverged: the curve's rule stands; lower --end-lr or check the model"]}
    best = min(range(len(scores)), key=scores.__getitem__)
    log_lr, refined = math.log(candidates[best]["max_lr"]), False
    if 0 < best < len(scores) - 1 and all(math.isfinite(s) for s in scores[best - 1 : best + 2]):
        above, at, below = scores[best - 1 : best + 2]
        curvature = above - 2 * at + below
        if curvature > 0:  # (log LR spacing is uniform: the vertex as a fraction of one spacing)
            step = math.log(candidates[best - 1]["max_lr"]) - log_lr
            log_lr -= step * 0.5 * (above - below) / curvature
            refined = True
    best_score = scores[best]
    near = [c["max_lr"] for c in candidates if c["score"] - best_score <= FLAT * abs(best_score)]
    if best in (0, len(scores) - 1):  # (not a direction to move in: the full budget's best may lie either way)
        edge = "highest" if best == 0 else "lowest"
        warnings.append(f"the {edge} candidate scored best: the short runs' best was not bracketed, so the "
                        "pick is that candidate / the divisor, unrefined and less certain")
    if len(near) == len(candidates):
        warnings.append(f"every candidate scored within {FLAT:.0%} of the best: the loss is flat in the LR here, "
                        "so the pick is uncertain (and matters little)")
    if any(c["end"] == "diverged" for c in candidates):
        warnings.append("some candidates diverged: the LR cliff is near; do not raise max_lr")
    finite = [s for s in scores if math.isfinite(s)]
    return {
        "max_lr": math.exp(log_lr) / HORIZON_DIVISOR,
        "best_candidate": candidates[best]["max_lr"],
        "refined": refined,  # by the parabola through the best and its neighbours
        # how decisive the evidence is: the LRs that scored within FLAT of the best, and how far above
        # the best the worst finite score is (relative to the best)
        "spread": {"near_best_lrs": [min(near), max(near)],
                   "worst_above_best": (max(finite) - best_score) / (abs(best_score) or 1.0)},
        "warnings": warnings,
    }


class _Quiet:
    def update(self, n):
        pass

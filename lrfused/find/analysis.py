"""The range test's numbers: smoothing, divergence, suggestions and the recommended settings.

Definitions (all on the bias-corrected exponential moving average of the loss, "smoothed"):

- smoothed[i] = avg[i] / (1 - beta ** (i + 1)), avg[i] = beta * avg[i - 1] + (1 - beta) * loss[i],
  avg[-1] = 0: the bias correction makes the first values true averages, not pulled towards 0.
- diverged at step i: loss[i] is not finite, or smoothed[i] - best > (threshold - 1) * |best| with
  best = min(smoothed[:i]). For positive losses this is the classic smoothed[i] > threshold * best;
  written as a rise over |best| it also holds for losses that go negative.
- minimum: the LR at the lowest smoothed loss, divided by 10.
- steep: the LR of steepest descent, d smoothed / d log10(lr) most negative, at a point strictly
  before the minimum (central differences inside, a forward one at the first point). The
  minimum's own slope is left out: its one-sided difference ends on the minimum, and on a sharp
  minimum it is the steepest, which put "steep" at the bottom of the valley.
- valley (fastai): the middle of the longest stretch over which the smoothed loss keeps falling (its
  longest decreasing subsequence from start to end): the LR at start + int(L/3) + int(L/6),
  L = end - start.

Against fastai's lr_find (same three names): fastai drops the first tenth and the last 5 points of
the curve before it suggests, since its sweep runs a fixed length into the blow-up; here the sweep
stops at divergence and the diverged step is left out, and the bias-corrected average makes the
first points usable, so nothing is trimmed. minimum and valley are fastai's definitions on the curve
they are given. fastai's steep is the left point of the steepest forward difference anywhere on the
curve, so on a noisy curve it can fall past the minimum; here it is looked for before the minimum
only, with central differences, which estimate the slope at the point itself.

The recommended 1cycle max_lr, when range_test knows the training budget (total_steps), is the one
its confirmation stage found by training candidates briefly (lrfused.find.confirm). Without it, the
curve's rule: a third of the LR at the lowest smoothed loss, half a decade below where the loss
stops falling, not at the minimum itself, where training is already unstable; the oracle's best
lies 1/2 to 1/29 of that LR depending on the task (benchmarks/lr_quality), so this rule can be
several times off, which is why the confirmation exists. The cyclical band is [max_lr / 4, max_lr],
within Smith's base_lr = max_lr / 3 to max_lr / 10. Warm restarts restart at max_lr and anneal down
to that base_lr.
"""
import math

import numpy as np

MAX_LR_DIVISOR = 3.0  # recommended max_lr = LR at the smoothed minimum / 3
BASE_LR_DIVISOR = 4.0  # recommended base_lr = max_lr / 4


class Smoother:
    """The bias-corrected EMA and the divergence rule, fed one loss at a time: the sweep checks
    each chunk of losses as it arrives, and the whole-curve functions below reuse it."""

    def __init__(self, beta, threshold=math.inf):
        self.beta, self.threshold = beta, threshold
        self.avg, self.count, self.best = 0.0, 0, None

    def add(self, loss):
        """(smoothed loss, whether the sweep diverged at this loss)."""
        self.count += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smoothed = self.avg / (1 - self.beta**self.count)
        if diverged(loss, smoothed, self.best, self.threshold):
            return smoothed, True
        self.best = smoothed if self.best is None else min(self.best, smoothed)
        return smoothed, False


def smooth(losses, beta):
    """Bias-corrected exponential moving average; non-finite losses make the rest non-finite."""
    smoother = Smoother(beta)
    return [smoother.add(loss)[0] for loss in losses]


def diverged(loss, smoothed, best, threshold):
    if not math.isfinite(loss) or not math.isfinite(smoothed):
        return True
    return best is not None and smoothed - best > (threshold - 1) * abs(best)


def first_divergence(losses, beta, threshold):
    """Index of the first step at which a sweep with these losses diverges, or None."""
    smoother = Smoother(beta, threshold)
    for i, loss in enumerate(losses):
        if smoother.add(loss)[1]:
            return i
    return None


def suggest(lrs, smoothed):
    """{'valley', 'steep', 'minimum'}: LRs, or None where the curve is too short to say."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    if len(losses) < 3:
        return {"valley": None, "steep": None, "minimum": None}
    lowest = int(np.argmin(losses))
    out = {"minimum": float(lrs[lowest] / 10)}
    if lowest >= 1:
        slopes = np.gradient(losses[: lowest + 1], np.log10(lrs[: lowest + 1]))[:lowest]
        out["steep"] = float(lrs[int(np.argmin(slopes))])
    else:  # the loss never fell below its first value
        out["steep"] = None
    out["valley"] = float(lrs[valley_index(losses)])
    return out


def valley_index(losses):
    """fastai's valley: the middle of the longest decreasing subsequence of the loss."""
    n = len(losses)
    run = [1] * n  # run[i]: length of the longest decreasing subsequence ending at i
    max_start, max_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[max_end] < run[i]:
            max_end = i
            max_start = max_end - run[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def recommend(suggestions, end_lr, confirmed_max_lr=None):
    """The recommended max_lr (1cycle) and [base_lr, max_lr] (cyclical), or None without a curve:
    confirmed_max_lr where the confirmation stage found one, else the curve's rule. (The calls that
    use them: lrfused.find.recommendation.)"""
    if suggestions.get("minimum") is None:
        return None
    lr_at_minimum = suggestions["minimum"] * 10
    max_lr = lr_at_minimum / MAX_LR_DIVISOR if confirmed_max_lr is None else confirmed_max_lr
    base_lr = max_lr / BASE_LR_DIVISOR
    return {
        "max_lr": max_lr,
        "base_lr": base_lr,
        "rule": "curve" if confirmed_max_lr is None else "confirmed",
        "lr_at_minimum": lr_at_minimum,
        # The loss still fell at the end of the sweep: the true bound may lie higher.
        "still_falling_at_end": lr_at_minimum >= end_lr * 0.999,
    }

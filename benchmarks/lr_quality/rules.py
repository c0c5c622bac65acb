"""Other projects' rules for reading a max_lr off a range test's curve, as those projects define
them, applied to the raw losses of lrfused's sweep (so every rule reads the same sweep; each smooths
with its own settings, and the curve ends where lrfused's sweep stopped on divergence)."""
import numpy as np


def torch_lr_finder(lrs, losses, smooth_f=0.05, skip_start=10, skip_end=5):
    """torch-lr-finder 0.2.2, LRFinder.plot(suggest_lr=True): the loss smoothed as
    s[i] = smooth_f * loss[i] + (1 - smooth_f) * s[i - 1] (s[0] = loss[0]), trimmed by skip_start /
    skip_end points, and the LR at the most negative np.gradient (per step, not per LR)."""
    smoothed = [losses[0]]
    for loss in losses[1:]:
        smoothed.append(smooth_f * loss + (1 - smooth_f) * smoothed[-1])
    end = len(lrs) - skip_end if skip_end else len(lrs)
    lrs, smoothed = np.asarray(lrs[skip_start:end]), np.asarray(smoothed[skip_start:end])
    if len(smoothed) < 2:
        return None
    return float(lrs[int(np.argmin(np.gradient(smoothed)))])


def lightning(lrs, losses, beta=0.98, skip_begin=10, skip_end=1):
    """Lightning 2.6, _LRFinder.suggestion(): the bias-corrected running average (beta 0.98), trimmed,
    non-finite points dropped, and the LR at the most negative torch.gradient(losses, spacing=[lrs]):
    the slope per unit of linear LR."""
    smoothed, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        smoothed.append(avg / (1 - beta ** (i + 1)))
    lrs, smoothed = np.asarray(lrs[skip_begin:-skip_end]), np.asarray(smoothed[skip_begin:-skip_end])
    finite = np.isfinite(smoothed)
    lrs, smoothed = lrs[finite], smoothed[finite]
    if len(smoothed) < 2:
        return None
    return float(lrs[int(np.argmin(np.gradient(smoothed, lrs)))])

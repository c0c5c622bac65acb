"""The oracle curve read between its grid points: a rule's LR scored without training it again."""
import bisect
import math


def loss_at(curve, lr):
    """The oracle's mean validation loss at `lr`, linear in log LR between grid points; an LR past
    the grid's end takes the end point's loss (the grid extends to where the loss has risen or the
    training diverged, so this understates, never overstates, a far pick's cost)."""
    lrs = [p["lr"] for p in curve]
    if lr <= lrs[0]:
        return curve[0]["val_loss"]
    if lr >= lrs[-1]:
        return curve[-1]["val_loss"]
    i = bisect.bisect_right(lrs, lr)
    low, high = curve[i - 1], curve[i]
    if not math.isfinite(low["val_loss"]) or not math.isfinite(high["val_loss"]):
        return math.inf
    t = (math.log(lr) - math.log(low["lr"])) / (math.log(high["lr"]) - math.log(low["lr"]))
    return low["val_loss"] + t * (high["val_loss"] - low["val_loss"])


def accuracy_at(curve, lr):
    """As loss_at, for the mean validation accuracy (None for a regression task)."""
    if curve[0]["val_accuracy"] is None:
        return None
    lrs = [p["lr"] for p in curve]
    if lr <= lrs[0] or lr >= lrs[-1]:
        return curve[0 if lr <= lrs[0] else -1]["val_accuracy"]
    i = bisect.bisect_right(lrs, lr)
    low, high = curve[i - 1], curve[i]
    t = (math.log(lr) - math.log(low["lr"])) / (math.log(high["lr"]) - math.log(low["lr"]))
    return low["val_accuracy"] + t * (high["val_accuracy"] - low["val_accuracy"])

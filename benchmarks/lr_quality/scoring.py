"""Scores against the oracle: regret = validation loss / the oracle's best - 1, and the accuracy gap
in points (the oracle's best accuracy - the rule's)."""
import math
import statistics

from benchmarks.lr_quality import interpolate


def regret(loss, best):
    return loss / best - 1 if math.isfinite(loss) else math.inf


def accuracy_gap(accuracy, best_accuracy):
    return None if accuracy is None or best_accuracy is None else 100 * (best_accuracy - accuracy)


def interpolated(curve, best, lr):
    """A rule's LR scored on the oracle curve (not trained again): {"regret", "accuracy_gap"}."""
    if lr is None:
        return {"regret": math.inf, "accuracy_gap": None}
    return {"regret": regret(interpolate.loss_at(curve, lr), best["val_loss"]),
            "accuracy_gap": accuracy_gap(interpolate.accuracy_at(curve, lr), best["val_accuracy"])}


def of_point(point, best):
    """A trained point ({"val_loss", "val_accuracy"}: means over the training seeds) scored."""
    return {"regret": regret(point["val_loss"], best["val_loss"]),
            "accuracy_gap": accuracy_gap(point["val_accuracy"], best["val_accuracy"])}


def trained(results, best):
    """Runs over the training seeds (one {"val_loss", "val_accuracy"} each) scored by their means."""
    losses = [r["val_loss"] for r in results]
    loss = statistics.fmean(losses) if all(math.isfinite(v) for v in losses) else math.inf
    accuracies = [r["val_accuracy"] for r in results]
    accuracy = None if None in accuracies else statistics.fmean(accuracies)
    return of_point({"val_loss": loss, "val_accuracy": accuracy}, best)


def mean(values):
    values = list(values)
    return statistics.fmean(values) if values and all(math.isfinite(v) for v in values) else math.inf

"""One range test on one task, as a new user runs it: lrfused's range_test with the training budget
(total_steps) and the validation set, and the max_lr each rule reads off the same sweep."""
from benchmarks.lr_quality import rules
from benchmarks.lr_quality.sweeps import sweep_inputs, validation_data
from lrfused.find import range_test
from lrfused.find.analysis import MAX_LR_DIVISOR


def find(task, seed):
    """{"picks": {rule: max_lr or None}, "cost": ..., "confirmation": ...} for the sweep seed `seed`."""
    model, loader, loss_fn, settings = sweep_inputs(task, seed)
    result = range_test(model, loader, loss_fn, total_steps=task.total_steps, val_data=validation_data(task),
                        val_every=None, **settings)
    recommendation = result.recommendation or {}
    lr_at_minimum = recommendation.get("lr_at_minimum")
    picks = {
        "recommended": recommendation.get("max_lr"),
        "curve rule (min / 3)": None if lr_at_minimum is None else lr_at_minimum / MAX_LR_DIVISOR,
        **{f"suggestion {name}": lr for name, lr in result.suggestions.items()},
        "torch-lr-finder": rules.torch_lr_finder(result.lrs, result.losses),
        "Lightning": rules.lightning(result.lrs, result.losses),
    }
    return {"picks": picks, "rule": recommendation.get("rule"), "cost": result.cost,
            "confirmation": result.confirmation}

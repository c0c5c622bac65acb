"""The calls a result recommends when the sweep's optimizer is not lrfused's fused SGD: that
optimizer with torch's schedulers (lrfused's fused optimizers are SGD)."""


def torch_scheduler_calls(recommendation, optimizer):
    """`recommendation` (from lrfused.find.analysis.recommend) with its one_cycle / cyclic /
    warm_restarts calls for `optimizer` ("adamw" or "<class name> (given)")."""
    if recommendation is None:
        return None
    max_lr, base_lr = recommendation["max_lr"], recommendation["base_lr"]
    if optimizer == "adamw":
        opt = f"opt = torch.optim.AdamW(model.parameters(), lr={max_lr:.3g}); "
    else:  # the user's optimizer: max_lr is its first group's; keep the other groups' ratios to it
        opt = f"opt = your {optimizer.removesuffix(' (given)')} (first group's lr {max_lr:.3g}, other groups in the same ratio); "
    return {
        **recommendation,
        "one_cycle": opt + f"torch.optim.lr_scheduler.OneCycleLR(opt, max_lr={max_lr:.3g}, total_steps=len(loader) * epochs)",
        "cyclic": opt + (f"torch.optim.lr_scheduler.CyclicLR(opt, base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, "
                         "step_size_up=4 * len(loader), cycle_momentum=False)"),
        "warm_restarts": opt + (f"torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=len(loader), T_mult=2, "
                                f"eta_min={base_lr:.3g})"),
    }

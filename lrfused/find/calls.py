"""The calls a result recommends for the optimizer the sweep used: lrfused's fused SGD family (made by
lrfused.find.analysis.recommend), its fused AdamW family, or a given optimizer with torch's schedulers."""


# torch.optim.AdamW's defaults: a recommended AdamW call names only the settings that differ
ADAMW_DEFAULTS = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}


def optimizer_calls(recommendation, optimizer, adamw_settings=None):
    """`recommendation` (from lrfused.find.analysis.recommend) with its one_cycle / cyclic /
    warm_restarts calls for `optimizer` ("sgd", "adamw" or "<class name> (given)"); an AdamW call
    carries the sweep's `adamw_settings` (betas, eps, weight_decay) where they are not torch's defaults."""
    if recommendation is None or optimizer == "sgd":
        return recommendation
    max_lr, base_lr = recommendation["max_lr"], recommendation["base_lr"]
    if optimizer == "adamw":
        extra = "".join(f", {name}={value!r}" for name, value in (adamw_settings or {}).items()
                        if value != ADAMW_DEFAULTS[name])
        fused = "lrfused.FusedAdamW(model.parameters(), schedule=lrfused.schedules."
        return {
            **recommendation,
            "one_cycle": (f"lrfused.FusedOneCycleAdamW(model.parameters(), max_lr={max_lr:.3g}, "
                          f"total_steps=len(loader) * epochs{extra})"),
            "cyclic": fused + f"Cyclic(base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, step_size_up=4 * len(loader)){extra})",
            "warm_restarts": (fused + f"WarmRestarts(max_lr={max_lr:.3g}, T_0=len(loader), T_mult=2, "
                                      f"eta_min={base_lr:.3g}){extra})"),
        }
    # the user's optimizer: max_lr is its first group's; keep the other groups' ratios to it
    opt = f"opt = your {optimizer.removesuffix(' (given)')} (first group's lr {max_lr:.3g}, other groups in the same ratio); "
    return {
        **recommendation,
        "one_cycle": opt + f"torch.optim.lr_scheduler.OneCycleLR(opt, max_lr={max_lr:.3g}, total_steps=len(loader) * epochs)",
        "cyclic": opt + (f"torch.optim.lr_scheduler.CyclicLR(opt, base_lr={base_lr:.3g}, max_lr={max_lr:.3g}, "
                         "step_size_up=4 * len(loader), cycle_momentum=False)"),
        "warm_restarts": opt + (f"torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=len(loader), T_mult=2, "
                                f"eta_min={base_lr:.3g})"),
    }

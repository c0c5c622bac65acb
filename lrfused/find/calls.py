"""The calls a result recommends for the optimizer the sweep used: lrfused's fused SGD family (made by
lrfused.find.analysis.recommend), its fused AdamW family, or a given optimizer with torch's schedulers."""


# The sweep settings a recommended call of lrfused's families carries where they differ from these
# defaults (the drop-ins' own; AdamW's are torch's).
DEFAULTS = {
    "sgd": {"weight_decay": 0.0, "nesterov": False},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
}
CALLS = ("one_cycle", "cyclic", "warm_restarts")


def optimizer_calls(recommendation, optimizer, settings=None):
    """`recommendation` (from lrfused.find.analysis.recommend) with its one_cycle / cyclic /
    warm_restarts calls for `optimizer` ("sgd", "adamw" or "<class name> (given)"); a call of
    lrfused's families carries the sweep's `settings` (a dict of the family's DEFAULTS keys) where
    they are not the defaults."""
    if recommendation is None:
        return recommendation
    defaults = DEFAULTS.get(optimizer, {})
    extra = "".join(f", {name}={value!r}" for name, value in (settings or {}).items()
                    if name in defaults and value != defaults[name])
    if optimizer == "sgd":  # analysis.recommend's calls, each ending with its ")"
        return {**recommendation, **{call: recommendation[call][:-1] + extra + ")" for call in CALLS}}
    max_lr, base_lr = recommendation["max_lr"], recommendation["base_lr"]
    if optimizer == "adamw":
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

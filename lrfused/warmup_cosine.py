"""Linear warm-up then cosine decay (WarmupCosine), the usual schedule of transformer training."""
from lrfused._checks import check_int, check_number
from lrfused._ext import _C
from lrfused._schedule import Field, Schedule, base_lr


class WarmupCosine(Schedule):
    """From ``lr * start_factor`` at step 0 linearly up to ``lr`` at step ``warmup_steps``, then a
    cosine down towards ``eta_min``, reached at step ``total_steps``: the closed form of
    ``SequentialLR(opt, [LinearLR(opt, start_factor, total_iters=warmup_steps),
    CosineAnnealingLR(opt, T_max=total_steps - warmup_steps, eta_min)], milestones=[warmup_steps])``
    (``CosineAnnealingLR`` alone when ``warmup_steps=0``). ``lr`` is each group's; ``eta_min`` may
    be a list, one value per param group. Momentum is constant. ``total_steps`` steps in all."""

    kind = _C.SCHEDULE_WARMUP_COSINE
    struct = "warmup_cosine"
    fields = (
        Field("initial_lr", "lr"),
        Field("warmup_start_factor", "start_factor"),
        Field("eta_min"),
        Field("warmup_steps"),
        Field("total_steps"),
    )

    def __init__(self, total_steps, warmup_steps=0, start_factor=1.0 / 3, eta_min=0.0):
        total_steps = check_int("total_steps", total_steps, minimum=1)
        warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        if warmup_steps >= total_steps:
            raise ValueError(f"warmup_steps must be < total_steps, got {warmup_steps} and {total_steps}")
        check_number("start_factor", start_factor, strictly_above=True, maximum=1.0)
        self._settings = dict(
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            warmup_start_factor=float(start_factor),
            eta_min=eta_min,
            cycle_momentum=False,
        )

    def settings(self):
        return dict(self._settings)

    def complete_group(self, group, where):
        base_lr(group, where)
        check_number("eta_min" + where, group["eta_min"])
        return super().complete_group(group, where)

    def total_steps(self, group):
        return group["total_steps"]

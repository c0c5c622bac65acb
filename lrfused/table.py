"""A schedule given as a table, one row per step (Table): any schedule, read by the kernel."""
import math
import numbers

import torch

from lrfused._checks import check_int
from lrfused._ext import _C
from lrfused._schedule import Field, Schedule, base_lr


def _values(name, values, total_steps):
    """A callable evaluated at steps 0 .. total_steps - 1, or a 1-D tensor / sequence, as floats."""
    if callable(values):
        if total_steps is None:
            raise ValueError(f"total_steps is missing: a callable {name} is evaluated once for each of total_steps steps")
        values = [values(step) for step in range(total_steps)]
    elif isinstance(values, torch.Tensor):
        if values.dim() != 1 or values.is_complex():
            raise ValueError(f"{name} must be a 1-D real tensor, got shape {tuple(values.shape)} and dtype {values.dtype}")
        values = values.detach().to("cpu", torch.float64).tolist()
    elif isinstance(values, (list, tuple)):
        values = list(values)
    else:
        raise TypeError(f"{name} must be a callable, a 1-D tensor or a list of numbers, got {type(values).__name__}")
    if not values:
        raise ValueError(f"{name} is empty: a table needs at least one step")
    if total_steps is not None and len(values) != total_steps:
        raise ValueError(f"{name} has {len(values)} values but total_steps is {total_steps}")
    floats = []
    for step, value in enumerate(values):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()  # a callable may return one-element tensors
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} at step {step} must be a finite number >= 0, got {value!r}")
        floats.append(float(value))
    return floats


def _after_end(lr_lambda, steps, last):
    """The factor LambdaLR shows after the last step: lr_lambda(steps) for a callable, if it gives a
    usable one there (a lambda that indexes a list of `steps` factors does not); else the last."""
    if not callable(lr_lambda):
        return last
    try:
        return _values("lr_lambda", [lr_lambda(steps)], None)[0]
    except Exception:  # defined on the table's steps only: nothing to show past them
        return last


class Table(Schedule):
    """Any schedule, as one value per step. ``lr_lambda``: a callable ``step -> factor`` (as
    ``torch.optim.lr_scheduler.LambdaLR`` takes, evaluated once for each of ``total_steps`` steps) or
    a 1-D tensor / list of factors; step ``i`` trains at each group's ``lr * factor[i]``, exactly as
    ``LambdaLR(opt, lr_lambda)`` gives. ``momentum`` (optional, same forms) gives the momentum of each
    step for every group, else the groups' own momentum is used. The table is copied to the params'
    device once; the kernel reads the row of the step counter, so the step stays sync-free."""

    kind = _C.SCHEDULE_TABLE
    fields = (Field("initial_lr"),)  # the base of the rows, which travel as a tensor beside the config
    longer = "a longer table (lr_lambda and total_steps)"

    def __init__(self, lr_lambda, total_steps=None, momentum=None):
        if total_steps is not None:
            total_steps = check_int("total_steps", total_steps, minimum=1)
        self.lr_factors = _values("lr_lambda", lr_lambda, total_steps)
        steps = len(self.lr_factors)
        self.lr_after_end = _after_end(lr_lambda, steps, self.lr_factors[-1])
        self.momenta = None if momentum is None else _values("momentum", momentum, steps)

    def settings(self):
        return {"cycle_momentum": self.momenta is not None}

    def complete_group(self, group, where):
        base_lr(group, where)
        momenta = super().complete_group(group, where)
        return tuple(self.momenta) if group["cycle_momentum"] else momenta

    def fill(self, schedule, group):
        pass  # the rows travel as a tensor beside the config

    def total_steps(self, group):
        return len(self.lr_factors)

    def shown_row(self, rows, step, group):
        """The (lr, momentum) group['lr'] shows before step `step`: after the last step, LambdaLR's
        lr * lr_lambda(total_steps) (the momentum stays the last row's)."""
        if step < len(rows):
            return rows[step]
        return self.lr_after_end * group["initial_lr"], rows[-1][1]

    def table(self, group):
        lr = group["initial_lr"]
        momenta = self.momenta if group["cycle_momentum"] else [float(group["momentum"])] * len(self.lr_factors)
        return [(lr * factor, momentum) for factor, momentum in zip(self.lr_factors, momenta)]

    def __repr__(self):
        return f"Table({len(self.lr_factors)} steps{', with momentum' if self.momenta else ''})"

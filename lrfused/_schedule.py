"""What a schedule is to `FusedSGD`: settings kept in the param groups, checked there, and turned into
the `_C.Schedule` the kernel evaluates from its step counter.

Settings live in the group dicts, as torch's schedulers keep theirs (OneCycleLR's ``max_lr``,
``initial_lr``, ...), so each group can have its own and a state dict carries them.
"""
import functools
from typing import Callable, NamedTuple, Optional

import torch

from lrfused._checks import check_bool, check_lr, check_number
from lrfused._ext import _C


class Field(NamedTuple):
    """A group value the kernel reads: group[key], written as `name` (default: key) of the kernel's
    parameters, through `convert` (e.g. a mode's name to its enum)."""

    key: str
    name: Optional[str] = None
    convert: Optional[Callable] = None


def write_fields(params, fields, group):
    """Writes each field's group value into `params` (a `_C.Schedule` or one of its members)."""
    for key, name, convert in fields:
        value = group[key]
        setattr(params, name or key, value if convert is None else convert(value))


class Schedule:
    """Base of the schedules `FusedSGD` takes. Subclasses set `kind` and override what they need."""

    kind = _C.SCHEDULE_CONSTANT
    # The group values the kernel reads, each named once (`Field`), and the `_C.Schedule` member
    # (None: the schedule itself) they are written into; `inputs` and `fill` both read them.
    fields = ()
    struct = None
    takes_tensor_lr = False  # whether group['lr'] may be a tensor that the kernel reads at every step
    longer = "a larger total_steps"  # what to give to train past the end (for schedules that end)

    def settings(self):
        """Group defaults: name -> value, or a list with one value per param group."""
        return {"cycle_momentum": False}

    @functools.cached_property
    def group_keys(self):
        """The group keys the schedule reads (its settings and the LRs derived from them); asked at
        every step, made once."""
        return tuple(key for key in self.settings() if key != "cycle_momentum") + ("initial_lr", "min_lr")

    def complete_group(self, group, where):
        """Checks the group's settings (raising before anything changes), adds derived keys, and
        returns the momentum values the group can use."""
        check_bool("cycle_momentum" + where, group["cycle_momentum"])
        return (group["momentum"],)

    def inputs(self, group):
        """The group values the schedule reads, as a tuple (the cache key of `fill`)."""
        values = [group[f.key] for f in self.fields]
        values.append(None if group["cycle_momentum"] else group["momentum"])
        return tuple(values)

    def fill(self, schedule, group):
        """Writes the group's schedule into `schedule`, a fresh `_C.Schedule` of this kind."""
        write_fields(schedule if self.struct is None else getattr(schedule, self.struct), self.fields, group)

    def total_steps(self, group):
        """The number of steps the schedule defines, or None if it has no end."""
        return None

    def table(self, group):
        """A table schedule's rows [(lr, momentum), ...] for this group; None for the others."""
        return None

    def build(self, group):
        """The group's `_C.Schedule`: momentum cycled by the schedule, or the group's constant one."""
        schedule = _C.Schedule()
        schedule.kind = self.kind
        schedule.cycle_momentum = group["cycle_momentum"]
        schedule.momentum = 0.0 if group["cycle_momentum"] else float(group["momentum"])
        self.fill(schedule, group)
        return schedule

    def __repr__(self):
        return f"{type(self).__name__}()"


class Constant(Schedule):
    """No schedule: each group's ``lr`` and ``momentum``, as ``torch.optim.SGD`` uses them (change
    ``group['lr']`` between steps and the next step uses the new value). ``lr`` may be a one-element
    tensor, as torch's optimizers take it: the kernel reads its value at every step, on the params'
    device (in place changes, e.g. from a scheduler or inside a CUDA graph, need no host sync)."""

    takes_tensor_lr = True
    fields = (Field("lr", convert=float),)

    def complete_group(self, group, where):
        check_lr("lr" + where, group["lr"])
        return super().complete_group(group, where)

    def inputs(self, group):
        lr = group["lr"]
        return (SameTensor(lr) if isinstance(lr, torch.Tensor) else lr, group["momentum"])

    def fill(self, schedule, group):
        if not isinstance(group["lr"], torch.Tensor):  # a tensor lr is handed to the step beside the config
            write_fields(schedule, self.fields, group)


class SameTensor:
    """A tensor in a cache key, equal only to itself: == on tensors compares their values (on the device)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor

    def __eq__(self, other):
        return isinstance(other, SameTensor) and other.tensor is self.tensor

    __hash__ = None


def base_lr(group, where):
    """The LR a schedule scales, kept as ``initial_lr`` (as torch's schedulers keep it), since
    ``group['lr']`` shows the scheduled value."""
    group.setdefault("initial_lr", group["lr"])
    return check_number("lr" + where, group["initial_lr"])

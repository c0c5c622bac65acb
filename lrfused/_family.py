"""A family (SGD, AdamW, ...) as data: what the shared machinery needs to know of it, declared once.

A family's class keeps only its torch-compatible argument list and checks; everything else the base
reads from its `Family`: the kernel's rule, the state tensors and the per-param count, the rule's
parameters in the C++ rule's order, and where its groups keep the momentum a schedule may cycle.
"""
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Callable, Optional

from lrfused._counts import COUNT_POLICIES


@dataclass(frozen=True)
class GroupValue:
    """A value read from a param group: group[key], or group[key][index] (e.g. betas[1])."""

    key: str
    index: Optional[int] = None

    def read(self, group):
        value = group[self.key]
        return value if self.index is None else value[self.index]

    @property
    def label(self):
        return f"group['{self.key}']" if self.index is None else f"group['{self.key}'][{self.index}]"


@dataclass(frozen=True)
class RuleParam:
    """One parameter of the kernel's rule: its name in the rule's config and the group value it is."""

    name: str
    value: GroupValue


@dataclass(frozen=True)
class Family:
    """One optimizer family. `state_keys(group)`: the state tensors the group's params keep, in
    kernel order (empty: none, and no count); `state_names`: every one the family may keep. `count`:
    its per-param count policy ("none", "first_write" or "per_param_step", see lrfused._counts) and
    `count_key` the count's state name. `rule_params`: the rule's parameters in the C++ rule's order.
    `momentum`: where its groups keep the momentum a schedule may cycle. `plain_name`: its class that
    takes an LR from outside (with schedule=Constant())."""

    name: str
    rule: int
    state_names: tuple
    state_keys: Callable[[dict], tuple]
    count: str
    count_key: Optional[str]
    rule_params: tuple
    momentum: GroupValue
    plain_name: str

    def __post_init__(self):
        if self.count not in COUNT_POLICIES:
            raise ValueError(f"family {self.name}: count must be one of {sorted(COUNT_POLICIES)}, got {self.count!r}")
        if (self.count == "none") != (self.count_key is None):
            raise ValueError(f"family {self.name}: count {self.count!r} with count_key {self.count_key!r}")

    @property
    def counts(self):
        """The count policy (lrfused._counts)."""
        return COUNT_POLICIES[self.count]

    def rule_values(self, group):
        """The group's rule parameters, in the C++ rule's order (also the kernel config's cache key)."""
        return tuple([param.value.read(group) for param in self.rule_params])

    @property
    def momentum_label(self):
        """Where a cycled momentum shows, as a warning names it."""
        if self.momentum.index is None:
            return self.momentum.label
        return f"{self.momentum.label} (beta{self.momentum.index + 1})"

    def schedule_view(self, group):
        """The group as a schedule reads and writes it: its 'momentum' is the family's momentum."""
        if self.momentum.index is None and self.momentum.key == "momentum":  # (asked several times a step)
            return group
        return MomentumAt(group, self.momentum)


class MomentumAt(MutableMapping):
    """A param group as a schedule reads and writes it: its 'momentum' is `slot` (e.g. betas[0], as
    torch's OneCycleLR and CyclicLR cycle beta1 for optimizers with betas); every other key is the
    group's."""

    __slots__ = ("group", "slot")

    def __init__(self, group, slot):
        self.group, self.slot = group, slot

    def __getitem__(self, key):
        return self.slot.read(self.group) if key == "momentum" else self.group[key]

    def __setitem__(self, key, value):
        if key != "momentum":
            self.group[key] = value
        elif self.slot.index is None:
            self.group[self.slot.key] = value
        else:
            values = list(self.group[self.slot.key])
            values[self.slot.index] = value
            self.group[self.slot.key] = tuple(values)

    def __delitem__(self, key):
        del self.group[key]

    def __iter__(self):
        return iter((*self.group, "momentum"))

    def __len__(self):
        return len(self.group) + 1

    def __contains__(self, key):
        return key == "momentum" or key in self.group

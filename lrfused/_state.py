"""Optimizer state that counts its own changes.

The fused optimizers hand the kernel a plan of every param's momentum buffer, built once instead of
at every step. Any change to `optimizer.state` (a buffer replaced, a param's state added or
removed, through any dict method) bumps a shared counter, and the next step rebuilds the plan; so
`opt.state[p]["momentum_buffer"] = t` means what it says, as with torch's optimizers.
"""
from collections import defaultdict


class ChangeCounter:
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


def _bump(obj):
    counter = getattr(obj, "_counter", None)  # absent while pickle/deepcopy rebuilds the dict
    if counter is not None:
        counter.value += 1


class _CountingMixin:
    """dict mutators that bump the counter; reads cost nothing extra."""

    __slots__ = ()

    def __setitem__(self, key, value):
        super().__setitem__(key, self._wrap(value))
        _bump(self)

    def __delitem__(self, key):
        super().__delitem__(key)
        _bump(self)

    def pop(self, *args):
        value = super().pop(*args)
        _bump(self)
        return value

    def popitem(self):
        item = super().popitem()
        _bump(self)
        return item

    def clear(self):
        super().clear()
        _bump(self)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other):
        self.update(other)
        return self

    def _wrap(self, value):
        return value


class ParamState(_CountingMixin, dict):
    """One param's state (momentum_buffer, ...)."""

    __slots__ = ("_counter",)

    def __init__(self, counter, items=()):
        self._counter = None
        super().__init__(items)
        self._counter = counter

    def __reduce__(self):  # pickle and deepcopy as a plain dict
        return (dict, (dict(self),))


class OptimizerState(_CountingMixin, defaultdict):
    """param -> ParamState, created on first access like torch's defaultdict(dict)."""

    __slots__ = ("_counter",)

    def __init__(self, counter, items=()):
        self._counter = None
        super().__init__(None)
        self._counter = counter
        for key, value in dict(items).items():
            self[key] = value

    def __missing__(self, key):
        self[key] = {}
        return dict.__getitem__(self, key)

    def _wrap(self, value):
        if isinstance(value, dict) and not isinstance(value, ParamState):
            return ParamState(self._counter, value)
        return value

    def __reduce__(self):  # pickle and deepcopy as torch's own defaultdict(dict)
        return (_plain_state, (dict(self),))


def _plain_state(items):
    state = defaultdict(dict)
    state.update({k: dict(v) for k, v in items.items()})
    return state

"""Argument checks shared by the optimizers. Each error names the argument and shows the value."""
import math
import numbers

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_number(name, value, *, minimum=0.0, strictly_above=False, maximum=None):
    """A real, finite number (not a bool) within [minimum, maximum] (or above minimum)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if strictly_above and value <= minimum:
        raise ValueError(f"{name} must be > {minimum}, got {value}")
    if not strictly_above and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_int(name, value, *, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def per_group_values(name, value, num_groups):
    """One value per param group from a scalar or a list/tuple (as OneCycleLR's max_lr)."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_groups:
            raise ValueError(f"expected {num_groups} values for {name} (one per param group), got {len(value)}")
        return list(value)
    return [value] * num_groups


def check_params(group_index, params, device):
    """Every param is a floating-point, dense tensor on `device` (the first param's if None).

    Returns the device, so that consecutive groups are checked against the same one.
    """
    for i, p in enumerate(params):
        where = f"param {i} of param group {group_index}"
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params: {where} must be a torch.Tensor, got {type(p).__name__}")
        if p.layout != torch.strided:
            raise ValueError(f"params: {where} must be a dense (strided) tensor, got layout {p.layout}")
        if p.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"params: {where} has dtype {p.dtype}; lrfused updates float32, float64, float16 and "
                "bfloat16 params only"
            )
        if not p.is_contiguous() and not _is_non_overlapping_and_dense(p):
            raise ValueError(
                f"params: {where} must be contiguous or a permutation of a contiguous tensor, got shape "
                f"{tuple(p.shape)} with strides {p.stride()}"
            )
        if device is None:
            device = p.device
        elif p.device != device:
            raise ValueError(
                f"params: all params must be on one device; {where} is on {p.device}, earlier ones on {device}"
            )
    return device


def _is_non_overlapping_and_dense(t):
    """Whether `t` covers a contiguous block of memory exactly once, in some order of its dims."""
    if t.numel() <= 1:
        return True
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True

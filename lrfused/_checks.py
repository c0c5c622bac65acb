"""Argument checks shared by the optimizers. Each error names the argument and shows the value."""
import math
import numbers

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128)


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


def check_lr(name, value):
    """A number as check_number takes it, or (as torch.optim.SGD takes it) a one-element tensor >= 0."""
    if not isinstance(value, torch.Tensor):
        return check_number(name, value)
    if value.numel() != 1:
        raise ValueError(f"{name}: Tensor lr must be 1-element, got shape {tuple(value.shape)}")
    if value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name}: a Tensor lr must be float32 or float64, got {value.dtype}")
    if not value >= 0:  # a host sync, once, when the group is made (as torch's check)
        raise ValueError(f"{name} must be >= 0.0, got {value.item()}")
    return value


def refuse_tensor_lr(name, value):
    """Where a schedule sets the LR, a tensor (torch's way to change the LR inside a CUDA graph) has no use."""
    if isinstance(value, torch.Tensor):
        raise ValueError(
            f"{name}: lr as a Tensor is not supported with a schedule, which sets the LR itself; give a float "
            "(only FusedSGD and FusedAdamW with schedule=Constant() read their lr from a tensor)"
        )


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
    """Every param is a floating-point or complex, dense tensor on `device` (the first param's if None).

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
                f"params: {where} has dtype {p.dtype}; lrfused updates float32, float64, float16, "
                "bfloat16, complex64 and complex128 params only"
            )
        if device is None:
            device = p.device
        elif p.device != device:
            raise ValueError(
                f"params: all params must be on one device; {where} is on {p.device}, earlier ones on {device}"
            )
    return device


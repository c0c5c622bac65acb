"""Param groups as the fused optimizers take them: the argument checks every family shares, group
dicts with their defaults, names split from (name, tensor) pairs, list arguments spread per group."""
import torch
from torch.optim.optimizer import required

from lrfused._checks import check_bool, check_lr, check_number, refuse_tensor_lr
from lrfused._schedule import Constant, Schedule


def as_param_groups(params):
    """`params` as a list of param-group dicts, as torch.optim.Optimizer reads it."""
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of Tensors or of dicts, got a single Tensor")
    groups = list(params)
    if not groups:
        raise ValueError("params is an empty list: give the optimizer at least one parameter")
    if not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    return [dict(g) if isinstance(g, dict) else g for g in groups]


def spread_per_group(groups, defaults, name, value, per_group_values):
    """Writes one value per group for an argument that may be a list (as OneCycleLR's max_lr).

    A list becomes each group's own value and makes the argument required for groups added later;
    a scalar stays a default. A value a group dict already has wins.
    """
    if isinstance(value, (list, tuple)):
        for group, v in zip(groups, per_group_values(name, value, len(groups))):
            group.setdefault(name, v)
        defaults[name] = required
    else:
        defaults[name] = value


def checked_schedule(schedule):
    """A family's `schedule` argument (None: Constant()), checked."""
    schedule = Constant() if schedule is None else schedule
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"schedule must be one of lrfused.schedules (OneCycle, Cyclic, Constant, ...), got {type(schedule).__name__}"
        )
    return schedule


def check_flags(hold_final_lr, master_weights, count_skipped_steps):
    """The keyword flags every family takes."""
    for name, value in (
        ("hold_final_lr", hold_final_lr),
        ("master_weights", master_weights),
        ("count_skipped_steps", count_skipped_steps),
    ):
        check_bool(name, value)


def check_lr_default(schedule, lr):
    """The default lr, before params are read: a tensor only where the schedule reads one."""
    if schedule.takes_tensor_lr:
        check_lr("lr", lr)
    else:
        refuse_tensor_lr("lr", lr)
        check_number("lr", lr)


def split_names(group, index):
    """Named params, as torch.optim.Optimizer takes them ((name, tensor) pairs, e.g. from
    model.named_parameters()): the tensors stay in 'params', the names go to 'param_names'."""
    named = [isinstance(p, tuple) for p in group["params"]]
    if not any(named):
        return
    if not all(named):
        raise ValueError(
            "all optimizer params should be with/without names. Some param names are missing: param group "
            f"{index} mixes (name, tensor) pairs and unnamed tensors"
        )
    for i, pair in enumerate(group["params"]):
        if len(pair) != 2:
            raise TypeError(
                f"params: param {i} of param group {index} must be a (name, tensor) pair, got {len(pair)} items"
            )
    group["param_names"] = [name for name, _ in group["params"]]
    group["params"] = [p for _, p in group["params"]]

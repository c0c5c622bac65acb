"""lrfused::fused_step_, the fused step as a torch.library op, so that torch.compile puts it in its graph
(mutations declared) instead of breaking the graph at the pybind11 call."""
from typing import Optional

import torch

from lrfused._ext import _C


@torch.library.custom_op(
    "lrfused::fused_step_",
    mutates_args=("params", "states", "counts", "master_params", "step"),
)
def fused_step_(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[torch.Tensor],
    state_index: list[int],
    counts: list[torch.Tensor],
    count_index: list[int],
    master_params: list[torch.Tensor],
    master_index: list[int],
    group_of: list[int],
    configs: list[float],
    tables: list[torch.Tensor],
    table_index: list[int],
    step: torch.Tensor,
    grad_scale: Optional[torch.Tensor],
    found_inf: Optional[torch.Tensor],
    count_skipped_steps: bool,
) -> None:
    """One fused step (each group's update rule). Optional per-param tensors come as dense lists plus
    indexes (-1: none): `state_index` has `_C.MAX_STATE_TENSORS` entries per param, `count_index` and
    `master_index` one; `configs` is every group's `_C.config_to_vector`, one after the other."""
    _C.fused_step(
        params,
        grads,
        states,
        state_index,
        counts,
        count_index,
        master_params,
        master_index,
        group_of,
        configs,
        tables,
        table_index,
        step,
        grad_scale,
        found_inf,
        count_skipped_steps,
    )


@fused_step_.register_fake
def _(*args, **kwargs):
    return None  # in place: no outputs to describe

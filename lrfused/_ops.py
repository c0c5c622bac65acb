"""lrfused::sgd_step_, the fused step as a torch.library op, so that torch.compile puts it in its graph
(mutations declared) instead of breaking the graph at the pybind11 call."""
from typing import Optional

import torch

from lrfused._ext import _C


@torch.library.custom_op(
    "lrfused::sgd_step_",
    mutates_args=("params", "momentum_buffers", "momentum_first_steps", "master_params", "step"),
)
def sgd_step_(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor],
    buffer_index: list[int],
    momentum_first_steps: list[torch.Tensor],
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
    """One fused step. Optional per-param tensors come as dense lists plus an index per param (-1:
    none); `configs` is every group's `_C.config_to_vector`, one after the other."""
    _C.fused_sgd_step(
        params,
        grads,
        momentum_buffers,
        buffer_index,
        momentum_first_steps,
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


@sgd_step_.register_fake
def _(*args, **kwargs):
    return None  # in place: no outputs to describe

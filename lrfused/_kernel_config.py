"""Each param group as the kernel gets it: its `_C.GroupConfig` (schedule, rule, common fields, the
family's rule parameters) and its table or tensor lr, cached until a group value it is made of changes."""
from typing import NamedTuple, Optional

import torch

from lrfused import _graphs
from lrfused._ext import _C


class KernelGroup(NamedTuple):
    """One param group as the kernel gets it, cached until the group's values change."""

    inputs: tuple
    config: object  # _C.GroupConfig
    table: Optional[torch.Tensor]  # a table schedule's rows on the device, else None
    rows: Optional[list]  # the same rows on the host (for group['lr']), else None
    vector: list  # the config as lrfused::fused_step_ takes it
    lr: Optional[torch.Tensor]  # the group's tensor lr (Constant schedule), read by the kernel, else None

    def step_tensor(self, device):
        """The tensor the kernel reads for this group: its table, or its tensor lr (copied to the
        params' device at every step if it lives elsewhere, so that changes to it still count)."""
        if self.lr is None:
            return self.table
        return self.lr if self.lr.device == device else self.lr.to(device, non_blocking=True)


def write_rule_params(config, values):
    """The one place a family's rule parameters enter its kernel config: in the C++ rule's order
    (its header names the indices), booleans as 0 / 1."""
    config.rule_params = [float(value) for value in values]


class KernelConfigs:
    """The optimizer's per-group kernel configs (`self._configs`: group index -> KernelGroup)."""

    def _kernel_inputs(self, group):
        """Every group value the kernel's config of the group is made from (its cache key)."""
        return (
            self.schedule.inputs(self.family.schedule_view(group)),
            group["cycle_momentum"],
            group["weight_decay"],
            group["maximize"],
            self.family.rule_values(group),
        )

    def _group_config(self, index, group):
        """The group as the kernel gets it (a KernelGroup), cached."""
        inputs = self._kernel_inputs(group)
        cached = self._configs.get(index)
        if cached is not None and cached.inputs == inputs and (cached.table is None or cached.table.device == self._step.device):
            return cached
        view = self.family.schedule_view(group)
        config = _C.GroupConfig()
        config.schedule = self.schedule.build(view)
        config.rule = self.family.rule
        config.weight_decay = group["weight_decay"]
        config.maximize = group["maximize"]
        write_rule_params(config, inputs[-1])
        rows = self.schedule.table(view)
        if rows is not None and _graphs.capturing(self._step.device):
            # (torch.tensor copies from pageable host memory, which a capture forbids)
            raise RuntimeError(
                f"step() is being captured in a CUDA graph while group {index}'s {type(self.schedule).__name__} "
                "table must be copied to the GPU (its kernel config was dropped by load_state_dict or rebuilt "
                "for a changed group setting): take one eager step() after loading or editing the groups, "
                "then capture"
            )
        table = None if rows is None else torch.tensor(rows, dtype=torch.float64, device=self._step.device)
        lr = group["lr"] if self.schedule.takes_tensor_lr and isinstance(group["lr"], torch.Tensor) else None
        self._configs[index] = cached = KernelGroup(inputs, config, table, rows, _C.config_to_vector(config), lr)
        return cached

    @torch.compiler.disable
    def _refresh_group_configs(self):
        for index, group in enumerate(self.param_groups):
            self._group_config(index, group)

"""FusedOptimizer: what every fused optimizer family shares. The LR (and a momentum or beta1) come from
a schedule that the kernel evaluates from a step counter kept on the params' device; the whole step
of every param is one kernel call on a plan of tensors built once. A family (FusedSGD, FusedAdamW)
declares itself as data (`family`, an lrfused._family.Family) and adds its torch-compatible
arguments and their checks.

This module is the torch.optim.Optimizer API; the concerns it is made of live beside it: the step plan
(_plan), the kernel configs (_kernel_config), the counter and what the groups show (_shown), the
state (_param_state) and the state dict (_state_dict).
"""
import torch
from torch.optim.optimizer import Optimizer, required

from lrfused import _graphs
from lrfused._checks import check_bool, check_params, per_group_values, refuse_tensor_lr
from lrfused._kernel_config import KernelConfigs
from lrfused._ops import fused_step_
from lrfused._param_groups import as_param_groups, split_names, spread_per_group
from lrfused._param_state import ParamStates
from lrfused._plan import EagerPlan, compiled_args
from lrfused._shown import ScheduleShown
from lrfused._state_dict import Checkpoints


class FusedOptimizer(ScheduleShown, Checkpoints, ParamStates, KernelConfigs, Optimizer):
    """Base of the fused optimizer families: the schedule, the step counter on the device, the step
    plan, the state bookkeeping, torch.compile, CUDA graphs and GradScaler, written once.

    A family sets ``family`` (its lrfused._family.Family) and defines ``_check_family_group``, the
    checks of its hyperparameters in a group.
    """

    _step_supports_amp_scaling = True  # torch.amp.GradScaler hands us grad_scale and found_inf
    family = None

    def __init__(self, params, defaults, *, schedule, count_skipped_steps):
        """`defaults`: the family's group defaults with hold_final_lr and master_weights, all checked
        (`checked_schedule`, `check_flags`, the family's own) before the params are read."""
        groups = as_param_groups(params)
        for name, value in schedule.settings().items():
            spread_per_group(groups, defaults, name, value, per_group_values)
        self.schedule = schedule
        self.count_skipped_steps = count_skipped_steps
        self._device = None
        self._configs = {}  # group index -> KernelGroup
        # Whether a CUDA graph captured a step, and the table schedules' device tables that captured
        # steps read: a graph holds their addresses, so they live as long as the optimizer.
        self._captured, self._graph_tables = False, []
        # Of a schedule-driven group (not Constant), by group index: the schedule's keys when it last
        # showed its values (what the next step uses), and the lr (and cycled momentum) it showed.
        self._schedule_keys, self._shown_values = {}, {}
        self._warned_outside_write = False
        super().__init__(groups, defaults)
        # The kernel's step counter (public as step_counter), and a host copy of it (see _shown).
        self._step = torch.zeros((), dtype=torch.int64, device=self._device)
        self._host_count = [0]
        self._track_state()
        self._show_schedule_values()

    # --- torch.optim.Optimizer ------------------------------------------------------------------

    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, torch.Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("params must be an ordered collection (a list), not a set")
        elif params is None:
            raise ValueError("param_group must have a 'params' entry")
        group["params"] = list(params)
        split_names(group, len(self.param_groups))
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"param group {len(self.param_groups)} must give a value for {name}")
            group.setdefault(name, default)
        index = len(self.param_groups)
        device = check_params(index, group["params"], self._device)
        self._complete_group(group, index)
        super().add_param_group(group)
        self._device = device
        if hasattr(self, "_step"):
            self._show_schedule_values()

    @torch.no_grad()
    def step(self, closure=None):
        """One fused step over every param with a grad, at this step's scheduled LR (and momentum)."""
        loss = None
        if closure is not None:
            if not callable(closure):
                raise TypeError(f"closure must be callable (returning the loss), got {type(closure).__name__}")
            with torch.enable_grad():
                loss = closure()
        # Set by torch.amp.GradScaler.step() for optimizers with _step_supports_amp_scaling.
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        if torch.compiler.is_compiling():
            if any(p.is_complex() for group in self.param_groups for p in group["params"]):
                self._step_outside_graph(grad_scale, found_inf)
            else:
                self._compiled_step(grad_scale, found_inf)
            return loss
        self._eager_step(grad_scale, found_inf)
        return loss

    def __getstate__(self):  # pickling and copy.deepcopy: torch's keeps only defaults, state, groups
        state = super().__getstate__()
        state.update(
            _step=self._step,
            _host_count=list(self._host_count),
            _device=self._device,
            schedule=self.schedule,
            count_skipped_steps=self.count_skipped_steps,
        )
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._configs = {}  # compiled per-group configs are rebuilt on demand
        self._captured, self._graph_tables = False, []  # the graphs belong to the original
        self._schedule_keys, self._shown_values = {}, {}
        self._warned_outside_write = False
        self._track_state()

    # --- the step -------------------------------------------------------------------------------

    @torch.compiler.disable
    def _step_outside_graph(self, grad_scale, found_inf):
        """A compiled step with complex params runs eagerly (a graph break): inductor cannot take the
        op's writes through their torch.view_as_real views."""
        self._eager_step(grad_scale, found_inf)

    def _eager_step(self, grad_scale, found_inf):
        self._check_can_step()
        created = []
        if self._plan is None or not self._plan.still_fits(self):
            self._plan = EagerPlan(self, created)
        plan = self._plan
        if plan.first_param is not None and plan.first_param.device != self._step.device:
            # The model moved after construction; before the configs, whose tables follow the counter.
            self._step = self._step.to(plan.first_param.device)
            self._device = plan.first_param.device  # where params added later must be
        try:
            scheduled = [self._as_scheduled(i, g) for i, g in enumerate(self.param_groups)]
            kernel_groups = [self._group_config(i, g) for i, g in enumerate(scheduled)]
            plan.kernel.step(
                [g.config for g in kernel_groups],
                [g.step_tensor(self._step.device) for g in kernel_groups],
                self._step,
                grad_scale,
                found_inf,
                self.count_skipped_steps,
                plan.grads(),
            )
        except Exception:
            self._forget_state(created)
            raise
        if _graphs.capturing(self._step.device):
            self._note_capture(kernel_groups)
        else:
            self._count_host_step(found_inf)
        edited = any(s is not g for s, g in zip(scheduled, self.param_groups))
        self._show_schedule_values(None if edited else kernel_groups)

    def _compiled_step(self, grad_scale, found_inf):
        """The step as torch.compile traces it: the lrfused::fused_step_ op on the plan's layout as
        lists (the cached plan is a pybind11 object dynamo cannot trace). Nothing here depends on the
        step count, so a compiled step is not recompiled per step: the host count becomes unknown,
        and group['lr'] is refreshed when get_last_lr() or schedule_step reads the device counter."""
        for index, group in enumerate(self.param_groups):
            cached = self._configs.get(index)
            if cached is None or cached.inputs != self._kernel_inputs(group):
                self._refresh_group_configs()  # outside the graph (a rare graph break)
        per_param = compiled_args(self)
        kernel_groups = [self._configs[index] for index in range(len(self.param_groups))]
        tables, table_index = [], []  # each group's table (or tensor lr) by its place among those given
        for g in kernel_groups:
            table = g.step_tensor(self._step.device)
            table_index.append(-1 if table is None else len(tables))
            if table is not None:
                tables.append(table)
        configs = [value for g in kernel_groups for value in g.vector]
        fused_step_(*per_param, configs, tables, table_index, self._step, grad_scale, found_inf, self.count_skipped_steps)
        self._host_count[0] = None

    # --- param groups ---------------------------------------------------------------------------

    def _complete_group(self, group, index):
        where = f" (param group {index})"
        if not self.schedule.takes_tensor_lr:
            for name in ("lr", *self.schedule.settings()):
                if name == "lr" or name.endswith("_lr"):
                    refuse_tensor_lr(name + where, group[name])
        check_bool("hold_final_lr" + where, group["hold_final_lr"])
        check_bool("master_weights" + where, group["master_weights"])
        self._check_family_group(group, where, before_schedule=True)
        momenta = self.schedule.complete_group(self.family.schedule_view(group), where)
        self._check_family_group(group, where, momenta=momenta)

    def _check_family_group(self, group, where, *, before_schedule=False, momenta=()):
        """Checks the family's hyperparameters in `group` (raising before anything changes): those the
        schedule does not read first (`before_schedule`), then the rest, knowing the momentum values
        the schedule can use."""
        raise NotImplementedError

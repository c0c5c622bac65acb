"""FusedOptimizer: what every fused optimizer family shares. The LR (and a momentum or beta1) come from
a schedule that the kernel evaluates from a step counter kept on the params' device; the whole step
of every param is one kernel call on a plan of tensors built once. A family (FusedSGD, FusedAdamW)
adds its torch-compatible arguments, its update rule (the kernel's) and its state layout.
"""
import operator
import warnings
from typing import NamedTuple, Optional

import torch
from torch.optim.optimizer import Optimizer, required

from lrfused._checks import check_bool, check_lr, check_number, check_params, per_group_values, refuse_tensor_lr
from lrfused._ext import _C
from lrfused._ops import fused_step_
from lrfused._schedule import Constant, Schedule
from lrfused._state import ChangeCounter, OptimizerState

MASTER_PARAM = "master_param"  # per-param state: float32 copy of a float16 / bfloat16 param (master_weights=True)
LOW_PRECISION = (torch.float16, torch.bfloat16)
# Top-level state_dict key of the schedule's step counter.
SCHEDULE_STEP = "schedule_step"


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


def _capturing(device):
    """Whether `device`'s current stream is capturing a CUDA graph (a step then runs at each replay,
    not now). Asked of the params' device, which need not be the current one."""
    if device.type != "cuda":
        return False
    with torch.cuda.device(device):
        return torch.cuda.is_current_stream_capturing()


def _refuse_state_creation_in_capture(param):
    """State made inside a CUDA graph capture would be re-zeroed on every replay."""
    if _capturing(param.device):
        raise RuntimeError(
            "step() is being captured in a CUDA graph before the optimizer's state exists: "
            "take at least one eager step (with every param that will have a grad) before capturing"
        )


def _checked_schedule_step(step):
    """A saved schedule step as an int >= 0 (or None when the state has none)."""
    if step is None:
        return None
    if isinstance(step, torch.Tensor):
        if step.numel() != 1 or step.is_floating_point() or step.is_complex():
            raise TypeError(f"state_dict['{SCHEDULE_STEP}'] must be one integer, got a {step.dtype} tensor of shape {tuple(step.shape)}")
        step = int(step.item())
    elif isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"state_dict['{SCHEDULE_STEP}'] must be an int, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"state_dict['{SCHEDULE_STEP}'] must be >= 0, got {step}")
    return step


def _has_state(state, keys, keeps_master):
    return (
        state is not None
        and all(state.get(key) is not None for key in keys)
        and (not keeps_master or state.get(MASTER_PARAM) is not None)
    )


class _KernelGroup(NamedTuple):
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


def _kernel_view(tensor):
    """What the kernel updates for a param (or reads for its grad, state, master copy): a DTensor's
    local shard; a complex tensor as torch.view_as_real of it (for the families whose update is the
    same on the real view); else the tensor itself."""
    tensor = getattr(tensor, "_local_tensor", tensor)
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


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


def _split_names(group, index):
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


class FusedOptimizer(Optimizer):
    """Base of the fused optimizer families: the schedule, the step counter on the device, the step
    plan, the state bookkeeping, torch.compile, CUDA graphs and GradScaler, written once.

    A family sets ``_rule`` (the kernel's update rule) and ``_count_key`` (its per-param count's state
    name) and defines its group checks, its kernel config, its state layout (``_state_keys``,
    ``_new_count``, ``_complete_family_state``, ``_restore_loaded_state``, ``_check_loaded_count``) and
    where its groups keep the momentum a schedule may cycle (``_schedule_group``).
    """

    _step_supports_amp_scaling = True  # torch.amp.GradScaler hands us grad_scale and found_inf
    _rule = None
    _count_key = None

    def __init__(self, params, defaults, *, schedule, count_skipped_steps):
        """`defaults`: the family's group defaults with hold_final_lr and master_weights, all checked
        (`checked_schedule`, `check_flags`, the family's own) before the params are read."""
        groups = as_param_groups(params)
        for name, value in schedule.settings().items():
            spread_per_group(groups, defaults, name, value, per_group_values)
        self.schedule = schedule
        self.count_skipped_steps = count_skipped_steps
        self._device = None
        self._configs = {}  # group index -> _KernelGroup
        # Whether a CUDA graph captured a step, and the table schedules' device tables that captured
        # steps read: a graph holds their addresses, so they live as long as the optimizer.
        self._captured, self._graph_tables = False, []
        # Of a schedule-driven group (not Constant), by group index: the schedule's keys when it last
        # showed its values (what the next step uses), and the lr (and cycled momentum) it showed.
        self._schedule_keys, self._shown_values = {}, {}
        self._warned_outside_write = False
        super().__init__(groups, defaults)
        # The kernel's step counter, and a host copy of it so that step() never reads the device
        # (None while unknown: after a GradScaler step on CUDA that may not have counted, or a
        # compiled step). The copy sits in a list: torch.compile drops attribute assignments on
        # optimizers, not list writes.
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
        _split_names(group, len(self.param_groups))
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

    @torch.compiler.disable
    def _step_outside_graph(self, grad_scale, found_inf):
        """A compiled step with complex params runs eagerly (a graph break): inductor cannot take the
        op's writes through their torch.view_as_real views."""
        self._eager_step(grad_scale, found_inf)

    def _eager_step(self, grad_scale, found_inf):
        self._check_can_step()
        created = self._refresh_plan()
        if self._plan_first_param is not None and self._plan_first_param.device != self._step.device:
            # The model moved after construction; before the configs, whose tables follow the counter.
            self._step = self._step.to(self._plan_first_param.device)
            self._device = self._plan_first_param.device  # where params added later must be
        try:
            scheduled = [self._as_scheduled(i, g) for i, g in enumerate(self.param_groups)]
            kernel_groups = [self._group_config(i, g) for i, g in enumerate(scheduled)]
            grads = None
            if self._plan_views_grads:
                grads = [None if p.grad is None else _kernel_view(p.grad) for p in self._plan_params]
            self._plan.step(
                [g.config for g in kernel_groups],
                [g.step_tensor(self._step.device) for g in kernel_groups],
                self._step,
                grad_scale,
                found_inf,
                self.count_skipped_steps,
                grads,
            )
        except Exception:
            self._forget_state(created)
            raise
        if _capturing(self._step.device):
            self._note_capture(kernel_groups)
        else:
            self._count_host_step(found_inf)
        edited = any(s is not g for s, g in zip(scheduled, self.param_groups))
        self._show_schedule_values(None if edited else kernel_groups)

    def get_last_lr(self):
        """The LR of each group for the next step, as torch's schedulers' get_last_lr()."""
        if self._host_step is None or self._captured:
            self._show_schedule_values(sync=True)
        return [group["lr"] for group in self.param_groups]

    @property
    def schedule_step(self):
        """How many steps this optimizer's schedule has taken."""
        if self._host_step is None or self._captured:
            self._show_schedule_values(sync=True)
        return self._host_step

    @property
    def step_counter(self):
        """The int64 one-element tensor on the params' device that the kernel reads and advances. Read-only."""
        return self._step

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

    def state_dict(self):
        state = super().state_dict()
        # Plain dicts, as torch's, so that torch.load(weights_only=True) reads the checkpoint; values that
        # are not a param's state (e.g. opt.state["epoch"] = 3) pass through, as in torch.
        state["state"] = {
            key: dict(value) if isinstance(value, dict) else value for key, value in state["state"].items()
        }
        state[SCHEDULE_STEP] = self._step
        return state

    def load_state_dict(self, state_dict):
        """Loads a state saved by this class, or by the torch optimizer of the family (its state).

        A state without a schedule step (torch's) keeps this optimizer's schedule position. A lower
        schedule step restarts the schedule and keeps the state. The step counter is written in place,
        but torch's loader replaces the state tensors and master copies, which a CUDA graph captured
        before the load still points at: capture the graph again after a load.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        for key, kind in (("state", dict), ("param_groups", list)):
            if key not in state_dict:
                raise ValueError(f"state_dict has no '{key}' entry: it is not an optimizer's state dict")
            if not isinstance(state_dict[key], kind):
                raise TypeError(f"state_dict['{key}'] must be a {kind.__name__}, got {type(state_dict[key]).__name__}")
        step = _checked_schedule_step(state_dict.get(SCHEDULE_STEP))
        self._check_loaded_states(state_dict)
        if self._captured:
            warnings.warn(
                "load_state_dict after a CUDA graph captured this optimizer's step: the graph still points "
                "at the old state tensors; capture it again before replaying it",
                stacklevel=2,
            )
        groups_before = self.param_groups
        super().load_state_dict(state_dict)
        for before, loaded in zip(groups_before, self.param_groups):
            for name, value in before.items():  # keys a foreign state lacks keep their values
                loaded.setdefault(name, value)
        if step is not None:
            self._step.fill_(step)  # in place: a captured graph holds the counter's address
            self._host_step = step
        self._restore_state_dtypes(state_dict)
        self._configs.clear()
        self._show_schedule_values()

    # --- internals ------------------------------------------------------------------------------

    def _complete_group(self, group, index):
        where = f" (param group {index})"
        if not self.schedule.takes_tensor_lr:
            for name in ("lr", *self.schedule.settings()):
                if name == "lr" or name.endswith("_lr"):
                    refuse_tensor_lr(name + where, group[name])
        check_bool("hold_final_lr" + where, group["hold_final_lr"])
        check_bool("master_weights" + where, group["master_weights"])
        self._check_family_group(group, where, before_schedule=True)
        momenta = self.schedule.complete_group(self._schedule_group(group), where)
        self._check_family_group(group, where, momenta=momenta)

    def _check_can_step(self):
        """Past the end of a schedule of fixed length: OneCycleLR's ValueError, unless held."""
        if self._host_step is None:
            return  # unknown without a sync; the kernel holds the final values
        for group in self.param_groups:
            total = self.schedule.total_steps(group)
            if total is not None and self._host_step >= total and not group["hold_final_lr"]:
                raise ValueError(
                    f"Tried to step {self._host_step + 1} times. The specified number of total steps is "
                    f"{total}. Give {self.schedule.longer}, or pass hold_final_lr=True to keep training "
                    "at the final LR."
                )

    def _compiled_step(self, grad_scale, found_inf):
        """The step as torch.compile traces it: the lrfused::fused_step_ op on lists built here (the
        cached plan is a pybind11 object dynamo cannot trace). Nothing here depends on the step
        count, so a compiled step is not recompiled per step: the host count becomes unknown, and
        group['lr'] is refreshed when get_last_lr() or schedule_step reads the device counter."""
        self._prepare_compiled_step()
        params, grads, states, state_index, counts, count_index, masters, master_index, group_of = (
            [] for _ in range(9)
        )
        for index, group in enumerate(self.param_groups):
            keys = self._state_keys(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p, {})
                params.append(_kernel_view(p))
                grads.append(_kernel_view(p.grad))
                group_of.append(index)
                for key in keys:
                    state_index.append(len(states))
                    states.append(_kernel_view(state[key]))
                state_index.extend([-1] * (_C.MAX_STATE_TENSORS - len(keys)))
                count = state.get(self._count_key) if keys else None
                count_index.append(-1 if count is None else len(counts))
                if count is not None:
                    counts.append(count)
                master = state.get(MASTER_PARAM) if group["master_weights"] else None
                master_index.append(len(masters) if master is not None else -1)
                if master is not None:
                    masters.append(_kernel_view(master))
        kernel_groups = [self._configs[index] for index in range(len(self.param_groups))]
        tables, table_index = [], []  # each group's table (or tensor lr) by its place among those given
        for g in kernel_groups:
            table = g.step_tensor(self._step.device)
            table_index.append(-1 if table is None else len(tables))
            if table is not None:
                tables.append(table)
        configs = [value for g in kernel_groups for value in g.vector]
        fused_step_(
            params, grads, states, state_index, counts, count_index, masters, master_index, group_of, configs,
            tables, table_index, self._step, grad_scale, found_inf, self.count_skipped_steps,
        )
        self._host_count[0] = None

    def _prepare_compiled_step(self):
        """Makes missing state in traceable Python (as torch's optimizers do under torch.compile);
        a group whose values changed gets its kernel config outside the graph (a rare graph break)."""
        for index, group in enumerate(self.param_groups):
            cached = self._configs.get(index)
            if cached is None or cached.inputs != self._kernel_inputs(group):
                self._refresh_group_configs()
            keys = self._state_keys(group)
            for p in group["params"]:
                keeps_master = group["master_weights"] and p.dtype in LOW_PRECISION
                if p.grad is None or not (keys or keeps_master):
                    continue
                self._complete_state(p, keys, keeps_master)

    @torch.compiler.disable
    def _refresh_group_configs(self):
        for index, group in enumerate(self.param_groups):
            self._group_config(index, group)

    @property
    def _host_step(self):
        return self._host_count[0]

    @_host_step.setter
    def _host_step(self, value):
        self._host_count[0] = value

    def _note_capture(self, kernel_groups):
        """A captured step runs at each replay, not now: the host count becomes unknown (read from
        the device when asked), and the tables the graph reads are kept. From now on replays may
        advance the counter behind the host's back: schedule_step and get_last_lr() read the device
        every time, and the host count read last is a lower bound (the end-of-schedule check may
        then raise late, never early)."""
        self._host_step = None
        self._captured = True
        self._graph_tables.extend(g.table for g in kernel_groups if g.table is not None)

    def _count_host_step(self, found_inf):
        """Advances the host's copy of the counter as the kernel advanced the device's."""
        if self._host_step is None:
            return
        if found_inf is None or self.count_skipped_steps:
            self._host_step += 1
        elif found_inf.device.type == "cpu":
            self._host_step += int(found_inf.item() == 0)  # free on the CPU
        else:
            self._host_step = None  # known on the device only; read when asked for

    def _track_state(self):
        """Makes self.state count its changes, and drops the step plan."""
        if not hasattr(self, "_state_changes"):
            self._state_changes = ChangeCounter()
        if not isinstance(self.state, OptimizerState):
            self.state = OptimizerState(self._state_changes, self.state)
        self._plan = None
        self._plan_key = None

    def _plan_key_now(self):
        """What the step plan depends on besides the params: the state and which groups keep which state."""
        return (
            id(self.state),
            self._state_changes.value,
            tuple((self._state_keys(group), group["master_weights"]) for group in self.param_groups),
        )

    def _plan_params_unchanged(self):
        """Whether every group still holds the plan's params, in order (no allocation per param: a
        step over thousands of tensors must not feed the garbage collector)."""
        groups = self.param_groups
        return len(groups) == len(self._plan_groups) and all(
            len(group["params"]) == len(planned) and all(map(operator.is_, group["params"], planned))
            for group, planned in zip(groups, self._plan_groups)
        )

    def _refresh_plan(self):
        """Rebuilds the step plan if anything it depends on changed, or a param without its state
        has its first grad. Returns the params whose state this created."""
        if (
            self._plan is not None
            and self._plan_key == self._plan_key_now()
            and self._plan_params_unchanged()
            and all(p.grad is None for p in self._stateless)
        ):
            return []
        params, states, counts, masters, group_of, created, stateless = [], [], [], [], [], [], []
        for index, group in enumerate(self.param_groups):
            keys = self._state_keys(group)
            for p in group["params"]:
                keeps_master = group["master_weights"] and p.dtype in LOW_PRECISION
                if (keys or keeps_master) and not _has_state(self.state.get(p), keys, keeps_master):
                    if p.grad is None:
                        stateless.append(p)  # no state until its first grad, as in torch
                        continue
                    _refuse_state_creation_in_capture(p)
                    if self.state.get(p) is None:
                        created.append(p)
                state = self._complete_state(p, keys, keeps_master)
                params.append(p)
                states.append([_kernel_view(state[key]) for key in keys])
                counts.append(state[self._count_key] if keys else None)
                masters.append(_kernel_view(state[MASTER_PARAM]) if keeps_master else None)
                group_of.append(index)
        views = [_kernel_view(p) for p in params]
        self._plan = _C.StepPlan(views, states, counts, masters, group_of)
        self._plan_params = params
        self._plan_views_grads = any(view is not p for view, p in zip(views, params))  # grads read by the plan otherwise
        self._plan_first_param = views[0] if params else None
        self._stateless = stateless
        self._plan_key = self._plan_key_now()
        self._plan_groups = [list(group["params"]) for group in self.param_groups]
        return created

    def _complete_state(self, p, keys, keeps_master):
        """p's state with what this step needs added (the eager and the compiled step share it): a
        float32 master copy, the family's state tensors (zeros; float32 beside a master copy) and
        count, made if missing, then the family's own fixes. Returns the state (empty if none is kept)."""
        if not (keys or keeps_master):
            return {}
        state = self.state.get(p)
        if not _has_state(state, keys, keeps_master):
            state = dict(state or {})
            if keeps_master and state.get(MASTER_PARAM) is None:
                state[MASTER_PARAM] = p.detach().to(torch.float32, memory_format=torch.preserve_format)
            like = state[MASTER_PARAM] if keeps_master else p
            if keys and state.get(keys[0]) is None:
                # A new first state tensor (SGD's buffer, AdamW's exp_avg) starts a new count, also
                # where the old one was dropped by hand (torch: state[p]["momentum_buffer"] = None).
                state[self._count_key] = self._new_count(p)
            for key in keys:
                if state.get(key) is None:
                    state[key] = torch.zeros_like(like, memory_format=torch.preserve_format)
            self.state[p] = state
        if keys:
            self._complete_family_state(p, self.state[p], keeps_master)
        return self.state[p]

    def _forget_state(self, params):
        for p in params:
            self.state.pop(p, None)
        self._plan = None

    def _group_config(self, index, group):
        """The group as the kernel gets it (a _KernelGroup), cached."""
        inputs = self._kernel_inputs(group)
        cached = self._configs.get(index)
        if cached is not None and cached.inputs == inputs and (cached.table is None or cached.table.device == self._step.device):
            return cached
        config = _C.GroupConfig()
        config.schedule = self.schedule.build(self._schedule_group(group))
        config.rule = self._rule
        config.weight_decay = group["weight_decay"]
        config.maximize = group["maximize"]
        self._fill_config(config, group)
        rows = self.schedule.table(self._schedule_group(group))
        if rows is not None and _capturing(self._step.device):
            # (torch.tensor copies from pageable host memory, which a capture forbids)
            raise RuntimeError(
                f"step() is being captured in a CUDA graph while group {index}'s {type(self.schedule).__name__} "
                "table must be copied to the GPU (its kernel config was dropped by load_state_dict or rebuilt "
                "for a changed group setting): take one eager step() after loading or editing the groups, "
                "then capture"
            )
        table = None if rows is None else torch.tensor(rows, dtype=torch.float64, device=self._step.device)
        lr = group["lr"] if self.schedule.takes_tensor_lr and isinstance(group["lr"], torch.Tensor) else None
        self._configs[index] = cached = _KernelGroup(inputs, config, table, rows, _C.config_to_vector(config), lr)
        return cached

    def _kernel_inputs(self, group):
        """Every group value the kernel's config of the group is made from (its cache key)."""
        return (
            self.schedule.inputs(self._schedule_group(group)),
            group["cycle_momentum"],
            group["weight_decay"],
            group["maximize"],
            self._family_inputs(group),
        )

    def _as_scheduled(self, index, group):
        """The group as this step's schedule reads it. A torch scheduler reads its keys (max_lr, ...)
        when it steps, after the optimizer: an edit shows in group['lr'] after the next step and
        trains from the one after. So the schedule's keys are those of the last step (or of
        construction); the family's keys (weight_decay, ...) are the group's own, as torch's
        optimizers read them."""
        shown = self._shown_values.get(index)
        if shown is not None and not self._warned_outside_write:
            self._check_no_outside_write(index, group, shown)
        scheduled = self._schedule_keys.get(index)
        if scheduled is None or all(group.get(key) == value for key, value in scheduled.items()):
            return group
        return {**group, **scheduled}

    def _check_no_outside_write(self, index, group, shown):
        """Warns once if group['lr'] (or a cycled momentum) is not what the schedule showed: a torch
        scheduler's or a user's write that the kernel, which computes its own, would silently ignore."""
        view = self._schedule_group(group)
        for key, value in shown.items():
            if view[key] != value:
                self._warned_outside_write = True
                where = f"group['{key}']" if key == "lr" else self._momentum_label
                warnings.warn(
                    f"param group {index}: {where} was set to {view[key]!r} from outside (a torch LR "
                    f"scheduler?), but {type(self).__name__}'s schedule ({type(self.schedule).__name__}) computes "
                    f"the {key} of every step in the kernel and ignores it. To drive the {key} from a torch "
                    f"scheduler or by hand, use lrfused.{self._plain_name}(params, lr=..., schedule=Constant()); to "
                    "change this schedule, change its keys (max_lr, ...) in the group.",
                    stacklevel=3,
                )
                return

    def _show_schedule_values(self, kernel_groups=None, sync=False):
        """Writes the next step's LR (and momentum, if cycled) into each group, as torch's schedulers
        do, and remembers the schedule's keys the next step uses (not when only reading: `sync`).
        `kernel_groups`: the groups' configs when the caller has them already."""
        if sync:
            self._host_step = int(self._step.item())
        elif not isinstance(self.schedule, Constant):
            keys = self.schedule.group_keys
            for index, group in enumerate(self.param_groups):
                self._schedule_keys[index] = {key: group[key] for key in keys if key in group}
        if self._host_step is None:
            return
        if kernel_groups is None:
            kernel_groups = [self._group_config(i, g) for i, g in enumerate(self.param_groups)]
        for index, (group, kernel_group) in enumerate(zip(self.param_groups, kernel_groups)):
            if kernel_group.lr is not None:
                continue  # a tensor lr is the group's own (Constant schedule): nothing to show
            step = self._host_step
            total = self.schedule.total_steps(group)
            if total is not None and group["hold_final_lr"]:
                step = min(step, total - 1)
            if kernel_group.rows is not None:
                lr, momentum = self.schedule.shown_row(kernel_group.rows, step, self._schedule_group(group))
            else:
                lr, momentum = _C.schedule_value(kernel_group.config.schedule, step)
            group["lr"] = lr
            if group["cycle_momentum"]:
                self._schedule_group(group)["momentum"] = momentum
            if not isinstance(self.schedule, Constant):
                self._shown_values[index] = {"lr": lr, "momentum": momentum} if group["cycle_momentum"] else {"lr": lr}

    def _restore_state_dtypes(self, state_dict):
        """torch's loader casts every state tensor to its param's dtype: the family's count
        (`_restore_loaded_state`) and a master copy with its float32 state are taken again from the
        given state."""
        params = [p for group in self.param_groups for p in group["params"]]
        loaded = state_dict["state"]
        counter = self._host_step if self._host_step is not None else int(self._step.item())
        for key, p in enumerate(params):
            state = self.state.get(p)
            if state is None:
                continue
            given = loaded.get(key, {})
            self._restore_loaded_state(p, state, given, counter)
            if isinstance(given.get(MASTER_PARAM), torch.Tensor):
                for name in (MASTER_PARAM, *self._state_names):
                    if isinstance(given.get(name), torch.Tensor):
                        state[name] = given[name].to(device=p.device, dtype=torch.float32).clone()

    def _check_loaded_states(self, state_dict):
        """Rejects state tensors that do not fit their params, before anything is loaded."""
        params = [p for group in self.param_groups for p in group["params"]]
        for key, state in state_dict.get("state", {}).items():
            if not isinstance(key, int) or not 0 <= key < len(params):
                continue  # not a param's state: loaded as it is, as torch does
            if not isinstance(state, dict):
                raise TypeError(f"state_dict: the state of param {key} must be a dict, got {type(state).__name__}")
            self._check_loaded_count(key, state.get(self._count_key))
            for name in self._state_names:
                tensor = state.get(name)
                if tensor is None:
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise TypeError(f"state_dict: {name} of param {key} must be a Tensor, got {type(tensor).__name__}")
                if tensor.shape != params[key].shape:
                    raise ValueError(
                        f"state_dict: {name} of param {key} has shape {tuple(tensor.shape)}, "
                        f"but the param has shape {tuple(params[key].shape)}"
                    )

    # --- what a family defines --------------------------------------------------------------------

    _state_names = ()  # every state tensor name the family may keep, in kernel order
    _momentum_label = "group['momentum']"  # where a cycled momentum shows
    _plain_name = None  # the family's class that takes an LR from outside (with schedule=Constant())

    def _check_family_group(self, group, where, *, before_schedule=False, momenta=()):
        """Checks the family's hyperparameters in `group` (raising before anything changes): those the
        schedule does not read first (`before_schedule`), then the rest, knowing the momentum values
        the schedule can use."""
        raise NotImplementedError

    def _fill_config(self, config, group):
        """Writes the family's hyperparameters into the group's `_C.GroupConfig`."""
        raise NotImplementedError

    def _family_inputs(self, group):
        """The family's group values that `_fill_config` reads (part of the config's cache key)."""
        raise NotImplementedError

    def _state_keys(self, group):
        """The state tensors the group's params keep, in kernel order (empty: none, and no count)."""
        raise NotImplementedError

    def _new_count(self, param):
        """The per-param count of a param whose state is new."""
        raise NotImplementedError

    def _complete_family_state(self, param, state, keeps_master):
        """Fixes state given from outside so the kernel can take it (dtypes, devices, a missing count)."""

    def _restore_loaded_state(self, param, state, given, counter):
        """After torch's loader: the count as the family keeps it, from the loaded state `given`
        (`counter`: the schedule step just loaded)."""

    def _check_loaded_count(self, key, count):
        """Raises if a loaded per-param count cannot be one."""

    def _schedule_group(self, group):
        """The group as the schedule reads and writes it: the group itself where its momentum is
        group['momentum']."""
        return group

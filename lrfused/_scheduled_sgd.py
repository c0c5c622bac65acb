"""The shared machinery of the fused optimizers: SGD whose LR and momentum come from a schedule that
the kernel evaluates from a step counter kept on the params' device.

A subclass describes its schedule: which group keys it reads (`_schedule_inputs`), how they become
a `_C.Schedule` (`_schedule`), how a group is checked and completed (`_complete_group`), and whether
a step is allowed now (`_check_can_step`).
"""
import torch
from torch.optim.optimizer import Optimizer, required

from lrfused._checks import check_params
from lrfused._ext import _C
from lrfused._state import ChangeCounter, OptimizerState

# Per-param state keys.
MOMENTUM_BUFFER = "momentum_buffer"  # same name and meaning as torch.optim.SGD's
MOMENTUM_FIRST_STEP = "momentum_first_step"  # int64: the step that first wrote the buffer
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


def new_schedule(kind, group):
    """A `_C.Schedule` of `kind` with the group's momentum: cycled by the schedule, or constant."""
    schedule = _C.Schedule()
    schedule.kind = kind
    schedule.cycle_momentum = group["cycle_momentum"]
    schedule.momentum = 0.0 if group["cycle_momentum"] else float(group["momentum"])
    return schedule


def _refuse_state_creation_in_capture(param):
    """Momentum state made inside a CUDA graph capture would be re-zeroed on every replay."""
    if param.is_cuda and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(
            "step() is being captured in a CUDA graph before the optimizer's momentum state exists: "
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


def _keeps_buffers(group):
    return group["cycle_momentum"] or group["momentum"] != 0


class ScheduledFusedSGD(Optimizer):
    def __init__(self, params, defaults):
        self._device = None
        self._configs = {}  # group index -> (key, _C.GroupConfig)
        super().__init__(params, defaults)
        # The kernel's step counter, and a host copy of it so that step() never reads the device.
        self._step = torch.zeros((), dtype=torch.int64, device=self._device)
        self._host_step = 0
        self._track_state()
        self._show_schedule_values()

    # --- for subclasses -------------------------------------------------------------------------

    def _complete_group(self, group, index):
        """Checks a group's values (raising before anything changes) and adds derived keys."""
        raise NotImplementedError

    def _schedule_inputs(self, group):
        """The group values the schedule reads, as a tuple (a cache key for `_schedule`)."""
        raise NotImplementedError

    def _schedule(self, group):
        """The group's `_C.Schedule`."""
        raise NotImplementedError

    def _check_can_step(self):
        """Raises if the schedule has no further step (e.g. past the end of a 1cycle schedule)."""

    def _shown_step(self, group, step):
        """The step whose values group['lr'] / ['momentum'] show after `step` steps."""
        return step

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
        """One fused SGD step over every param with a grad, at this step's scheduled LR and momentum."""
        loss = None
        if closure is not None:
            if not callable(closure):
                raise TypeError(f"closure must be callable (returning the loss), got {type(closure).__name__}")
            with torch.enable_grad():
                loss = closure()
        self._check_can_step()
        created = self._refresh_plan()
        configs = [self._group_config(i, g) for i, g in enumerate(self.param_groups)]
        if self._plan_first_param is not None and self._plan_first_param.device != self._step.device:
            self._step = self._step.to(self._plan_first_param.device)  # the model moved after construction
        try:
            self._plan.step(configs, self._step)
        except Exception:
            self._forget_state(created)
            raise
        self._host_step += 1
        self._show_schedule_values()
        return loss

    def get_last_lr(self):
        """The LR of each group for the next step, as torch's schedulers' get_last_lr()."""
        return [group["lr"] for group in self.param_groups]

    @property
    def schedule_step(self):
        """How many steps this optimizer has taken (its schedule position), from the host's count."""
        return self._host_step

    def __getstate__(self):  # pickling and copy.deepcopy: torch's keeps only defaults, state, groups
        state = super().__getstate__()
        state.update(_step=self._step, _host_step=self._host_step, _device=self._device)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._configs = {}  # compiled per-group configs are rebuilt on demand
        self._track_state()

    def state_dict(self):
        state = super().state_dict()
        # Plain dicts, as torch's, so that torch.load(weights_only=True) reads the checkpoint.
        state["state"] = {key: dict(value) for key, value in state["state"].items()}
        state[SCHEDULE_STEP] = self._step
        return state

    def load_state_dict(self, state_dict):
        """Loads a state saved by this class, or a torch.optim.SGD state (its momentum buffers).

        A state without a schedule step (torch.optim.SGD's) keeps this optimizer's schedule position.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        for key, kind in (("state", dict), ("param_groups", list)):
            if key not in state_dict:
                raise ValueError(f"state_dict has no '{key}' entry: it is not an optimizer's state dict")
            if not isinstance(state_dict[key], kind):
                raise TypeError(f"state_dict['{key}'] must be a {kind.__name__}, got {type(state_dict[key]).__name__}")
        step = _checked_schedule_step(state_dict.get(SCHEDULE_STEP))
        self._check_loaded_buffers(state_dict)
        groups_before = self.param_groups
        super().load_state_dict(state_dict)
        for before, loaded in zip(groups_before, self.param_groups):
            for name, value in before.items():  # keys a foreign state lacks keep their values
                loaded.setdefault(name, value)
        for p, state in self.state.items():
            if isinstance(state.get(MOMENTUM_BUFFER), torch.Tensor):
                # torch's loader casts every tensor to the param's dtype: the flag is an int64.
                first = state.get(MOMENTUM_FIRST_STEP)
                first = _C.WRITTEN_ELSEWHERE if first is None else int(first.item())
                state[MOMENTUM_FIRST_STEP] = torch.tensor(first, dtype=torch.int64, device=p.device)
        if step is not None:
            self._step = torch.tensor(step, dtype=torch.int64, device=self._device)
            self._host_step = step
        self._configs.clear()
        self._show_schedule_values()

    # --- internals ------------------------------------------------------------------------------

    def _track_state(self):
        """Makes self.state count its changes, and drops the step plan."""
        if not hasattr(self, "_state_changes"):
            self._state_changes = ChangeCounter()
        if not isinstance(self.state, OptimizerState):
            self.state = OptimizerState(self._state_changes, self.state)
        self._plan = None
        self._plan_key = None

    def _plan_key_now(self):
        """What the step plan depends on: the params, the state, which groups keep buffers."""
        return (
            id(self.state),
            self._state_changes.value,
            tuple(tuple(map(id, group["params"])) for group in self.param_groups),
            tuple(_keeps_buffers(group) for group in self.param_groups),
        )

    def _refresh_plan(self):
        """Rebuilds the step plan if anything it depends on changed, or a param without momentum
        state has its first grad. Returns the params whose state this created."""
        if (
            self._plan is not None
            and self._plan_key == self._plan_key_now()
            and all(p.grad is None for p in self._stateless)
        ):
            return []
        params, buffers, first_steps, group_of, created, stateless = [], [], [], [], [], []
        for index, group in enumerate(self.param_groups):
            keeps_buffers = _keeps_buffers(group)
            for p in group["params"]:
                if not keeps_buffers:
                    params.append(p)
                    buffers.append(None)
                    first_steps.append(None)
                    group_of.append(index)
                    continue
                state = self.state.get(p)
                if state is None or state.get(MOMENTUM_BUFFER) is None:
                    if p.grad is None:
                        stateless.append(p)  # no state until its first grad, as in torch
                        continue
                    _refuse_state_creation_in_capture(p)
                    created.append(p)
                    self.state[p] = {
                        MOMENTUM_BUFFER: torch.zeros_like(p, memory_format=torch.preserve_format),
                        MOMENTUM_FIRST_STEP: torch.full((), _C.NEVER_WRITTEN, dtype=torch.int64, device=p.device),
                    }
                    state = self.state[p]
                elif MOMENTUM_FIRST_STEP not in state:  # a buffer given from outside
                    state[MOMENTUM_FIRST_STEP] = torch.tensor(_C.WRITTEN_ELSEWHERE, dtype=torch.int64, device=p.device)
                params.append(p)
                buffers.append(state[MOMENTUM_BUFFER])
                first_steps.append(state[MOMENTUM_FIRST_STEP])
                group_of.append(index)
        self._plan = _C.StepPlan(params, buffers, first_steps, group_of)
        self._plan_first_param = params[0] if params else None
        self._stateless = stateless
        self._plan_key = self._plan_key_now()
        return created

    def _forget_state(self, params):
        for p in params:
            self.state.pop(p, None)
        self._plan = None

    def _group_config(self, index, group):
        key = (
            self._schedule_inputs(group),
            group["weight_decay"],
            group["dampening"],
            group["nesterov"],
            group["maximize"],
        )
        cached = self._configs.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        config = _C.GroupConfig()
        config.schedule = self._schedule(group)
        config.weight_decay = group["weight_decay"]
        config.dampening = group["dampening"]
        config.nesterov = group["nesterov"]
        config.maximize = group["maximize"]
        self._configs[index] = (key, config)
        return config

    def _show_schedule_values(self):
        """Writes the next step's LR (and momentum, if cycled) into each group, as torch's schedulers do."""
        for index, group in enumerate(self.param_groups):
            schedule = self._group_config(index, group).schedule
            lr, momentum = _C.schedule_value(schedule, self._shown_step(group, self._host_step))
            group["lr"] = lr
            if group["cycle_momentum"]:
                group["momentum"] = momentum

    def _check_loaded_buffers(self, state_dict):
        """Rejects momentum buffers that do not fit their params, before anything is loaded."""
        params = [p for group in self.param_groups for p in group["params"]]
        for key, state in state_dict.get("state", {}).items():
            if not isinstance(state, dict):
                raise TypeError(f"state_dict: the state of param {key} must be a dict, got {type(state).__name__}")
            if not isinstance(key, int) or not 0 <= key < len(params):
                continue
            first = state.get(MOMENTUM_FIRST_STEP)
            if first is not None and (not isinstance(first, torch.Tensor) or first.numel() != 1):
                raise TypeError(f"state_dict: momentum_first_step of param {key} must be a one-element tensor")
            buf = state.get(MOMENTUM_BUFFER)
            if buf is None:
                continue
            if not isinstance(buf, torch.Tensor):
                raise TypeError(f"state_dict: momentum_buffer of param {key} must be a Tensor, got {type(buf).__name__}")
            if buf.shape != params[key].shape:
                raise ValueError(
                    f"state_dict: momentum_buffer of param {key} has shape {tuple(buf.shape)}, "
                    f"but the param has shape {tuple(params[key].shape)}"
                )

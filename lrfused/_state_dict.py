"""state_dict / load_state_dict of the fused optimizers: torch's, plus the schedule's step counter,
with the family's state checked before anything is loaded and its counts and float32 copies taken
again after torch's loader casts them."""
import warnings

import torch

from lrfused._param_state import MASTER_PARAM

# Top-level state_dict key of the schedule's step counter.
SCHEDULE_STEP = "schedule_step"


def checked_schedule_step(step):
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


class Checkpoints:
    """The state_dict methods of a FusedOptimizer (placed before torch's Optimizer in its bases)."""

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
        step = checked_schedule_step(state_dict.get(SCHEDULE_STEP))
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

    def _restore_state_dtypes(self, state_dict):
        """torch's loader casts every state tensor to its param's dtype: the family's count and a
        master copy with its float32 state are taken again from the given state."""
        family = self.family
        params = [p for group in self.param_groups for p in group["params"]]
        loaded = state_dict["state"]
        counter = self._host_step if self._host_step is not None else int(self._step.item())
        for key, p in enumerate(params):
            state = self.state.get(p)
            if state is None:
                continue
            given = loaded.get(key, {})
            family.counts.restore(family.count_key, family.state_names, p, state, given, counter)
            if isinstance(given.get(MASTER_PARAM), torch.Tensor):
                for name in (MASTER_PARAM, *family.state_names):
                    if isinstance(given.get(name), torch.Tensor):
                        state[name] = given[name].to(device=p.device, dtype=torch.float32).clone()

    def _check_loaded_states(self, state_dict):
        """Rejects state tensors that do not fit their params, before anything is loaded."""
        family = self.family
        params = [p for group in self.param_groups for p in group["params"]]
        for key, state in state_dict.get("state", {}).items():
            if not isinstance(key, int) or not 0 <= key < len(params):
                continue  # not a param's state: loaded as it is, as torch does
            if not isinstance(state, dict):
                raise TypeError(f"state_dict: the state of param {key} must be a dict, got {type(state).__name__}")
            if family.count_key is not None:
                family.counts.check_loaded(family.count_key, key, state.get(family.count_key))
            for name in family.state_names:
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

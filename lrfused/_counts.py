"""The per-param count policies a family may declare (`Family.count`), and what each means for the
state: how a new count starts, how one given from outside or loaded is made fit for the kernel, and
which loaded values are refused.

- "none": no per-param count (the rule needs none).
- "first_write": an int64 flag, the step that first wrote the state (SGD's momentum_first_step): the
  kernel tells a new buffer (set to the grad) from one written before.
- "per_param_step": a float32 one-element tensor counting the param's own steps (AdamW's `step`, as
  torch's fused AdamW keeps it), for the bias corrections.
"""
import torch

from lrfused._ext import _C


class NoCount:
    """No per-param count: nothing to make, fix or check."""

    def new(self, param):
        return None

    def complete(self, key, param, state):
        pass

    def restore(self, key, state_names, param, state, given, counter):
        pass

    def check_loaded(self, key, param_index, count):
        pass


class FirstWrite(NoCount):
    """The step that first wrote the state tensors (int64 on the param's device)."""

    def new(self, param):
        return torch.full((), _C.NEVER_WRITTEN, dtype=torch.int64, device=param.device)

    def complete(self, key, param, state):
        if key not in state:  # a state tensor given from outside
            state[key] = torch.tensor(_C.WRITTEN_ELSEWHERE, dtype=torch.int64, device=param.device)

    def restore(self, key, state_names, param, state, given, counter):
        """The flag is int64 again (for a param that keeps the family's first state tensor). A flag at or past the (loaded) counter becomes WRITTEN_ELSEWHERE:
        every flag stays below the counter, which the CUDA kernel relies on to tell "first written
        earlier in this step" (flag == step) from "written before", so a restarted schedule keeps its
        buffers on every device."""
        if not isinstance(state.get(state_names[0]), torch.Tensor):
            return
        first = given.get(key)
        first = _C.WRITTEN_ELSEWHERE if first is None else int(first.item())
        if first >= counter:
            first = _C.WRITTEN_ELSEWHERE
        state[key] = torch.tensor(first, dtype=torch.int64, device=param.device)

    def check_loaded(self, key, param_index, count):
        if count is not None and (not isinstance(count, torch.Tensor) or count.numel() != 1):
            raise TypeError(f"state_dict: {key} of param {param_index} must be a one-element tensor")


class PerParamStep(NoCount):
    """The param's own step count (float32 one-element tensor on the param's device)."""

    def new(self, param):
        return torch.zeros((), dtype=torch.float32, device=param.device)

    def complete(self, key, param, state):
        step = state.get(key)
        if not (isinstance(step, torch.Tensor) and step.dtype == torch.float32 and step.device == param.device):
            # torch.optim.AdamW keeps a CPU step (float64 under a float64 default dtype); older
            # versions a number.
            state[key] = torch.tensor(0.0 if step is None else float(step), dtype=torch.float32, device=param.device)

    def restore(self, key, state_names, param, state, given, counter):
        if key in state:
            self.complete(key, param, state)

    def check_loaded(self, key, param_index, count):
        if count is None or isinstance(count, (int, float)) and not isinstance(count, bool):
            return
        if not isinstance(count, torch.Tensor) or count.numel() != 1:
            raise TypeError(f"state_dict: {key} of param {param_index} must be a number or a one-element tensor")


COUNT_POLICIES = {"none": NoCount(), "first_write": FirstWrite(), "per_param_step": PerParamStep()}

"""Each param's state as the kernel needs it: the family's state tensors, its per-param count and a
float32 master copy, made when a param first has a grad, or fixed when given from outside."""
import torch

from lrfused._state import ChangeCounter, OptimizerState

MASTER_PARAM = "master_param"  # per-param state: float32 copy of a float16 / bfloat16 param (master_weights=True)
LOW_PRECISION = (torch.float16, torch.bfloat16)


def keeps_master(group, param):
    return group["master_weights"] and param.dtype in LOW_PRECISION


def has_state(state, keys, keeps_master):
    return (
        state is not None
        and all(state.get(key) is not None for key in keys)
        and (not keeps_master or state.get(MASTER_PARAM) is not None)
    )


class ParamStates:
    """`self.state` bookkeeping of a FusedOptimizer (its `family` declares the layout)."""

    def _complete_state(self, p, keys, keeps_master):
        """p's state with what this step needs added: a float32 master copy, the family's state
        tensors (zeros; float32 beside a master copy) and count, made if missing, then made fit for
        the kernel. Returns the state (empty if none is kept)."""
        if not (keys or keeps_master):
            return {}
        family = self.family
        state = self.state.get(p)
        if not has_state(state, keys, keeps_master):
            state = dict(state or {})
            if keeps_master and state.get(MASTER_PARAM) is None:
                state[MASTER_PARAM] = p.detach().to(torch.float32, memory_format=torch.preserve_format)
            like = state[MASTER_PARAM] if keeps_master else p
            if keys and state.get(keys[0]) is None and family.count_key is not None:
                # A new first state tensor (SGD's buffer, AdamW's exp_avg) starts a new count, also
                # where the old one was dropped by hand (torch: state[p]["momentum_buffer"] = None).
                state[family.count_key] = family.counts.new(p)
            for key in keys:
                if state.get(key) is None:
                    state[key] = torch.zeros_like(like, memory_format=torch.preserve_format)
            self.state[p] = state
        if keys:
            self._fit_for_kernel(p, self.state[p], keeps_master)
        return self.state[p]

    def _fit_for_kernel(self, param, state, keeps_master):
        """Fixes state given from outside so the kernel can take it: the count (dtype, device, or
        missing), and float32 state tensors beside a master copy (e.g. loaded from torch's SGD)."""
        family = self.family
        family.counts.complete(family.count_key, param, state)
        if keeps_master:
            for key in family.state_names:
                if key in state and state[key].dtype != torch.float32:
                    state[key] = state[key].float()

    def _forget_state(self, params):
        for p in params:
            self.state.pop(p, None)
        self._plan = None

    def _track_state(self):
        """Makes self.state count its changes, and drops the step plan."""
        if not hasattr(self, "_state_changes"):
            self._state_changes = ChangeCounter()
        if not isinstance(self.state, OptimizerState):
            self.state = OptimizerState(self._state_changes, self.state)
        self._plan = None
        self._plan_key = None

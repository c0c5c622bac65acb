"""The step plan: which params the kernel updates, with their state tensors, count and master copy,
in kernel order. `layout` is the one definition of it; the eager step hands it to `_C.StepPlan`
(cached until a param, its state or a group's layout changes), the compiled step (`compiled_args`) to
the lrfused::fused_step_ op as dense lists, since dynamo cannot trace the pybind11 plan."""
import operator
from typing import NamedTuple

import torch

from lrfused import _graphs
from lrfused._ext import _C
from lrfused._param_state import MASTER_PARAM, has_state, keeps_master


def kernel_view(tensor):
    """What the kernel updates for a param (or reads for its grad, state, master copy): a DTensor's
    local shard; a complex tensor as torch.view_as_real of it (for the families whose update is the
    same on the real view); else the tensor itself."""
    tensor = getattr(tensor, "_local_tensor", tensor)
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


class Layout(NamedTuple):
    """Per planned param, in kernel order: the param, its state tensors (kernel views), its count
    (or None), its master copy's view (or None), its group's index."""

    params: list
    states: list
    counts: list
    masters: list
    group_of: list


def layout(opt, *, compiled, created=None, stateless=None):
    """The plan of `opt`'s params, making state that is missing. Eager (`compiled=False`): every
    param that keeps state, or needs none; one without its state and without a grad is left out
    (listed in `stateless`: no state until its first grad, as in torch), one whose state this made is
    listed in `created`. Compiled: the params with a grad (their state made here in traceable Python,
    as torch's optimizers do under torch.compile)."""
    family = opt.family
    planned = Layout([], [], [], [], [])
    for index, group in enumerate(opt.param_groups):
        keys = family.state_keys(group)
        for p in group["params"]:
            master = keeps_master(group, p)
            if compiled:
                if p.grad is None:
                    continue
            elif (keys or master) and not has_state(opt.state.get(p), keys, master):
                if p.grad is None:
                    stateless.append(p)
                    continue
                _graphs.refuse_state_creation_in_capture(p)
                if opt.state.get(p) is None:
                    created.append(p)
            state = opt._complete_state(p, keys, master)
            planned.params.append(p)
            planned.states.append([kernel_view(state[key]) for key in keys])
            planned.counts.append(state[family.count_key] if keys and family.count_key is not None else None)
            planned.masters.append(kernel_view(state[MASTER_PARAM]) if master else None)
            planned.group_of.append(index)
    return planned


class EagerPlan:
    """The `_C.StepPlan` of the eager step, rebuilt only when what it depends on changed."""

    def __init__(self, opt, created):
        stateless = []
        planned = layout(opt, compiled=False, created=created, stateless=stateless)
        views = [kernel_view(p) for p in planned.params]
        self.kernel = _C.StepPlan(views, planned.states, planned.counts, planned.masters, planned.group_of)
        self.params = planned.params
        self.views_grads = any(view is not p for view, p in zip(views, planned.params))  # else read by the plan
        self.first_param = views[0] if planned.params else None
        self.stateless = stateless
        self.key = plan_key(opt)
        self.groups = [list(group["params"]) for group in opt.param_groups]

    def still_fits(self, opt):
        """Whether nothing the plan depends on changed and no param without its state has a grad."""
        return self.key == plan_key(opt) and self._params_unchanged(opt) and all(p.grad is None for p in self.stateless)

    def _params_unchanged(self, opt):
        """Whether every group still holds the plan's params, in order (no allocation per param: a
        step over thousands of tensors must not feed the garbage collector)."""
        groups = opt.param_groups
        return len(groups) == len(self.groups) and all(
            len(group["params"]) == len(planned) and all(map(operator.is_, group["params"], planned))
            for group, planned in zip(groups, self.groups)
        )

    def grads(self):
        """The grads' kernel views, where the plan cannot read the params' own grads; else None."""
        if not self.views_grads:
            return None
        return [None if p.grad is None else kernel_view(p.grad) for p in self.params]


def plan_key(opt):
    """What the step plan depends on besides the params: the state and which groups keep which state."""
    return (
        id(opt.state),
        opt._state_changes.value,
        tuple((opt.family.state_keys(group), group["master_weights"]) for group in opt.param_groups),
    )


def compiled_args(opt):
    """The lrfused::fused_step_ op's per-param lists (dense, with -1 for none) of this step's layout."""
    planned = layout(opt, compiled=True)
    states, state_index, counts, count_index, masters, master_index = [], [], [], [], [], []
    for param_states, count, master in zip(planned.states, planned.counts, planned.masters):
        for tensor in param_states:
            state_index.append(len(states))
            states.append(tensor)
        state_index.extend([-1] * (_C.MAX_STATE_TENSORS - len(param_states)))
        count_index.append(-1 if count is None else len(counts))
        if count is not None:
            counts.append(count)
        master_index.append(-1 if master is None else len(masters))
        if master is not None:
            masters.append(master)
    params = [kernel_view(p) for p in planned.params]
    grads = [kernel_view(p.grad) for p in planned.params]
    return params, grads, states, state_index, counts, count_index, masters, master_index, planned.group_of

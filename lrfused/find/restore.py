"""Everything a range test changes, saved before the sweep and put back bit for bit afterwards:
parameter and buffer values (in place, so optimizers holding the params stay valid), their grads,
the modules' train/eval modes, any given optimizers' state, and the RNG states (torch CPU and CUDA,
Python's random, NumPy's global generator)."""
import copy
import random

import numpy as np
import torch


class Snapshot:
    def __init__(self, model, optimizers=(), cuda=False):
        """cuda: also save the CUDA RNG states (always, if CUDA is already initialised)."""
        self._model = model
        self._values = [(t, t.detach().clone()) for t in _tensors(model)]
        self._grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in model.parameters()]
        self._modes = [(m, m.training) for m in model.modules()]
        self._optimizers = [(opt, copy.deepcopy(opt.state_dict())) for opt in optimizers]
        # Tensor hyperparameters (a tensor lr): load_state_dict would put copies in the groups, while
        # the caller (or a captured CUDA graph) holds the originals; their values go back in place.
        self._group_tensors = [
            (opt, index, key, value, value.detach().clone())
            for opt in optimizers for index, group in enumerate(opt.param_groups)
            for key, value in group.items() if isinstance(value, torch.Tensor)
        ]
        self._cpu_rng = torch.get_rng_state()
        cuda = cuda or torch.cuda.is_initialized()
        self._cuda_rng = torch.cuda.get_rng_state_all() if cuda else None
        self._python_rng = random.getstate()
        self._numpy_rng = np.random.get_state()

    @torch.no_grad()
    def restore(self):
        for tensor, value in self._values:
            tensor.copy_(value)
        for param, grad in self._grads:
            param.grad = grad
        for module, training in self._modes:
            module.training = training
        for opt, state in self._optimizers:
            opt.load_state_dict(copy.deepcopy(state))
        for opt, index, key, tensor, value in self._group_tensors:
            tensor.copy_(value)
            opt.param_groups[index][key] = tensor
        torch.set_rng_state(self._cpu_rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state_all(self._cuda_rng)
        random.setstate(self._python_rng)
        np.random.set_state(self._numpy_rng)


def _tensors(model):
    """Parameters and buffers, each once (a module may register one tensor under two names)."""
    seen, out = set(), []
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out

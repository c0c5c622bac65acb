"""The step plan (tensor lists built once, not every step) follows every change a torch user can
make between steps: replaced buffers, cleared state, swapped params or param data, a group's
momentum switched on, a frozen param that starts getting grads. Each is done to lrfused and to
torch.optim.SGD + OneCycleLR alike, and the params must stay equal."""
import pytest
import torch

import lrfused
from reference import torch_one_cycle

KWARGS = dict(max_lr=0.2, total_steps=20, cycle_momentum=False, momentum=0.9, dampening=0.1, weight_decay=1e-2)


class Pair:
    def __init__(self, n=3):
        torch.manual_seed(0)
        self.fused_params = [torch.randn(7) for _ in range(n)]
        self.torch_params = [p.clone() for p in self.fused_params]
        self.fused = lrfused.FusedOneCycleSGD(self.fused_params, **KWARGS)
        self.torch_opt, self.sched = torch_one_cycle(self.torch_params, **KWARGS)

    def step(self, with_grad=None):
        with_grad = range(len(self.fused_params)) if with_grad is None else with_grad
        for i, (f, t) in enumerate(zip(self.fused_params, self.torch_params)):
            grad = torch.randn(7) if i in with_grad else None
            f.grad, t.grad = grad, None if grad is None else grad.clone()
        self.fused.step()
        self.torch_opt.step()
        self.sched.step()
        for f, t in zip(self.fused_params, self.torch_params):
            torch.testing.assert_close(f, t)

    def both(self, change):
        """Applies change(opt, params) to both runs."""
        change(self.fused, self.fused_params)
        change(self.torch_opt, self.torch_params)


def test_replaced_momentum_buffer_is_used():
    runs = Pair()
    runs.step()
    runs.both(lambda opt, ps: opt.state[ps[1]].__setitem__("momentum_buffer", torch.full((7,), 0.5)))
    runs.step()
    runs.step()


def test_cleared_and_deleted_state_restarts_the_buffers():
    runs = Pair()
    runs.step()
    runs.both(lambda opt, ps: opt.state.__delitem__(ps[0]))
    runs.step()
    runs.both(lambda opt, ps: opt.state.clear())
    runs.step()
    runs.step()


def test_swapped_param_and_param_data():
    runs = Pair()
    runs.step()
    new = torch.randn(7)

    def swap_param(opt, ps):
        ps[2] = new.clone()
        opt.param_groups[0]["params"][2] = ps[2]

    runs.both(swap_param)
    runs.step()
    runs.both(lambda opt, ps: setattr(ps[0], "data", torch.randn(7, generator=torch.Generator().manual_seed(5))))
    runs.step()


def test_momentum_switched_on_later():
    torch.manual_seed(0)
    runs = Pair()
    runs.both(lambda opt, ps: opt.param_groups[0].__setitem__("momentum", 0.0))
    runs.step()
    assert not runs.fused.state
    runs.both(lambda opt, ps: opt.param_groups[0].__setitem__("momentum", 0.9))
    runs.step()
    runs.step()


def test_frozen_param_that_starts_getting_grads():
    runs = Pair()
    runs.step(with_grad={0, 1})
    runs.step(with_grad={0, 1})
    assert runs.fused_params[2] not in runs.fused.state
    runs.step()
    runs.step()


def test_state_dict_is_plain_dicts_for_weights_only_loading(tmp_path):
    runs = Pair()
    runs.step()
    path = tmp_path / "opt.pt"
    torch.save(runs.fused.state_dict(), path)
    loaded = torch.load(path, weights_only=True)
    assert type(loaded["state"][0]) is dict
    fresh = lrfused.FusedOneCycleSGD([p.clone() for p in runs.fused_params], **KWARGS)
    fresh.load_state_dict(loaded)
    assert torch.equal(fresh.state[fresh.param_groups[0]["params"][0]]["momentum_buffer"],
                       runs.fused.state[runs.fused_params[0]]["momentum_buffer"])

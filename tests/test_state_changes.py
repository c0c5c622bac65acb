"""The step plan (tensor lists built once, not every step) follows every change a torch user can
make between steps: replaced buffers, cleared state, swapped params or param data, a group's
momentum switched on, a frozen param that starts getting grads. Each is done to lrfused and to
torch.optim.SGD + OneCycleLR alike, and the params must stay equal."""
import warnings

import pytest
import torch

import lrfused
from reference.sgd import torch_one_cycle

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


def test_a_buffer_set_to_none_or_deleted_starts_again_from_the_grad():
    """torch's way to reset one param's momentum: the next step's buffer is the grad itself (with
    dampening != 0 a zero buffer updated as usual would differ)."""
    runs = Pair()
    runs.step()
    runs.step()
    runs.both(lambda opt, ps: opt.state[ps[1]].__setitem__("momentum_buffer", None))
    runs.both(lambda opt, ps: opt.state[ps[2]].__delitem__("momentum_buffer"))
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


# (A state dict is plain dicts for weights_only loading: test_state_dicts.py, for every family.)


@pytest.mark.parametrize("key, value", [("max_lr", 0.5), ("min_lr", 1e-3), ("initial_lr", 0.05)])
def test_edited_schedule_key_takes_effect_when_it_does_under_one_cycle_lr(key, value):
    """OneCycleLR reads the group's keys in scheduler.step(): the step right after an edit still
    trains at the shown LR, the next one at the new schedule's. No warning: the edit is the schedule's."""
    runs = Pair()
    runs.step()
    runs.step()
    runs.both(lambda opt, params: opt.param_groups[0].__setitem__(key, value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            runs.step()
            assert runs.fused.param_groups[0]["lr"] == runs.torch_opt.param_groups[0]["lr"]


@pytest.mark.parametrize("make_scheduler", [
    lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step),
    lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0),
], ids=["lambda_lr", "reduce_on_plateau"])
def test_torch_scheduler_on_a_scheduled_optimizer_warns_once(make_scheduler):
    """The kernel applies its own schedule: a torch scheduler's writes to group['lr'] would be shown
    and not applied. Warned once, naming the way to drive the LR from a torch scheduler."""
    p = torch.zeros(3)
    opt = lrfused.FusedOneCycleSGD([p], max_lr=0.2, total_steps=20)
    scheduler = make_scheduler(opt)
    caught = []
    for step in range(6):
        p.grad = torch.ones(3)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            opt.step()
        caught += w
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(1.0)  # a loss that never improves
        else:
            scheduler.step()
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert "group['lr'] was set to" in message and "lrfused.FusedSGD(params, lr=..., schedule=Constant())" in message


def test_torch_scheduler_on_a_constant_schedule_drives_the_lr_without_warning():
    p, q = torch.ones(3), torch.ones(3)
    fused = lrfused.FusedSGD([p], lr=0.1, momentum=0.9)
    ref = torch.optim.SGD([q], lr=0.1, momentum=0.9, foreach=False)
    scheds = [torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step) for opt in (fused, ref)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            p.grad, q.grad = torch.full((3,), 2.0), torch.full((3,), 2.0)
            fused.step()
            ref.step()
            for sched in scheds:
                sched.step()
            assert torch.equal(p, q)

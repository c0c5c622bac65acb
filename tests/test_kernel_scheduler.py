"""KernelScheduler, the scheduler a framework that insists on one (Hugging Face's Trainer) is given:
it reports the kernel's LR and changes nothing."""
import copy
import warnings

import pytest
import torch

import lrfused
from lrfused.schedules import Cyclic

STEPS = 8


def optimizers(params):
    return {
        "one_cycle_adamw": lambda: lrfused.FusedOneCycleAdamW(params, max_lr=0.05, total_steps=STEPS),
        "cyclic_sgd": lambda: lrfused.FusedSGD(params, lr=0.01, momentum=0.9,
                                              schedule=Cyclic(base_lr=0.01, max_lr=0.1, step_size_up=3)),
    }


@pytest.mark.parametrize("name", ["one_cycle_adamw", "cyclic_sgd"])
def test_a_loop_that_steps_the_scheduler_trains_as_the_optimizer_alone(name):
    """As Trainer does: opt.step(), scheduler.step(), scheduler.get_last_lr() for the log; bit for
    bit the run without a scheduler, the logged LRs the optimizer's, and no outside-write warning."""
    torch.manual_seed(0)
    alone_params = [torch.randn(7, 3), torch.randn(5)]
    with_params = [p.clone() for p in alone_params]
    alone, opt = optimizers(alone_params)[name](), optimizers(with_params)[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler = lrfused.KernelScheduler(opt)
        logged = [scheduler.get_last_lr()]
        for step in range(STEPS):
            grads = [torch.randn_like(p) for p in alone_params]
            for p, q, g in zip(alone_params, with_params, grads):
                p.grad, q.grad = g, g.clone()
            alone.step()
            opt.step()
            scheduler.step()
            logged.append(scheduler.get_last_lr())
            assert all(torch.equal(p, q) for p, q in zip(alone_params, with_params)), step
            assert logged[-1] == alone.get_last_lr(), step
    assert len({lr[0] for lr in logged}) > 2  # the schedule moved, and the log followed it


def test_its_state_dict_round_trips():
    opt = lrfused.FusedOneCycleAdamW([torch.nn.Parameter(torch.randn(3))], max_lr=0.05, total_steps=STEPS)
    scheduler = lrfused.KernelScheduler(opt)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    scheduler.step()
    saved = copy.deepcopy(scheduler.state_dict())
    again = lrfused.KernelScheduler(opt)
    again.load_state_dict(saved)
    assert again.last_epoch == scheduler.last_epoch == 1 and again.get_last_lr() == scheduler.get_last_lr()


def test_a_torch_optimizer_is_refused_by_name():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3))])
    with pytest.raises(TypeError, match="optimizer must be one of lrfused's optimizers .* got AdamW"):
        lrfused.KernelScheduler(opt)

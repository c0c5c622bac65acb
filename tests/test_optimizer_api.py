"""torch.optim.Optimizer behaviour: state_dict resume, param groups, closures, hooks (the SGD drop-ins,
then every family of families.py)."""
import copy
import io

import pytest
import torch

import lrfused
from conftest import DEVICES
from families import family_variants, families


def make_model(device):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2)).to(device)


def train(model, opt, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    for _ in range(steps):
        x = torch.randn(8, 5, generator=generator).to(device)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


OPTIMIZERS = {
    "one_cycle": lambda params: lrfused.FusedOneCycleSGD(params, max_lr=0.3, total_steps=12, weight_decay=1e-3, dampening=0.1),
    "cyclic": lambda params: lrfused.FusedCyclicSGD(params, base_lr=0.01, max_lr=0.2, step_size_up=3, mode="triangular2"),
    "warm_restarts": lambda params: lrfused.FusedWarmRestartsSGD(params, max_lr=0.2, T_0=2, T_mult=2, eta_min=0.01),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_resume_mid_schedule_is_exact(kind, device):
    model = make_model(device)
    opt = OPTIMIZERS[kind](model.parameters())
    train(model, opt, 5, seed=0)
    saved_model = copy.deepcopy(model.state_dict())
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    train(model, opt, 7, seed=1)

    resumed = make_model(device)
    resumed.load_state_dict(saved_model)
    resumed_opt = OPTIMIZERS[kind](resumed.parameters())
    buffer.seek(0)
    resumed_opt.load_state_dict(torch.load(buffer))
    assert resumed_opt.schedule_step == 5
    train(resumed, resumed_opt, 7, seed=1)

    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert resumed_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert resumed_opt.get_last_lr() == opt.get_last_lr()
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(opt.state[p]["momentum_buffer"], resumed_opt.state[q]["momentum_buffer"])
        assert opt.state[p]["momentum_first_step"].dtype == torch.int64
        assert resumed_opt.state[q]["momentum_first_step"].dtype == torch.int64


def test_state_dict_holds_the_step_counter_and_the_schedule_inputs():
    opt = OPTIMIZERS["one_cycle"](make_model("cpu").parameters())
    state = opt.state_dict()
    assert int(state["schedule_step"]) == 0
    group = state["param_groups"][0]
    assert group["max_lr"] == 0.3 and group["initial_lr"] == 0.3 / 25.0 and group["min_lr"] == 0.3 / 25.0 / 1e4
    assert group["total_steps"] == 12


def test_load_state_of_torch_sgd_continues_its_momentum():
    """Switching from torch.optim.SGD mid-training keeps the momentum buffers it built."""
    torch_model, fused_model = make_model("cpu"), make_model("cpu")
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=0.9, dampening=0.3)
    train(torch_model, torch_opt, 3, seed=0)
    fused_model.load_state_dict(torch_model.state_dict())

    fused = lrfused.FusedOneCycleSGD(
        fused_model.parameters(), max_lr=0.05, total_steps=4, cycle_momentum=False, momentum=0.9, dampening=0.3
    )
    fused.load_state_dict(copy.deepcopy(torch_opt.state_dict()))  # load_state_dict aliases tensors, as torch's does
    # The reference: the same torch.optim.SGD, now driven by OneCycleLR.
    reference = torch_opt
    reference_sched = torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.05, total_steps=4, cycle_momentum=False)
    assert fused.param_groups[0]["max_lr"] == 0.05  # keys SGD's state lacks keep their values
    assert fused.state[next(fused_model.parameters())]["momentum_first_step"].item() == lrfused._C.WRITTEN_ELSEWHERE

    generator = torch.Generator().manual_seed(3)
    for _ in range(4):
        x = torch.randn(8, 5, generator=generator)
        for model, opt in ((torch_model, reference), (fused_model, fused)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        reference_sched.step()
    for a, b in zip(torch_model.parameters(), fused_model.parameters()):
        torch.testing.assert_close(a, b)


def test_add_param_group_gets_the_schedule():
    first, second = torch.zeros(3), torch.zeros(2)
    opt = lrfused.FusedOneCycleSGD([first], max_lr=0.2, total_steps=10)
    opt.add_param_group({"params": [second], "max_lr": 0.4, "weight_decay": 0.1})
    assert opt.param_groups[1]["initial_lr"] == 0.4 / 25.0
    lr = opt.param_groups[1]["lr"]
    assert lr == pytest.approx(0.4 / 25.0)
    first.grad, second.grad = torch.ones(3), torch.ones(2)
    opt.step()
    assert torch.equal(second, torch.full((2,), -lr))


def test_list_valued_max_lr_is_required_for_added_groups():
    opt = lrfused.FusedOneCycleSGD([{"params": [torch.zeros(1)]}], max_lr=[0.2], total_steps=10)
    with pytest.raises(ValueError, match="param group 1 must give a value for max_lr"):
        opt.add_param_group({"params": [torch.zeros(1)]})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("kind", ["one_cycle", "cyclic", "warm_restarts"])
def test_a_value_in_the_group_dict_wins_over_the_per_group_list(kind):
    """The documented precedence: max_lr=[...] fills the groups that do not give their own."""
    own, listed = torch.zeros(3), torch.zeros(3)
    groups = [{"params": [own], "max_lr": 0.5}, {"params": [listed]}]
    make = {
        "one_cycle": lambda: lrfused.FusedOneCycleSGD(groups, max_lr=[0.1, 0.2], total_steps=10, cycle_momentum=False,
                                                      momentum=0.0, pct_start=0.0, anneal_strategy="linear"),
        "cyclic": lambda: lrfused.FusedCyclicSGD(groups, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=1,
                                                 cycle_momentum=False, momentum=0.0),
        "warm_restarts": lambda: lrfused.FusedWarmRestartsSGD(groups, max_lr=[0.1, 0.2], T_0=10, momentum=0.0),
    }
    opt = make[kind]()
    assert [g["max_lr"] for g in opt.param_groups] == [0.5, 0.2]
    own.grad, listed.grad = torch.ones(3), torch.ones(3)
    for _ in range(2 if kind == "cyclic" else 1):  # the cyclical LR reaches max_lr at step 1
        opt.step()
    # what the kernel applied (grad 1, no momentum: the param is minus the sum of the LRs)
    assert own.neg().max().item() > 0.4 and listed.neg().max().item() < 0.3


def test_closure_and_hooks():
    p = torch.zeros(2, requires_grad=True)
    opt = lrfused.FusedCyclicSGD([p], base_lr=0.1, max_lr=0.2, step_size_up=2)
    calls = []
    opt.register_step_pre_hook(lambda *args: calls.append("pre"))
    opt.register_step_post_hook(lambda *args: calls.append("post"))

    def closure():
        opt.zero_grad()
        loss = (p - 1).square().sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 2.0
    assert calls == ["pre", "post"]
    assert torch.allclose(p.detach(), torch.full((2,), 0.2))  # lr 0.1 * grad -2


def test_is_a_torch_optimizer_and_zero_grad_works():
    p = torch.zeros(2)
    p.grad = torch.ones(2)
    opt = lrfused.FusedOneCycleSGD([p], max_lr=0.1, total_steps=3)
    assert isinstance(opt, torch.optim.Optimizer)
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no grads: nothing changes, the schedule advances as OneCycleLR would
    assert torch.equal(p, torch.zeros(2))
    assert opt.schedule_step == 1


@pytest.mark.parametrize("device", DEVICES)
def test_a_step_is_an_in_place_change_autograd_sees(device):
    """As after torch's SGD: versions of params and buffers move, and a backward through a graph
    that saved a param from before the step raises instead of using the new values."""
    w = torch.randn(3, device=device, requires_grad=True)
    opt = lrfused.FusedOneCycleSGD([w], max_lr=0.1, total_steps=5)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    version = w._version
    opt.step()
    assert w._version > version
    buffer = opt.state[w]["momentum_buffer"]
    buffer_version = buffer._version
    opt.step()
    assert buffer._version > buffer_version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_pickle_and_deepcopy_keep_the_schedule_position(kind):
    model = make_model("cpu")
    opt = OPTIMIZERS[kind](model.parameters())
    train(model, opt, 3, seed=0)
    for clone in (copy.deepcopy(opt), torch.load(io.BytesIO(_pickled(opt)), weights_only=False)):
        assert clone.schedule_step == 3 and int(clone._step) == 3
        assert clone.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        params = [p for g in clone.param_groups for p in g["params"]]
        for p in params:
            p.grad = torch.ones_like(p)
        clone.step()
        assert clone.schedule_step == 4


def _pickled(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# --- every family ------------------------------------------------------------------------------------


def _one_cycle(family, options, params, total_steps=12):
    return family.one_cycle(params, max_lr=family.max_lr, total_steps=total_steps, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family, options", family_variants())
def test_every_family_resumes_mid_schedule_exactly(family, options, device):
    model = make_model(device)
    opt = _one_cycle(family, options, model.parameters())
    train(model, opt, 5, seed=0)
    saved_model = copy.deepcopy(model.state_dict())
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    train(model, opt, 7, seed=1)

    resumed = make_model(device)
    resumed.load_state_dict(saved_model)
    resumed_opt = _one_cycle(family, options, resumed.parameters())
    buffer.seek(0)
    resumed_opt.load_state_dict(torch.load(buffer))
    assert resumed_opt.schedule_step == 5
    train(resumed, resumed_opt, 7, seed=1)
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
        assert opt.state[p].keys() == resumed_opt.state[q].keys()
        for key, value in opt.state[p].items():
            assert value.dtype == resumed_opt.state[q][key].dtype and torch.equal(value, resumed_opt.state[q][key]), key
    assert family.shown(resumed_opt.param_groups[0]) == family.shown(opt.param_groups[0])
    assert resumed_opt.get_last_lr() == opt.get_last_lr()


@pytest.mark.parametrize("family", families())
def test_every_family_is_a_torch_optimizer_with_closures_and_hooks(family):
    p = torch.zeros(2, requires_grad=True)
    opt = _one_cycle(family, list(family.variants.values())[0], [p], total_steps=3)
    assert isinstance(opt, torch.optim.Optimizer)
    calls = []
    opt.register_step_pre_hook(lambda *args: calls.append("pre"))
    opt.register_step_post_hook(lambda *args: calls.append("post"))

    def closure():
        opt.zero_grad()
        loss = (p - 1).square().sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 2.0
    assert calls == ["pre", "post"] and opt.schedule_step == 1
    assert (p.detach() > 0).all()  # moved towards 1
    opt.zero_grad()
    assert p.grad is None
    before = p.detach().clone()
    opt.step()  # no grads: nothing changes, the schedule advances as OneCycleLR would
    assert torch.equal(p.detach(), before) and opt.schedule_step == 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family, options", family_variants())
def test_every_familys_step_is_an_in_place_change_autograd_sees(family, options, device):
    """Versions of params and state tensors move, and a backward through a graph that saved a param
    from before the step raises instead of using the new values."""
    w = torch.randn(3, device=device, requires_grad=True)
    opt = _one_cycle(family, options, [w], total_steps=5)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    version = w._version
    opt.step()
    assert w._version > version
    state = {key: opt.state[w][key] for key in family.state_keys if key in opt.state[w]}
    assert state, opt.state[w].keys()
    versions = {key: t._version for key, t in state.items()}
    opt.step()
    assert all(t._version > versions[key] for key, t in state.items()), versions
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("family, options", family_variants())
def test_every_family_pickles_and_deepcopies_at_its_schedule_position(family, options):
    model = make_model("cpu")
    opt = _one_cycle(family, options, model.parameters())
    train(model, opt, 3, seed=0)
    for clone in (copy.deepcopy(opt), torch.load(io.BytesIO(_pickled(opt)), weights_only=False)):
        assert clone.schedule_step == 3
        assert family.shown(clone.param_groups[0]) == family.shown(opt.param_groups[0])
        params = [p for g in clone.param_groups for p in g["params"]]
        for p in params:
            p.grad = torch.ones_like(p)
        clone.step()
        assert clone.schedule_step == 4

"""range_test(optimizer=...): "sgd" (the fused sweep), "adamw", or any torch optimizer instance; each
compared with a hand-written torch loop that sets the LR per step, and restored bit for bit."""
import copy

import pytest
import torch
from sweep_fixtures import mlp, pairs
from test_find import Boom, assert_same, fingerprint

import lrfused
from lrfused.find import range_test
from lrfused.find.grid import range_test_grid
from lrfused.ramp import ramp_lr

NUM_ITER = 24


def reference_losses(model, data, opt, start_lr, end_lr, num_iter=NUM_ITER):
    """The sweep written out: group g trains at ramp_lr(step) * (its lr / the first group's lr)."""
    ratios = [group["lr"] / opt.param_groups[0]["lr"] for group in opt.param_groups]
    losses = []
    for step in range(num_iter):
        x, y = data[step % len(data)]
        for group, ratio in zip(opt.param_groups, ratios):
            group["lr"] = ramp_lr(start_lr, end_lr, num_iter, "exp", step) * ratio
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def sweep(model, **kwargs):
    settings = dict(start_lr=1e-3, end_lr=0.5, num_iter=NUM_ITER, progress=False, diverge_threshold=1e9)
    return range_test(model, pairs(), **{**settings, **kwargs})


def test_sgd_instance_sweep_equals_the_fused_sgd_sweep():
    fused = sweep(mlp(), momentum=0.9, weight_decay=1e-3, nesterov=True)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True, foreach=False)
    given = sweep(model, optimizer=opt)
    assert given.lrs == fused.lrs
    assert len(given.losses) == NUM_ITER
    torch.testing.assert_close(given.losses, fused.losses, rtol=1e-5, atol=1e-6)
    assert given.config["optimizer"] == "SGD (given)"


def test_adamw_sweep_equals_a_handwritten_adamw_loop_with_torch_defaults():
    result = sweep(mlp(), optimizer="adamw")
    model = mlp()
    expected = reference_losses(model, pairs(), torch.optim.AdamW(model.parameters(), lr=1.0, foreach=False), 1e-3, 0.5)
    torch.testing.assert_close(result.losses, expected, rtol=1e-5, atol=1e-6)
    assert (result.config["betas"], result.config["eps"], result.config["weight_decay"]) == ((0.9, 0.999), 1e-8, 1e-2)


def test_adamw_sweep_uses_the_given_betas_eps_and_weight_decay():
    result = sweep(mlp(), optimizer="adamw", betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1.0, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, foreach=False)
    torch.testing.assert_close(result.losses, reference_losses(model, pairs(), opt, 1e-3, 0.5), rtol=1e-5, atol=1e-6)


def test_instance_sweeps_every_group_keeping_the_ratios_between_groups():
    def groups(model):
        return [{"params": model[1].parameters(), "lr": 0.2}, {"params": model[3].parameters(), "lr": 0.02}]

    model = mlp()
    result = sweep(model, optimizer=torch.optim.Adam(groups(model), amsgrad=True))
    model = mlp()
    expected = reference_losses(model, pairs(), torch.optim.Adam(groups(model), amsgrad=True), 1e-3, 0.5)
    torch.testing.assert_close(result.losses, expected, rtol=1e-5, atol=1e-6)


def used_optimizer():
    """A model and an Adam over two groups that has already taken steps: state to restore."""
    model = mlp()
    opt = torch.optim.Adam([{"params": model[1].parameters()}, {"params": model[3].parameters(), "lr": 1e-4}], lr=1e-3)
    for x, y in pairs(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    return model, opt


def optimizer_fingerprint(opt):
    return copy.deepcopy(opt.state_dict())


def assert_same_optimizer(before, opt):
    after = opt.state_dict()
    assert before["param_groups"] == after["param_groups"]
    assert before["state"].keys() == after["state"].keys()
    for index, state in before["state"].items():
        assert state.keys() == after["state"][index].keys()
        for name, value in state.items():
            assert torch.equal(value, after["state"][index][name]), (index, name)
            assert value.dtype == after["state"][index][name].dtype


class FailAt:
    """cross-entropy that raises `error` at call number `at`."""

    def __init__(self, error, at):
        self.error, self.at, self.calls = error, at, 0

    def __call__(self, outputs, targets):
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return torch.nn.functional.cross_entropy(outputs, targets)


@pytest.mark.parametrize("how", ["completed", "diverged", "exception", "ctrl_c"])
def test_instance_model_rng_and_optimizer_state_are_restored_bit_for_bit(how):
    model, opt = used_optimizer()
    before, before_opt = fingerprint(model), optimizer_fingerprint(opt)
    if how in ("completed", "diverged"):
        end_lr, threshold = (1e6, 4.0) if how == "diverged" else (0.5, 1e9)
        result = range_test(model, pairs(), start_lr=1e-3, end_lr=end_lr, num_iter=40, diverge_threshold=threshold,
                            optimizer=opt, progress=False)
        assert result.end["reason"] == how
    else:
        error = Boom("loss failed") if how == "exception" else KeyboardInterrupt()
        with pytest.raises(type(error)):
            range_test(model, pairs(), FailAt(error, 6), num_iter=20, optimizer=opt, progress=False)
    assert_same(before, fingerprint(model))
    assert_same_optimizer(before_opt, opt)


def test_the_sweep_trains_with_the_optimizer_and_keeps_nothing_of_it():
    """The restore is not vacuous: the sweep does change what the restore puts back."""
    model, opt = used_optimizer()
    before_opt = optimizer_fingerprint(opt)
    seen = []
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append([g["lr"] for g in o.param_groups]))
    range_test(model, pairs(), start_lr=1e-3, end_lr=0.5, num_iter=5, optimizer=opt, progress=False,
               diverge_threshold=1e9)
    assert [lrs[0] for lrs in seen] == [ramp_lr(1e-3, 0.5, 5, "exp", i) for i in range(5)]
    assert all(lrs[1] == pytest.approx(lrs[0] * 0.1) for lrs in seen)
    assert opt.param_groups[1]["lr"] == 1e-4
    assert_same_optimizer(before_opt, opt)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(optimizer="adam"), ValueError, "optimizer must be one of 'sgd', 'adamw', 'lion'"),
        (dict(optimizer="adamw", betas=(0.9,)), ValueError, r"betas must be a pair"),
        (dict(optimizer="adamw", betas=(0.9, 1.5)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
        (dict(optimizer="adamw", eps=-1.0), ValueError, "eps must be > 0"),
        (dict(optimizer="adamw", eps=0.0), ValueError, "eps must be > 0"),
        (dict(betas=(0.9, 0.99)), ValueError, "betas applies to optimizer='adamw' / 'lion' only"),
        (dict(eps=1e-6), ValueError, "eps applies to optimizer='adamw' only"),
        (dict(optimizer="adamw", momentum=0.8), ValueError, "momentum, nesterov: they set the fused SGD sweep"),
        (dict(optimizer="adamw", nesterov=True), ValueError, "momentum, nesterov: they set the fused SGD sweep"),
    ],
)
def test_bad_optimizer_settings_are_rejected_before_the_sweep(kwargs, error, message):
    model = mlp()
    before = fingerprint(model)
    with pytest.raises(error, match=message):
        sweep(model, **kwargs)
    assert_same(before, fingerprint(model))


def test_an_optimizer_over_other_parameters_is_rejected():
    model, other = mlp(), mlp()
    before = fingerprint(model)
    opt = torch.optim.SGD([{"params": model.parameters()}, {"params": other[1].parameters()}], lr=0.1)
    with pytest.raises(ValueError, match="optimizer: param group 1 holds parameters that are not the model's"):
        sweep(model, optimizer=opt)
    assert_same(before, fingerprint(model))


def test_an_instance_with_settings_of_its_own_or_a_zero_first_lr_is_rejected():
    model = mlp()
    with pytest.raises(ValueError, match="weight_decay: an optimizer instance sweeps with its own hyperparameters"):
        sweep(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), weight_decay=0.1)
    with pytest.raises(ValueError, match="the first param group's lr must be > 0"):
        sweep(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.0))


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizer="instance"), "optimizer: the batched grid trains one of lrfused's fused families"),
    (dict(batch_loss=lambda model, batch: 0, precision="bf16"), "batch_loss, precision: the batched grid trains in fp32"),
    (dict(accumulation_steps=2, val_data=[]), "accumulation_steps, val_data: the batched grid trains in fp32"),
])
def test_the_batched_grid_refuses_what_it_cannot_train(kwargs, message):
    model = mlp()
    if kwargs.get("optimizer") == "instance":
        kwargs = {**kwargs, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}
    with pytest.raises(ValueError, match=message):
        range_test_grid(model, pairs(), batched=True, progress=False, **kwargs)
    for family in ("sgd", "adamw", "lion"):  # every family's fp32 sweep batches
        grid = range_test_grid(model, pairs(), batched=True, progress=False, optimizer=family, precision="fp32", num_iter=3)
        assert grid.path == "batched_vmap"


@pytest.mark.parametrize("make", [
    lambda params: lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10),
    lambda params: lrfused.FusedCyclicSGD(params, base_lr=0.01, max_lr=0.1, step_size_up=2),
], ids=["one_cycle", "cyclic"])
def test_an_instance_whose_schedule_sets_the_lr_is_rejected(make):
    """Its kernel computes the LR itself: writing group['lr'] would sweep nothing."""
    model = mlp()
    before = fingerprint(model)
    with pytest.raises(ValueError, match="optimizer: Fused.*SGD computes its own LR from its schedule"):
        sweep(model, optimizer=make(model.parameters()))
    assert_same(before, fingerprint(model))


def test_a_constant_fused_sgd_instance_sweeps_like_torch_sgd():
    model, twin = mlp(), mlp()
    fused = sweep(model, optimizer=lrfused.FusedSGD(model.parameters(), lr=0.1, momentum=0.9))
    torch_sgd = sweep(twin, optimizer=torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, foreach=False))
    assert fused.losses == pytest.approx(torch_sgd.losses, rel=1e-5)
    assert fused.config["momentum"] is None  # the instance's own momentum, not range_test's


def test_an_instance_tensor_lr_is_restored_in_place():
    """The caller's lr tensor (which a captured CUDA graph would read) gets its value back and stays
    the group's lr: load_state_dict alone would leave it at the sweep's last LR, replaced by a copy."""
    model = mlp()
    lr = torch.tensor(1e-3)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sweep(model, optimizer=opt)
    assert opt.param_groups[0]["lr"] is lr
    assert lr.item() == pytest.approx(1e-3)


def test_the_auto_grid_falls_back_to_sequential_for_what_batching_cannot_train(monkeypatch):
    """batched="auto" batches on CUDA; with settings the batched grid cannot train it runs the sweeps
    one after another (and says why) instead of refusing."""
    from lrfused.find import grid

    monkeypatch.setattr(grid, "_batches_by_default", lambda model: True)
    result = range_test_grid(mlp(), pairs(), momenta=(0.9,), progress=False, optimizer="adamw", num_iter=3,
                             accumulation_steps=2)
    assert result.path == "sequential"
    assert result.fallback_reason.startswith("accumulation_steps: the batched grid trains in fp32")

"""The LR range test API: the sweep's LRs, how it ends, and the exact restore of everything it touches."""
import math
import random

import numpy as np
import pytest
import torch

import lrfused
from lrfused.find import range_test
from lrfused.find.builtin import digits_cnn, digits_loader
from lrfused.ramp import ramp_lr


def bn_model():
    """A model with buffers (BatchNorm running stats) and dropout (consumes the RNG)."""
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
        torch.nn.Dropout(0.2), torch.nn.Linear(32, 10),
    )


def fingerprint(model):
    """Everything the range test must leave as it was."""
    return {
        "tensors": [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state()[1].copy(),
    }


def assert_same(before, after):
    assert len(before["tensors"]) == len(after["tensors"])
    for a, b in zip(before["tensors"], after["tensors"]):
        assert torch.equal(a, b)
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert before["modes"] == after["modes"]
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert before["python_rng"] == after["python_rng"]
    assert np.array_equal(before["numpy_rng"], after["numpy_rng"])


def prepared_model():
    torch.manual_seed(0)
    model = bn_model()
    model.eval()  # a mode the sweep changes
    model[1].weight.grad = torch.ones_like(model[1].weight)  # a grad the sweep overwrites
    return model


def test_completed_sweep_restores_everything_and_hits_both_ends_exactly():
    model = prepared_model()
    before = fingerprint(model)
    result = range_test(model, digits_loader(), start_lr=1e-4, end_lr=0.5, num_iter=25, progress=False)
    assert_same(before, fingerprint(model))
    assert result.end["reason"] == "completed"
    assert len(result.lrs) == 25
    assert result.lrs[0] == 1e-4 and result.lrs[-1] == 0.5
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))  # geometric
    assert result.recommendation["max_lr"] == pytest.approx(result.recommendation["lr_at_minimum"] / 3)


def test_linear_mode_lrs():
    result = range_test(prepared_model(), digits_loader(), start_lr=0.01, end_lr=0.2, num_iter=11, mode="linear", progress=False)
    assert result.lrs[0] == 0.01 and result.lrs[-1] == 0.2
    assert result.lrs[5] == pytest.approx(0.105)


def test_diverged_sweep_stops_and_restores():
    model = prepared_model()
    before = fingerprint(model)
    result = range_test(model, digits_loader(), start_lr=1e-2, end_lr=1e6, num_iter=60, progress=False)
    assert_same(before, fingerprint(model))
    assert result.end["reason"] == "diverged"
    assert result.end["step"] == len(result.lrs) - 1 < 59


class Boom(Exception):
    pass


class FailingModel(torch.nn.Module):
    """Raises `error` from its forward at call number `at`."""

    def __init__(self, error, at):
        super().__init__()
        self.inner, self.error, self.at, self.calls = bn_model(), error, at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return self.inner(x)


@pytest.mark.parametrize("error", [Boom("model failed"), KeyboardInterrupt()], ids=["exception", "ctrl_c"])
def test_interrupted_sweep_restores(error):
    torch.manual_seed(0)
    model = FailingModel(error, at=6)
    before = fingerprint(model)
    with pytest.raises(type(error)):
        range_test(model, digits_loader(), num_iter=20, progress=False)
    assert_same(before, fingerprint(model))


def test_failing_data_restores():
    model = prepared_model()
    before = fingerprint(model)

    def batches():
        yield from list(digits_loader())[:4]
        raise Boom("data failed")

    with pytest.raises(Boom):
        range_test(model, batches(), num_iter=20, progress=False)
    assert_same(before, fingerprint(model))


def test_short_data_is_cycled_and_one_shot_data_runs_out():
    batches = list(digits_loader())[:3]
    cycled = range_test(prepared_model(), batches, start_lr=1e-4, end_lr=1e-2, num_iter=10, progress=False)
    assert cycled.end == {"reason": "completed", "step": None, "passes": 4}
    one_shot = range_test(prepared_model(), iter(batches), start_lr=1e-4, end_lr=1e-2, num_iter=10, progress=False)
    assert one_shot.end["reason"] == "out_of_data" and len(one_shot.lrs) == 3


def test_loss_nan_from_the_first_step_gives_no_recommendation():
    model = prepared_model()
    result = range_test(model, digits_loader(), loss_fn=lambda out, y: out.sum() * math.nan, num_iter=10, progress=False)
    assert result.end["reason"] == "diverged" and result.end["step"] == 0
    assert result.recommendation is None
    assert all(v is None for v in result.suggestions.values())


def test_negative_losses_do_not_count_as_divergence():
    """A loss shifted by -100 (always negative) gives the same sweep as the loss itself."""
    kwargs = dict(start_lr=1e-4, end_lr=1.0, num_iter=30, progress=False)
    plain = range_test(prepared_model(), digits_loader(), **kwargs)
    ce = torch.nn.CrossEntropyLoss()
    shifted = range_test(prepared_model(), digits_loader(), loss_fn=lambda out, y: ce(out, y) - 100.0, **kwargs)
    assert plain.end["reason"] == shifted.end["reason"] == "completed"
    assert [round(l + 100.0, 3) for l in shifted.losses] == [round(l, 3) for l in plain.losses]


def test_ramp_optimizer_applies_the_documented_lr_at_every_step():
    """The kernel's LR, read back from a float64 probe (grad 1, no momentum: param = -lr)."""
    probe = torch.zeros(1, dtype=torch.float64)
    opt = lrfused.FusedRampSGD([probe], start_lr=1e-5, end_lr=3.0, num_iter=17, momentum=0.0)
    for step in range(20):
        with torch.no_grad():
            probe.zero_()
        probe.grad = torch.ones_like(probe)
        opt.step()
        want = 1e-5 * (3.0 / 1e-5) ** (min(step, 16) / 16)
        assert -probe.item() == ramp_lr(1e-5, 3.0, 17, "exp", step)
        assert -probe.item() == pytest.approx(want, rel=1e-12)
    assert ramp_lr(1e-5, 3.0, 17, "exp", 0) == 1e-5 and ramp_lr(1e-5, 3.0, 17, "exp", 16) == 3.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(start_lr=0.0), ValueError, "start_lr must be > 0.0"),
        (dict(start_lr=1.0, end_lr=0.5), ValueError, "end_lr must be greater than start_lr"),
        (dict(num_iter=1), ValueError, "num_iter must be >= 2, got 1"),
        (dict(mode="log"), ValueError, "mode must be one of 'exp', 'linear'"),
        (dict(smooth=1.0), ValueError, "smooth must be <= 0.999999"),
        (dict(diverge_threshold=1.0), ValueError, "diverge_threshold must be > 1.0"),
        (dict(loss_fn="mse"), TypeError, "loss_fn must be callable"),
        (dict(data=5), TypeError, "data must be an iterable of \\(inputs, targets\\) batches, got int"),
        (dict(model="net"), TypeError, "model must be a torch.nn.Module, got str"),
        (dict(momentum=-0.5), ValueError, "momentum must be >= 0.0"),
        (dict(weight_decay=math.nan), ValueError, "weight_decay must be finite"),
        (dict(check_every=0), ValueError, "check_every must be >= 1"),
        (dict(cuda_graph="yes"), TypeError, "cuda_graph must be a bool"),
    ],
)
def test_bad_arguments_are_rejected_before_the_sweep(kwargs, error, message):
    model = prepared_model()
    before = fingerprint(model)
    args = {"model": model, "data": digits_loader(), **kwargs}
    with pytest.raises(error, match=message):
        range_test(args.pop("model"), args.pop("data"), progress=False, **args)
    assert_same(before, fingerprint(model))


def test_result_plot_and_json(tmp_path):
    result = range_test(digits_cnn(), digits_loader(), start_lr=1e-4, end_lr=1.0, num_iter=20, progress=False)
    path = tmp_path / "curve.png"
    result.plot(path)
    assert path.stat().st_size > 10_000
    data = result.to_dict()
    assert len(data["steps"]) == 20 and set(data["steps"][0]) == {"step", "lr", "loss", "smoothed_loss"}
    assert "sweep_s" in data["timings"] and data["path"] == "eager"

"""range_test(val_data=, val_every=): the loss on validation data every val_every steps, equal to the
hand-written loop's, plotted, in the JSON, and read for the suggestions."""
import json

import pytest
import torch
from sweep_fixtures import pairs
from test_find import assert_same, fingerprint

import lrfused
from lrfused.find import analysis, range_test
from lrfused.ramp import ramp_lr

NUM_ITER, START, END = 12, 1e-3, 0.5


def bn_mlp():  # BatchNorm: eval mode (running stats) differs from train mode
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 10))


def sweep(model, **kwargs):
    return range_test(model, pairs(5, seed=1), start_lr=START, end_lr=END, num_iter=NUM_ITER, progress=False,
                      diverge_threshold=1e9, optimizer="adamw", **kwargs)


@pytest.mark.parametrize("val_every", [1, 4])
def test_validation_losses_equal_the_handwritten_loop(val_every):
    model = bn_mlp()
    model.eval()
    before = fingerprint(model)
    result = sweep(model, val_data=pairs(3, seed=2), val_every=val_every)
    assert_same(before, fingerprint(model))

    model = bn_mlp()
    # The sweep's own optimizer with the LR written per step, so that the losses are bit-comparable
    # (lrfused's AdamW against torch's: tests/test_fused_adamw.py).
    opt = lrfused.FusedAdamW(model.parameters(), lr=1.0)
    data, val, expected, steps = pairs(5, seed=1), pairs(3, seed=2), [], []
    for step in range(NUM_ITER):
        model.train()
        opt.param_groups[0]["lr"] = ramp_lr(START, END, NUM_ITER, "exp", step)
        opt.zero_grad()
        x, y = data[step % len(data)]
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if (step + 1) % val_every == 0:
            model.eval()
            with torch.no_grad():
                losses = [torch.nn.functional.cross_entropy(model(vx), vy) for vx, vy in val]
            expected.append(sum(losses).item() / len(losses))
            steps.append(step)
    assert result.val_lrs == [ramp_lr(START, END, NUM_ITER, "exp", i) for i in steps]
    torch.testing.assert_close(result.val_losses, expected, rtol=1e-5, atol=1e-6)


def test_the_suggestions_read_the_validation_curve_and_it_is_plotted_and_saved(tmp_path):
    result = sweep(bn_mlp(), val_data=pairs(3, seed=2))
    assert result.suggestions == analysis.suggest(result.val_lrs, analysis.smooth(result.val_losses, 0.95))
    assert result.suggestions != analysis.suggest(result.lrs, result.smoothed)  # (so the check above can fail)
    rows = json.loads(result.to_json())["validation"]
    assert [row["lr"] for row in rows] == result.val_lrs and [row["loss"] for row in rows] == result.val_losses
    ax = result.plot(tmp_path / "plot.png")
    assert "validation loss" in [line.get_label() for line in ax.get_lines()]
    assert (tmp_path / "plot.png").stat().st_size > 0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(val_data=iter(pairs(2, seed=2))), TypeError, "val_data must be re-iterable batches .* got list_iterator"),
        (dict(val_data=5), TypeError, "val_data must be re-iterable batches .* got int"),
        (dict(val_data=pairs(2, seed=2), val_every=0), ValueError, "val_every must be >= 1, got 0"),
        (dict(val_data=[]), ValueError, "val_data: no batches"),
    ],
)
def test_bad_validation_settings_are_rejected_with_the_model_untouched(kwargs, error, message):
    model = bn_mlp()
    before = fingerprint(model)
    with pytest.raises(error, match=message):
        sweep(model, **kwargs)
    assert_same(before, fingerprint(model))

"""What is Lion's own: its update written out by hand, its defaults, and the range test's
optimizer="lion" (the sweep against a hand-written loop, the recommended calls, --then-train). The
concerns every family shares (numerics on every schedule and dtype, GradScaler, compile, state dicts,
bad input, graphs) run for Lion through tests/families.py."""
import pytest
import torch
from reference.lion import ReferenceLion
from sweep_fixtures import SETTINGS, mlp, pairs
from test_find_optimizers import reference_losses

import lrfused
from lrfused.find import range_test
from lrfused.find.__main__ import main


def test_one_step_is_the_papers_update():
    """p *= 1 - lr * wd; p -= lr * sign(beta1 * m + (1 - beta1) * g); m = beta2 * m + (1 - beta2) * g,
    from m = 0, in float64 by hand (0.5 is exact in binary: every value below is)."""
    param = torch.tensor([1.0, -2.0, 0.5, 4.0], dtype=torch.float64, requires_grad=True)
    opt = lrfused.FusedLion([param], lr=0.5, betas=(0.5, 0.75), weight_decay=0.5)
    param.grad = torch.tensor([2.0, -1.0, 0.0, -4.0], dtype=torch.float64)
    opt.step()
    # decay by 1 - 0.25 = 0.75, then -0.5 * sign(0.5 * g): sign(g) = (1, -1, 0, -1)
    assert param.tolist() == [0.75 - 0.5, -1.5 + 0.5, 0.375, 3.0 + 0.5]
    assert opt.state[param]["exp_avg"].tolist() == [0.5, -0.25, 0.0, -1.0]  # (1 - 0.75) * g
    param.grad = torch.tensor([-0.25, -1.0, 1.0, 8.0], dtype=torch.float64)
    opt.step()
    # sign(0.5 * m + 0.5 * g): sign(0.25 - 0.125, -0.125 - 0.5, 0.5, -0.5 + 4) = (1, -1, 1, 1)
    assert param.tolist() == [0.1875 - 0.5, -0.75 + 0.5, 0.28125 - 0.5, 2.625 - 0.5]
    assert opt.state[param]["exp_avg"].tolist() == [0.3125, -0.4375, 0.25, 1.25]  # 0.75 * m + 0.25 * g
    assert set(opt.state[param]) == {"exp_avg"}  # no per-param count: Lion has no bias correction


def test_defaults_are_the_papers_and_the_drop_in_cycles_beta1():
    opt = lrfused.FusedLion([torch.zeros(3, requires_grad=True)])
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["maximize"]) == (1e-4, (0.9, 0.99), 0.0, False)
    one_cycle = lrfused.FusedOneCycleLion([torch.zeros(3, requires_grad=True)], max_lr=1e-3, total_steps=10)
    assert one_cycle.param_groups[0]["betas"] == (0.95, 0.99)  # max_momentum first, as OneCycleLR shows it


def sweep(model, **kwargs):
    return range_test(model, pairs(), **{**SETTINGS, "num_iter": 24, "end_lr": 0.05, **kwargs})


def test_the_lion_sweep_equals_a_handwritten_lion_loop():
    result = sweep(mlp(), optimizer="lion", betas=(0.8, 0.95), weight_decay=0.1)
    model = mlp()
    opt = ReferenceLion(model.parameters(), lr=1.0, betas=(0.8, 0.95), weight_decay=0.1)
    torch.testing.assert_close(result.losses, reference_losses(model, pairs(), opt, 1e-3, 0.05, num_iter=24))
    assert (result.config["optimizer"], result.config["betas"], result.config["weight_decay"]) == ("lion", (0.8, 0.95), 0.1)
    default = sweep(mlp(), optimizer="lion")
    assert (default.config["betas"], default.config["weight_decay"]) == ((0.9, 0.99), 0.0)


def test_the_lion_recommendation_runs_as_printed():
    result = sweep(mlp(), optimizer="lion", betas=(0.8, 0.95), weight_decay=0.1)
    call = result.recommendation["one_cycle"]
    assert call.startswith("lrfused.FusedOneCycleLion(model.parameters(), max_lr=")
    opt = eval(call, {"lrfused": lrfused, "model": mlp(), "loader": pairs(), "epochs": 2})
    assert isinstance(opt, lrfused.FusedOneCycleLion)
    assert (opt.param_groups[0]["betas"][1], opt.param_groups[0]["weight_decay"]) == (0.95, 0.1)
    assert "FusedLion(model.parameters(), schedule=lrfused.schedules.Cyclic(" in result.recommendation["cyclic"]


def test_lion_refuses_the_settings_of_other_families():
    with pytest.raises(ValueError, match="eps applies to optimizer='adamw' only, got eps=1e-06 with optimizer='lion'"):
        sweep(mlp(), optimizer="lion", eps=1e-6)
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \[0, 1\)"):
        sweep(mlp(), optimizer="lion", betas=(1.0, 0.99))


def test_the_cli_sweeps_lion_and_trains_its_recommendation(tmp_path, capsys):
    argv = ["--num-iter", "20", "--no-progress", "--out", str(tmp_path), "--optimizer", "lion", "--then-train", "1"]
    assert main(argv) == 0
    assert "training 1 epochs with FusedOneCycleLion(max_lr=" in capsys.readouterr().out

"""The range test's family registry (lrfused.find.families): a family added as one entry is swept,
checked, recommended, gridded and offered by the CLI, with nothing else to edit."""
import pytest
import torch

import lrfused
from lrfused.find import families, range_test
from lrfused.find.__main__ import main
from lrfused.find.grid import range_test_grid
from sweep_fixtures import SETTINGS, mlp, pairs

# plain SGD (no momentum) as a family of its own: only the 1cycle drop-in, so its cyclical and
# warm-restart calls are the optimizer on lrfused.schedules
PLAIN = families.Family(name="plain", title="plain SGD", optimizer=lrfused.FusedSGD, settings={"weight_decay": 0.0},
                        drop_ins={"one_cycle": lrfused.FusedOneCycleSGD}, carried=("weight_decay",),
                        checked=("weight_decay",))


@pytest.fixture
def plain(monkeypatch):
    monkeypatch.setitem(families.FAMILIES, PLAIN.name, PLAIN)


def test_a_registered_family_sweeps_and_recommends_its_calls(plain):
    result = range_test(mlp(), pairs(), optimizer="plain", weight_decay=0.1, **SETTINGS)
    config = result.config
    assert (config["optimizer"], config["weight_decay"], config["momentum"], config["betas"]) == ("plain", 0.1, None, None)
    model = mlp()
    torch_opt = torch.optim.SGD(model.parameters(), lr=1.0, weight_decay=0.1, foreach=False)
    assert result.losses == range_test(model, pairs(), optimizer=torch_opt, **SETTINGS).losses  # (momentum 0)
    r = result.recommendation
    assert r["one_cycle"].startswith(f"lrfused.FusedOneCycleSGD(model.parameters(), max_lr={r['max_lr']:.3g}, ")
    assert r["cyclic"].startswith("lrfused.FusedSGD(model.parameters(), schedule=lrfused.schedules.Cyclic(base_lr=")
    assert r["warm_restarts"].startswith("lrfused.FusedSGD(model.parameters(), schedule=lrfused.schedules.WarmRestarts(")
    for call in ("one_cycle", "cyclic", "warm_restarts"):  # each runs as printed, with the sweep's weight decay
        assert r[call].endswith(", weight_decay=0.1)"), call
        opt = eval(r[call], {"lrfused": lrfused, "model": mlp(), "loader": pairs(), "epochs": 2})
        assert isinstance(opt, lrfused.FusedSGD) and opt.param_groups[0]["weight_decay"] == 0.1, call
    default = range_test(mlp(), pairs(), optimizer="plain", **SETTINGS)
    assert default.config["weight_decay"] == 0.0 and "weight_decay" not in default.recommendation["one_cycle"]


def test_a_registered_family_refuses_what_it_does_not_take(plain):
    with pytest.raises(ValueError, match=r"momentum, nesterov: they set the fused SGD sweep \(optimizer='sgd'\); "
                                         r"got momentum=0.5, nesterov=False with optimizer=plain"):
        range_test(mlp(), pairs(), optimizer="plain", momentum=0.5, **SETTINGS)
    with pytest.raises(ValueError, match="eps applies to optimizer='adamw' only, got eps=1e-06 with optimizer='plain'"):
        range_test(mlp(), pairs(), optimizer="plain", eps=1e-6, **SETTINGS)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):  # (checked before anything runs)
        range_test(mlp(), pairs(), optimizer="plain", weight_decay=-1.0, **SETTINGS)
    with pytest.raises(ValueError, match="with optimizer=plain vary weight_decays only"):  # no momentum axis
        range_test_grid(mlp(), pairs(), weight_decays=[0.0], momenta=[0.8, 0.9], optimizer="plain", **SETTINGS)
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adamw', 'lion', 'plain' or"):
        range_test(mlp(), pairs(), optimizer="plainer", **SETTINGS)


def test_a_registered_family_grids_and_trains_from_the_cli(plain, tmp_path, capsys):
    grid = range_test_grid(mlp(), pairs(), weight_decays=[0.0, 0.01], optimizer="plain", **SETTINGS)
    assert grid.call().startswith("lrfused.FusedOneCycleSGD(") and "momentum" not in grid.call()
    argv = ["--num-iter", "20", "--no-progress", "--out", str(tmp_path), "--optimizer", "plain", "--then-train", "1"]
    assert main(argv) == 0
    assert "training 1 epochs with FusedOneCycleSGD(max_lr=" in capsys.readouterr().out

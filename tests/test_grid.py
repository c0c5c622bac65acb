"""Range tests over a grid of weight decays and momenta."""
import json

import pytest
import torch

from lrfused.find import range_test
from lrfused.find.__main__ import main
from lrfused.find.builtin import digits_cnn, digits_loader
from lrfused.find.families import FAMILIES
from lrfused.find.grid import range_test_grid

SWEEP = dict(start_lr=1e-4, end_lr=3.0, num_iter=25, progress=False)


def test_each_sweep_starts_from_the_same_weights_and_data_order():
    torch.manual_seed(0)
    model = digits_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    grid = range_test_grid(model, digits_loader, weight_decays=[0.0, 1e-3], momenta=[0.8, 0.95], **SWEEP)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert [(r["weight_decay"], r["momentum"]) for r in grid.runs] == [(0.0, 0.8), (0.0, 0.95), (1e-3, 0.8), (1e-3, 0.95)]
    alone = range_test(model, digits_loader(), weight_decay=1e-3, momentum=0.95, **SWEEP)
    assert grid.runs[3]["result"].losses == alone.losses


def test_ranking_prefers_the_lowest_loss_then_the_largest_lr():
    torch.manual_seed(0)
    grid = range_test_grid(digits_cnn(), digits_loader, weight_decays=[0.0], momenta=[0.5, 0.9, 0.99], **SWEEP)
    lows = [row["lowest_loss"] for row in grid.ranking]
    assert lows == sorted(lows)
    best = grid.best
    assert f"max_lr={best['max_lr']:.3g}" in grid.call() and f"max_momentum={best['momentum']:g}" in grid.call()
    data = json.loads(grid.to_json())
    assert len(data["runs"]) == 3 and len(data["runs"][0]["steps"]) == 25


def test_an_adamw_grid_recommends_and_trains_the_fused_adamw(tmp_path, capsys):
    """The grid's call names the optimizer its sweeps trained, runs as printed, and --then-train
    trains it with the best weight decay (beta1 is not a grid axis)."""
    import lrfused

    torch.manual_seed(0)
    grid = range_test_grid(digits_cnn(), digits_loader, weight_decays=[0.0, 1e-2], optimizer="adamw", **SWEEP)
    call = grid.call()
    assert call.startswith("lrfused.FusedOneCycleAdamW(") and "momentum" not in call
    model, loader, epochs = digits_cnn(), digits_loader(), 1
    opt = eval(call, {"lrfused": lrfused, "model": model, "loader": loader, "epochs": epochs})
    assert opt.param_groups[0]["weight_decay"] == grid.best["weight_decay"]
    argv = ["--num-iter", "10", "--end-lr", "1", "--out", str(tmp_path), "--optimizer", "adamw",
            "--weight-decay", "0,0.01", "--then-train", "1", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "training 1 epochs with FusedOneCycleAdamW(" in printed and "momentum" not in printed.split("training")[1]


def test_an_adamw_grid_refuses_a_momentum_list_before_the_first_sweep():
    started = []
    with pytest.raises(ValueError, match=r"momenta: .* vary weight_decays only"):
        range_test_grid(digits_cnn(), digits_loader, momenta=[0.9, 0.95], optimizer="adamw",
                        on_start=lambda *args: started.append(args), **SWEEP)
    assert started == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(weight_decays=[]), ValueError, "weight_decays is empty"),
        (dict(momenta=[0.9, 1.0]), ValueError, "momenta value must be <= 0.999999, got 1.0"),
        (dict(weight_decays=[-1e-4]), ValueError, "weight_decays value must be >= 0.0"),
        (dict(momenta=[0.9, 0.9]), ValueError, "momenta has repeated values"),
        (dict(momenta="0.9"), TypeError, "momenta must be a list of numbers, got str"),
        (dict(weight_decays=[0, 1e-5, 1e-4, 1e-3, 1e-2], momenta=[0.8, 0.85, 0.9, 0.95]), ValueError,
         "the grid has 20 combinations, more than 16: raise max_combinations"),
    ],
)
def test_bad_grids_run_nothing(kwargs, error, message):
    model = digits_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error, match=message):
        range_test_grid(model, digits_loader, **kwargs, **SWEEP)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cli_grid(tmp_path, capsys):
    argv = ["--num-iter", "20", "--no-progress", "--out", str(tmp_path), "--weight-decay", "0,1e-3", "--momentum", "0.9,0.95"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "LR range tests over 4 combinations" in printed and "recommended: lrfused.FusedOneCycleSGD(" in printed
    data = json.loads((tmp_path / "lr_find_grid.json").read_text())
    assert len(data["runs"]) == 4 and data["best"] == data["ranking"][0]
    assert (tmp_path / "lr_find_grid.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--weight-decay", "1e-4,abc"], "expected a number or a comma-separated list of numbers, got '1e-4,abc'"),
        (["--momentum", "0.9,1.2"], "--momentum value must be <= 0.999999, got 1.2"),
        (["--weight-decay=-1e-4,0"], "--weight-decay value must be >= 0.0"),
        (["--weight-decay", "0,1,2,3,4", "--momentum", "0.5,0.6,0.7,0.8"], "20 combinations, more than 16: pass --yes"),
    ],
)
def test_cli_bad_grids_exit_2(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-progress", "--out", str(tmp_path)] + argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "lr_find_grid.json").exists()


def _bn_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                               torch.nn.Dropout(0.1), torch.nn.Linear(32, 10))


@pytest.mark.parametrize("make_model", [digits_cnn, _bn_mlp], ids=["cnn", "batchnorm_dropout_mlp"])
def test_batched_grid_equals_the_sequential_one(make_model):
    """One vmap over stacked copies and one fused step for all: the same curves as sweeping the
    combinations one by one (to float rounding: vmap batches the convolutions), the same ends, the
    model and RNG untouched."""
    torch.manual_seed(0)
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grid_args = dict(weight_decays=[0.0, 1e-2], momenta=[0.5, 0.95], **{**SWEEP, "end_lr": 10.0, "num_iter": 40})
    torch.manual_seed(5)
    sequential = range_test_grid(model, digits_loader, batched=False, **grid_args)
    rng = torch.get_rng_state()
    batched = range_test_grid(model, digits_loader, batched=True, **grid_args)
    assert torch.equal(torch.get_rng_state(), rng)
    assert batched.path == "batched_vmap" and sequential.path == "sequential"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for seq, bat in zip(sequential.runs, batched.runs):
        s, b = seq["result"], bat["result"]
        assert s.end == b.end
        assert len(s.losses) == len(b.losses)
        # measured: at most 4e-6 relative (the batched convolutions round differently)
        torch.testing.assert_close(torch.tensor(b.losses), torch.tensor(s.losses), rtol=2e-5, atol=0)
    assert [r["weight_decay"] for r in batched.ranking] == [r["weight_decay"] for r in sequential.ranking]
    assert [r["momentum"] for r in batched.ranking] == [r["momentum"] for r in sequential.ranking]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_batched_grid_of_every_family_equals_the_sequential_one(family):
    """Every family's grid batches: one fused step of the family for all copies, each combination's
    group with its weight decay (and momentum where the family's grid varies it), the family's other
    settings (non-default betas) in every group; the curves and the printed call as sequential sweeps."""
    axes = FAMILIES[family].grid_axes
    settings = {"betas": (0.8, 0.95)} if "betas" in FAMILIES[family].settings else {"nesterov": True}
    grid_args = dict(weight_decays=[0.0, 1e-2], momenta=[0.5, 0.95] if "momentum" in axes else [0.9],
                     optimizer=family, **settings, **{**SWEEP, "end_lr": 1.0, "num_iter": 30})
    model = _bn_mlp()
    torch.manual_seed(5)
    sequential = range_test_grid(model, digits_loader, batched=False, **grid_args)
    batched = range_test_grid(model, digits_loader, batched=True, **grid_args)
    assert batched.path == "batched_vmap", batched.fallback_reason
    for seq, bat in zip(sequential.runs, batched.runs, strict=True):
        assert seq["result"].end == bat["result"].end
        torch.testing.assert_close(torch.tensor(bat["result"].losses), torch.tensor(seq["result"].losses), rtol=2e-5, atol=0)
        assert bat["result"].config == seq["result"].config
    assert batched.call() == sequential.call()
    assert batched.call().startswith(f"lrfused.{FAMILIES[family].one_cycle.__name__}(")


@pytest.mark.parametrize("name, axis", [("weight_decay", "weight_decays"), ("momentum", "momenta")])
def test_a_grid_axis_given_as_a_single_setting_is_refused(name, axis):
    with pytest.raises(TypeError, match=f"{name}: the grid sweeps one value per combination; give the values as {axis}"):
        range_test_grid(digits_cnn(), digits_loader, **{name: 0.5}, **SWEEP)


class _ItemInForward(torch.nn.Module):
    """A data-dependent branch on .item(): vmap cannot batch it."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def forward(self, x):
        out = self.net(x)
        return out * 2 if out.sum().item() > 1e9 else out


def test_batched_grid_falls_back_to_sequential_with_a_reason():
    torch.manual_seed(0)
    model = _ItemInForward()
    before = [p.detach().clone() for p in model.parameters()]
    grid = range_test_grid(model, digits_loader, weight_decays=[0.0, 1e-3], momenta=[0.9], batched=True, **SWEEP)
    assert grid.path == "sequential" and ".item()" in grid.fallback_reason
    assert all(len(r["result"].losses) == SWEEP["num_iter"] for r in grid.runs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_batched_must_be_a_known_choice():
    with pytest.raises(ValueError, match="batched must be True, False or 'auto', got 'yes'"):
        range_test_grid(digits_cnn(), digits_loader, batched="yes", **SWEEP)


def test_cli_batched_grid(tmp_path, capsys):
    argv = ["--num-iter", "15", "--no-progress", "--out", str(tmp_path), "--weight-decay", "0,1e-3", "--batched", "yes"]
    assert main(argv) == 0
    assert "(as one batched computation)" in capsys.readouterr().out
    assert json.loads((tmp_path / "lr_find_grid.json").read_text())["path"] == "batched_vmap"


def test_batched_grid_refuses_optimizers_to_restore():
    model = digits_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizers: the batched grid does not train the model itself"):
        range_test_grid(model, digits_loader, batched=True, optimizers=[opt], **SWEEP)

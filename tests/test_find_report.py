"""What a sweep reports says how it trained (optimizer, precision, accumulation) and recommends calls
for the optimizer it swept; the CLI's --optimizer, --precision, --accumulation-steps, --batch-loss."""
import json
import re

import pytest
import torch

import lrfused
from sweep_fixtures import SETTINGS, mlp, pairs

from lrfused.find import range_test
from lrfused.find.__main__ import main

FAST = ["--num-iter", "8", "--no-progress"]


def dict_data():
    """--data for the CLI: mapping batches."""
    return [{"x": x, "y": y} for x, y in pairs()]


def dict_batch_loss(model, batch):
    """--batch-loss for the CLI."""
    return torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])


def test_the_recommendation_matches_the_optimizer():
    sgd = range_test(mlp(), pairs(), **SETTINGS).recommendation
    assert sgd["one_cycle"].startswith("lrfused.FusedOneCycleSGD(")
    adamw = range_test(mlp(), pairs(), optimizer="adamw", **SETTINGS).recommendation
    assert adamw["one_cycle"].startswith(f"lrfused.FusedOneCycleAdamW(model.parameters(), max_lr={adamw['max_lr']:.3g}, ")
    assert f"Cyclic(base_lr={adamw['base_lr']:.3g}, max_lr={adamw['max_lr']:.3g}, " in adamw["cyclic"]
    model, loader, epochs = mlp(), pairs(), 2
    for call in ("one_cycle", "cyclic", "warm_restarts"):  # each call runs as printed, and is AdamW
        assert "SGD" not in adamw[call]
        opt = eval(adamw[call], {"lrfused": lrfused, "model": model, "loader": loader, "epochs": epochs})
        assert isinstance(opt, lrfused.FusedAdamW), call
        assert opt.param_groups[0].get("max_lr", opt.param_groups[0]["lr"]) == float(f"{adamw['max_lr']:.3g}")
    # The sweep's own settings travel with the calls where they are not torch's defaults.
    tuned = range_test(mlp(), pairs(), optimizer="adamw", weight_decay=0.3, betas=(0.8, 0.99), **SETTINGS).recommendation
    for call in ("one_cycle", "cyclic", "warm_restarts"):
        group = eval(tuned[call], {"lrfused": lrfused, "model": model, "loader": loader, "epochs": epochs}).param_groups[0]
        assert (group["weight_decay"], group["betas"][1], group["eps"]) == (0.3, 0.99, 1e-8), call
        assert ", eps=" not in tuned[call]  # (the default is left out)
    # And the SGD sweep's weight decay and nesterov with the SGD drop-ins.
    tuned = range_test(mlp(), pairs(), weight_decay=5e-4, nesterov=True, **SETTINGS).recommendation
    for call in ("one_cycle", "cyclic", "warm_restarts"):
        group = eval(tuned[call], {"lrfused": lrfused, "model": model, "loader": loader, "epochs": epochs}).param_groups[0]
        assert (group["weight_decay"], group["nesterov"]) == (5e-4, True), call
    model = mlp()
    given = range_test(model, pairs(), optimizer=torch.optim.RMSprop(model.parameters(), lr=0.1), **SETTINGS)
    assert given.recommendation["one_cycle"].startswith("opt = your RMSprop (first group's lr")
    assert "lrfused.Fused" not in given.summary()


@pytest.mark.parametrize("settings", [dict(weight_decay=5e-4, nesterov=True),
                                      dict(optimizer="adamw", weight_decay=0.3, betas=(0.8, 0.99), eps=1e-6)],
                         ids=["sgd", "adamw"])
def test_then_train_builds_the_printed_one_cycle_call(settings):
    """--then-train's optimizer is the recommended 1cycle call, built from the keyword arguments it
    was written from: the same class and group settings as the printed text evaluated."""
    result = range_test(mlp(), pairs(), **settings, **SETTINGS)
    model, loader, epochs = mlp(), pairs(), 2
    printed = eval(result.recommendation["one_cycle"], {"lrfused": lrfused, "model": model, "loader": loader, "epochs": epochs})
    built = result.one_cycle.one_cycle_optimizer(model.parameters(), epochs, len(loader))
    assert type(built) is type(printed)
    unrounded = {"max_lr", "initial_lr", "min_lr", "lr", "params"}  # (the text rounds max_lr to 3 digits)
    assert {k: v for k, v in built.param_groups[0].items() if k not in unrounded} == \
        {k: v for k, v in printed.param_groups[0].items() if k not in unrounded}
    assert built.param_groups[0]["max_lr"] == result.recommendation["max_lr"]
    assert built.param_groups[0]["weight_decay"] == settings["weight_decay"]


def test_json_summary_and_plot_say_how_the_sweep_trained(tmp_path):
    result = range_test(mlp(), pairs(), optimizer="adamw", precision="bf16", accumulation_steps=2, **SETTINGS)
    config = json.loads(result.to_json())["config"]
    assert (config["optimizer"], config["precision"], config["accumulation_steps"]) == ("adamw", "bf16", 2)
    assert result.summary().startswith("LR range test: completed, 12 steps in ")
    assert result.summary().splitlines()[0].endswith("(eager; adamw, bf16, 2 batches per step)")
    assert result.plot(tmp_path / "p.png").get_title().startswith("LR range test (adamw, bf16, 2 batches per step; ")
    assert range_test(mlp(), pairs(), **SETTINGS).summary().splitlines()[0].endswith("(eager; sgd, fp32)")


def test_cli_optimizer_precision_accumulation(tmp_path, capsys):
    argv = FAST + ["--out", str(tmp_path), "--json", "--optimizer", "adamw", "--precision", "bf16",
                   "--accumulation-steps", "2", "--weight-decay", "0.05"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    config = data["config"]
    assert (config["optimizer"], config["precision"], config["accumulation_steps"]) == ("adamw", "bf16", 2)
    assert config["weight_decay"] == 0.05 and config["betas"] == [0.9, 0.999]
    assert data["recommendation"]["one_cycle"].startswith("lrfused.FusedOneCycleAdamW(")


@pytest.mark.parametrize("optimizer, weight_decay", [("sgd", 0.0), ("adamw", 0.01)])
def test_cli_weight_decay_defaults_to_the_optimizers_own(optimizer, weight_decay, tmp_path, capsys):
    """As range_test's API: 0 for the SGD sweep, torch's AdamW default 1e-2 for the AdamW one."""
    assert main(FAST + ["--out", str(tmp_path), "--json", "--optimizer", optimizer]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["weight_decay"] == weight_decay


def test_cli_batch_loss_trains_on_any_batches(tmp_path, capsys):
    argv = FAST + ["--out", str(tmp_path), "--json", "--model", "test_find_report:mlp",
                   "--data", "test_find_report:dict_data", "--batch-loss", "test_find_report:dict_batch_loss"]
    assert main(argv) == 0
    losses = [row["loss"] for row in json.loads(capsys.readouterr().out)["steps"]]
    expected = range_test(mlp(), pairs(), start_lr=1e-7, end_lr=10.0, num_iter=8, progress=False).losses
    torch.testing.assert_close(losses, expected[: len(losses)])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--accumulation-steps", "0"], "--accumulation-steps must be >= 1, got 0"),
        (["--batch-loss", "test_find_report:dict_batch_loss", "--loss", "torch.nn:MSELoss"], "--loss and --batch-loss"),
        (["--batch-loss", "test_find_report:dict_batch_loss", "--then-train", "1"], "--then-train trains on \\(inputs, targets\\)"),
        (["--precision", "fp8"], "invalid choice: 'fp8'"),
        (["--batch-loss", "test_find_report:nothing"], "--batch-loss test_find_report:nothing: .* has no attribute"),
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(FAST + argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err

"""What a sweep reports says how it trained (optimizer, precision, accumulation) and recommends calls
for the optimizer it swept; the CLI's --optimizer, --precision, --accumulation-steps, --batch-loss."""
import json
import re

import pytest
import torch
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
    for call in ("one_cycle", "cyclic", "warm_restarts"):
        assert "lrfused.Fused" not in adamw[call]
        assert adamw[call].startswith(f"opt = torch.optim.AdamW(model.parameters(), lr={adamw['max_lr']:.3g}); ")
    assert f"OneCycleLR(opt, max_lr={adamw['max_lr']:.3g}, " in adamw["one_cycle"]
    assert f"CyclicLR(opt, base_lr={adamw['base_lr']:.3g}, max_lr={adamw['max_lr']:.3g}, " in adamw["cyclic"]
    model = mlp()
    given = range_test(model, pairs(), optimizer=torch.optim.RMSprop(model.parameters(), lr=0.1), **SETTINGS)
    assert given.recommendation["one_cycle"].startswith("opt = your RMSprop (first group's lr")
    assert "lrfused.Fused" not in given.summary()


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
                   "--accumulation-steps", "2", "--weight-decay", "0.01"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    config = data["config"]
    assert (config["optimizer"], config["precision"], config["accumulation_steps"]) == ("adamw", "bf16", 2)
    assert config["weight_decay"] == 0.01 and config["betas"] == [0.9, 0.999]
    assert "torch.optim.AdamW" in data["recommendation"]["one_cycle"]


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
        (["--optimizer", "adamw", "--then-train", "1"], "--then-train trains lrfused's fused SGD"),
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

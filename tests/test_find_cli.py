"""python -m lrfused.find: in-process main(argv), and once as a real subprocess."""
import json
import os
import subprocess
import sys

import pytest
import torch

from lrfused.find.__main__ import main

FAST = ["--num-iter", "20", "--no-progress"]


def test_default_run_writes_the_plot_and_the_json(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "recommended 1cycle max_lr" in printed and "lrfused.FusedOneCycleSGD(" in printed
    assert "lrfused.FusedCyclicSGD(" in printed and "lrfused.FusedWarmRestartsSGD(" in printed
    data = json.loads((tmp_path / "lr_find.json").read_text())
    assert len(data["steps"]) == 20
    assert data["steps"][0]["lr"] == 1e-7 and data["steps"][-1]["lr"] == 10.0
    assert data["end"]["reason"] in ("completed", "diverged")
    assert set(data["suggestions"]) == {"valley", "steep", "minimum"}
    assert data["recommendation"]["base_lr"] == pytest.approx(data["recommendation"]["max_lr"] / 4)
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000


def test_json_flag_prints_the_json(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path), "--json", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["num_iter"] == 20


# Importable factories for --model / --data / --loss.
def tiny_model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))


def tiny_data():
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 1, 8, 8, generator=generator), torch.randint(0, 10, (16,), generator=generator)) for _ in range(4)]


def not_a_model():
    return 42


def test_user_model_data_and_loss(tmp_path, capsys):
    argv = FAST + ["--out", str(tmp_path), "--model", "test_find_cli:tiny_model", "--data", "test_find_cli:tiny_data",
                   "--loss", "torch.nn:CrossEntropyLoss", "--start-lr", "1e-4", "--end-lr", "1", "--mode", "linear"]
    assert main(argv) == 0
    data = json.loads((tmp_path / "lr_find.json").read_text())
    assert data["steps"][0]["lr"] == 1e-4 and data["end"]["passes"] == 5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no_such_module:make"], "cannot import 'no_such_module'"),
        (["--model", "test_find_cli:missing"], "has no attribute 'missing'"),
        (["--model", "test_find_cli"], "must look like module:callable"),
        (["--model", "test_find_cli:not_a_model"], "returned int, not a torch.nn.Module"),
        (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr must be below --end-lr"),
        (["--start-lr", "0"], "must be > 0"),
        (["--num-iter", "1"], "--num-iter must be >= 2, got 1"),
        (["--smooth", "1.5"], "--smooth must be in \\[0, 1\\)"),
        (["--device", "tpu9"], "--device 'tpu9' is not a device"),
        (["--out", "/proc/lrfused_cannot_write_here"], "--out /proc/lrfused_cannot_write_here: cannot write there"),
        (["--loss", "test_find_cli:not_a_model"], "--loss test_find_cli:not_a_model returned int, not a loss"),
        # argparse's own errors
        (["--mode", "foo"], "argument --mode: invalid choice: 'foo'"),
        (["--weight-decay", "abc"], "argument --weight-decay: expected a number"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    if "--out" not in argv:
        argv = argv + ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(FAST + argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err


def make_mse():
    """A zero-argument loss factory, as --loss takes."""
    return torch.nn.MSELoss(reduction="sum")


def one_hot_mse(outputs, targets):
    return torch.nn.functional.mse_loss(outputs, torch.nn.functional.one_hot(targets, 10).float(), reduction="sum")


@pytest.mark.parametrize("loss", ["test_find_cli:make_mse_one_hot", "test_find_cli:one_hot_mse"], ids=["factory", "function"])
def test_loss_may_be_a_factory_or_the_loss_itself(loss, tmp_path):
    argv = FAST + ["--out", str(tmp_path), "--loss", loss, "--num-iter", "5", "--json"]
    assert main(argv) == 0
    first = json.loads((tmp_path / "lr_find.json").read_text())["steps"][0]["loss"]
    assert first > 10  # summed squared errors over a batch of 64, not cross-entropy (about 2.3)


def make_mse_one_hot():
    mse = make_mse()
    return lambda outputs, targets: mse(outputs, torch.nn.functional.one_hot(targets, 10).float())


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("LR of the first step (default: 1e-07)", "(default: 10)", "(default: 100)", "(default: lr_find_out)"):
        assert default in text, default


def test_output_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    """`python -m lrfused.find | head -1`: the reader is gone before the summary is printed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        [sys.executable, "-m", "lrfused.find", "--num-iter", "3", "--no-progress", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
    )
    process.stdout.close()  # before anything is printed: the first write finds no reader
    err = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert (tmp_path / "lr_find.json").exists()


def test_nan_loss_reports_and_exits_1(tmp_path, capsys):
    argv = FAST + ["--out", str(tmp_path), "--loss", "test_find_cli:nan_loss"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "diverged at step 0" in captured.out and "no usable loss curve" in captured.err


def nan_loss(outputs, targets):
    return outputs.sum() * float("nan")


def test_module_runs_as_a_subprocess(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-m", "lrfused.find", "--num-iter", "15", "--no-progress", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=root, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "LR range test: " in done.stdout
    assert (tmp_path / "lr_find.json").exists()


@pytest.mark.parametrize("optimizer, drop_in", [("sgd", "FusedOneCycleSGD"), ("adamw", "FusedOneCycleAdamW")])
def test_then_train_trains_at_the_recommended_max_lr(optimizer, drop_in, tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path), "--then-train", "2", "--optimizer", optimizer]) == 0
    printed = capsys.readouterr().out
    assert f"training 2 epochs with {drop_in}(max_lr=" in printed
    assert "epoch   2" in printed and "val accuracy" in printed
    record = json.loads((tmp_path / "train.json").read_text())
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert record["max_lr"] == found["recommendation"]["max_lr"]
    assert len(record["epochs"]) == 2 and record["epochs"][1]["val_accuracy"] > 0.2
    assert (tmp_path / "train.png").stat().st_size > 10_000


def test_total_steps_confirms_the_max_lr_on_the_held_out_digits(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path), "--total-steps", "160"]) == 0
    assert "confirmation: 4 candidates" in capsys.readouterr().out
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert found["confirmation"]["scored_by"] == "validation loss" and found["confirmation"]["steps_per_candidate"] == 10
    assert found["recommendation"]["rule"] == "confirmed" and found["validation"] == []


def test_then_train_confirms_for_its_own_budget(tmp_path, capsys):
    assert main(FAST + ["--out", str(tmp_path), "--then-train", "8"]) == 0  # 8 x 20 batches: 10-step candidates
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert found["cost"]["total_steps"] == 160 and found["recommendation"]["rule"] == "confirmed"
    assert json.loads((tmp_path / "train.json").read_text())["max_lr"] == found["recommendation"]["max_lr"]


def test_then_train_with_user_validation_data(tmp_path, capsys):
    argv = FAST + ["--out", str(tmp_path), "--model", "test_find_cli:tiny_model", "--data", "test_find_cli:tiny_data",
                   "--val-data", "test_find_cli:tiny_data", "--then-train", "1", "--start-lr", "1e-4", "--end-lr", "1"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "train.json").read_text())["epochs"][0]["val_accuracy"] is not None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--then-train", "0"], "--then-train must be >= 1 epochs"),
        (["--val-data", "test_find_cli:tiny_data"], "--val-data is only used with --total-steps or --then-train"),
        (["--total-steps", "0"], "--total-steps must be >= 1"),
        (["--total-steps", "200", "--then-train", "2"], "give --total-steps or --then-train"),
        (["--total-steps", "200", "--weight-decay", "0,1e-4"], "--total-steps confirms one sweep's max_lr: not with a grid"),
        (["--then-train", "1", "--data", "test_find_cli:one_shot_data"], "--then-train needs --data with a length"),
    ],
)
def test_then_train_usage_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(FAST + argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def one_shot_data():
    return iter(tiny_data())

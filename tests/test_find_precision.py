"""range_test(precision=..., accumulation_steps=...): each sweep equals the hand-written torch loop
(autocast, GradScaler, k micro-batches per step, the LR set per step), and restores the model."""
import pytest
import torch
from sweep_fixtures import mlp, pairs
from test_find import assert_same, fingerprint

from lrfused.find import range_test
from lrfused.ramp import ramp_lr

NUM_ITER = 12
START, END = 1e-3, 0.5
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def reference(model, data, opt, precision="fp32", k=1):
    """The sweep written out: (losses, skipped steps)."""
    scaler = torch.amp.GradScaler("cpu") if precision == "fp16" else None
    losses, skipped = [], []
    for step in range(NUM_ITER):
        for group in opt.param_groups:
            group["lr"] = ramp_lr(START, END, NUM_ITER, "exp", step)
        opt.zero_grad()
        total = 0.0
        for j in range(k):
            x, y = data[(step * k + j) % len(data)]
            with torch.autocast("cpu", dtype=DTYPES[precision], enabled=precision != "fp32"):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            (loss / k if scaler is None else scaler.scale(loss / k)).backward()
            total += loss.item()
        if scaler is None:
            opt.step()
        else:
            scale = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            if scaler.get_scale() < scale:
                skipped.append(step)
        losses.append(total / k)
    return losses, skipped


def sweep(model, data, **kwargs):
    return range_test(model, data, start_lr=START, end_lr=END, num_iter=NUM_ITER, diverge_threshold=1e9,
                      progress=False, **kwargs)


def torch_sgd(model):
    return torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9, foreach=False)


def torch_adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=1.0, foreach=False)


@pytest.mark.parametrize("optimizer, reference_optimizer", [("sgd", torch_sgd), ("adamw", torch_adamw)])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("k", [1, 3])
def test_sweep_equals_the_handwritten_loop(optimizer, reference_optimizer, precision, k):
    model = mlp()
    before = fingerprint(model)
    result = sweep(model, pairs(7), optimizer=optimizer, precision=precision, accumulation_steps=k)
    assert_same(before, fingerprint(model))
    model = mlp()
    expected, skipped = reference(model, pairs(7), reference_optimizer(model), precision, k)
    assert result.skipped_steps == skipped
    kept = [i for i in range(NUM_ITER) if i not in skipped]
    assert result.lrs == [ramp_lr(START, END, NUM_ITER, "exp", i) for i in kept]
    if optimizer == "adamw" and precision != "fp32":
        # lrfused's AdamW takes IEEE square roots; torch's CPU sqrt (vectorised) is off by an ulp in
        # ~20% of elements, so the params differ by ulps, which low-precision activations can round
        # apart. The project's low-precision rule instead: at most 2x torch's own distance from the
        # float32 loop (and within 1e-3 of torch).
        model = mlp()
        float32, _ = reference(model, pairs(7), reference_optimizer(model), "fp32", k)
        ours = max(abs(result.losses[n] - float32[i]) for n, i in enumerate(kept))
        theirs = max(abs(expected[i] - float32[i]) for i in kept)
        assert ours <= 2 * theirs, (ours, theirs)
        torch.testing.assert_close(result.losses, [expected[i] for i in kept], rtol=1e-3, atol=1e-3)
    else:
        torch.testing.assert_close(result.losses, [expected[i] for i in kept], rtol=1e-5, atol=1e-5)
    assert (result.config["precision"], result.config["accumulation_steps"]) == (precision, k)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fp16_steps_the_grad_scaler_skips_are_recorded_as_skipped_not_as_losses(optimizer):
    data = pairs(7, loud=(4,))
    result = sweep(mlp(), data, optimizer=optimizer, precision="fp16")
    model = mlp()
    _, skipped = reference(model, data, (torch_sgd if optimizer == "sgd" else torch_adamw)(model), "fp16")
    assert 4 in skipped
    assert result.skipped_steps == skipped
    assert len(result.losses) == NUM_ITER - len(skipped)
    assert ramp_lr(START, END, NUM_ITER, "exp", 4) not in result.lrs
    steps = result.to_dict()["steps"]
    assert [row["step"] for row in steps] == [i for i in range(NUM_ITER) if i not in skipped]
    assert result.to_dict()["skipped_steps"] == skipped


def test_accumulation_takes_k_batches_per_step_from_one_shot_data():
    result = sweep(mlp(), iter(pairs(7)), accumulation_steps=3)
    assert result.end["reason"] == "out_of_data"
    assert len(result.losses) == 2  # 7 batches: two full steps, the third ran out


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(accumulation_steps=0), ValueError, "accumulation_steps must be >= 1, got 0"),
        (dict(accumulation_steps=2.0), TypeError, "accumulation_steps must be an int, got float"),
        (dict(accumulation_steps=True), TypeError, "accumulation_steps must be an int, got bool"),
        (dict(precision="fp8"), ValueError, "precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"),
        (dict(precision=torch.float16), ValueError, "precision must be one of"),
    ],
)
def test_bad_precision_or_accumulation_is_rejected_before_the_sweep(kwargs, error, message):
    model = mlp()
    before = fingerprint(model)
    with pytest.raises(error, match=message):
        sweep(model, pairs(7), **kwargs)
    assert_same(before, fingerprint(model))


def test_fp16_where_autocast_cannot_run_it_is_rejected(monkeypatch):
    """(Autocast runs fp16 on this torch's CPU: its refusal is simulated as torch reports it, a
    warning and a disabled autocast.)"""
    real = torch.autocast

    def refusing(device_type, dtype=None, **kwargs):
        if dtype == torch.float16:
            dtype, kwargs["enabled"] = torch.bfloat16, False
        return real(device_type, dtype=dtype, **kwargs)

    monkeypatch.setattr(torch, "autocast", refusing)
    model = mlp()
    before = fingerprint(model)
    with pytest.raises(ValueError, match=r"precision='fp16': autocast cannot run torch.float16 on cpu"):
        sweep(model, pairs(7), precision="fp16")
    assert_same(before, fingerprint(model))
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(ValueError, match=r"precision='bf16': autocast does not run on cpu"):
        sweep(model, pairs(7), precision="bf16")

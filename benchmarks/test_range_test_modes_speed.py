"""The range test's training-loop modes against torch-lr-finder on the same model, data, iterations
and LR range (divergence checks off): an AdamW sweep (by name, and as an optimizer instance),
gradient accumulation, and autocast (bf16; fp16 with a GradScaler). Each includes saving and
restoring the model. torch-lr-finder 0.2.2 takes an optimizer instance, accumulation_steps and
amp_backend="torch" with an autocast config and a GradScaler.

    pip install torch-lr-finder   # the peer; skipped without it
    pytest benchmarks/test_range_test_modes_speed.py --benchmark-only
"""
import pytest
import torch

from lrfused.find import range_test
from lrfused.find.builtin import digits_cnn

from test_range_test_speed import DEVICES, END_LR, NO_DIVERGENCE, NUM_ITER, START_LR, batches

# mode -> range_test settings; torch-lr-finder gets the same (optimizer "instance": an AdamW instance)
MODES = {
    "adamw": dict(optimizer="adamw"),
    "adamw_instance": dict(optimizer="instance"),
    "sgd_accumulation4": dict(accumulation_steps=4),
    "sgd_bf16": dict(precision="bf16"),
    "adamw_fp16": dict(optimizer="adamw", precision="fp16"),
}


def adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=START_LR, fused=True)


def run_lrfused(model, data, mode):
    settings = dict(MODES[mode])
    if settings.get("optimizer") == "instance":
        settings["optimizer"] = adamw(model)
    range_test(model, data, start_lr=START_LR, end_lr=END_LR, num_iter=NUM_ITER,
               diverge_threshold=NO_DIVERGENCE, progress=False, **settings)


def run_torch_lr_finder(model, data, mode):
    from torch_lr_finder import LRFinder

    settings = MODES[mode]
    device = next(model.parameters()).device
    if settings.get("optimizer"):
        opt = adamw(model)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=START_LR, momentum=0.9)
    amp = {}
    precision = settings.get("precision")
    if precision:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        amp = dict(amp_backend="torch", amp_config=dict(device_type=device.type, dtype=dtype),
                   # (it scales every loss under amp_backend="torch": a disabled scaler for bf16)
                   grad_scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"))
    finder = LRFinder(model, opt, torch.nn.CrossEntropyLoss(), device=device, **amp)
    finder.range_test(data, end_lr=END_LR, num_iter=NUM_ITER, step_mode="exp", diverge_th=NO_DIVERGENCE,
                      accumulation_steps=settings.get("accumulation_steps", 1))
    finder.reset()


PROVIDERS = {"lrfused": run_lrfused, "torch_lr_finder": run_torch_lr_finder}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_sweep_mode(benchmark, provider, device, mode):
    if provider == "torch_lr_finder":
        pytest.importorskip("torch_lr_finder")
    torch.manual_seed(0)
    model = digits_cnn().to(device)
    data = batches(device)
    benchmark.group = f"{device}/range_test/{mode}/digits_cnn/{NUM_ITER}_steps"

    def run(m, d):
        PROVIDERS[provider](m, d, mode)
        if device == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(run, args=(model, data), rounds=3, iterations=1, warmup_rounds=1)

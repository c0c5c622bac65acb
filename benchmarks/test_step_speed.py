"""One optimizer step (with its 1cycle schedule) per provider, and the memory floor, per layout.

    pytest benchmarks --benchmark-only
"""
import pytest
import torch

from layouts import LAYOUTS, numel
from providers import PROVIDERS, make_floor, make_params, make_step

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def synchronizing(fn, device):
    if device != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("provider", PROVIDERS + ("floor",))
def test_step(benchmark, provider, layout, dtype, device):
    shapes = LAYOUTS[layout]()
    benchmark.group = f"{device}/{dtype}/{layout}"
    benchmark.extra_info["params"] = numel(shapes)
    if provider == "floor":
        fn, moved = make_floor(shapes, DTYPES[dtype], device)
    else:
        params = make_params(shapes, DTYPES[dtype], device)
        fn = make_step(provider, params)
        moved = None
    fn = synchronizing(fn, device)
    fn()  # first step: allocates state
    benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=2)
    if moved is not None:
        benchmark.extra_info["floor_GBps"] = moved / benchmark.stats.stats.median / 1e9

"""One optimizer step (with its 1cycle schedule) per provider, and the memory floor, per layout and
optimizer family (SGD, AdamW, Lion); and the same after a cache flush (as in training, where forward and
backward run between steps).

    pytest benchmarks --benchmark-only
"""
import pytest
import torch

from layouts import LAYOUTS, numel
from providers import make_floor, make_params, make_step, providers_of

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FAMILIES = ("sgd", "adamw", "lion")
CASES = [(provider, family) for family in FAMILIES for provider in providers_of(family) + ("floor",)]


def synchronizing(fn, device):
    if device != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


def make_timed(provider, shapes, dtype, device, benchmark, family="sgd"):
    """The callable to time, after one untimed first step (which allocates state)."""
    benchmark.extra_info["params"] = numel(shapes)
    if provider == "floor":
        fn, moved = make_floor(shapes, DTYPES[dtype], device, family)
    else:
        fn, moved = make_step(provider, make_params(shapes, DTYPES[dtype], device), family), None
    fn = synchronizing(fn, device)
    fn()
    return fn, moved


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("provider, family", CASES)
def test_step(benchmark, provider, family, layout, dtype, device):
    shapes = LAYOUTS[layout]()
    benchmark.group = f"{device}/{dtype}/{layout}" + ("" if family == "sgd" else f"/{family}")
    fn, moved = make_timed(provider, shapes, dtype, device, benchmark, family)
    benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=2)
    if moved is not None:
        benchmark.extra_info["floor_GBps"] = moved / benchmark.stats.stats.median / 1e9


class CacheFlush:
    """Evicts the host's caches before each timed step, as a training step's forward and backward
    do: the optimizer then meets its tensors' metadata (and small tensors' data) cold."""

    BYTES = 96 * 2**20  # more than the last-level cache of the machines here (32 MiB on the CPU ones)

    def __init__(self):
        self.junk = torch.zeros(self.BYTES // 4)

    def __call__(self):
        self.junk.add_(1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["many_small", "resnet18"])
@pytest.mark.parametrize("provider, family", CASES)
def test_step_after_cache_flush(benchmark, provider, family, layout, device):
    shapes = LAYOUTS[layout]()
    benchmark.group = f"{device}/fp32/{layout}/cold-cache" + ("" if family == "sgd" else f"/{family}")
    fn, _ = make_timed(provider, shapes, "fp32", device, benchmark, family)
    benchmark.pedantic(fn, setup=CacheFlush(), rounds=15, iterations=1, warmup_rounds=2)

"""A 2 x 2 grid of range tests (weight decay x momentum): the combinations one after another
(provider `one_after_another`) against one vmap-batched computation (provider `lrfused`, the batched
grid), same model, data and steps; the ratio table shows batched / one after another.

    pytest benchmarks/test_grid_speed.py --benchmark-only
"""
import pytest
import torch

from lrfused.find.builtin import digits_cnn, digits_tensors
from lrfused.find.grid import range_test_grid

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
GRID = dict(weight_decays=[0.0, 1e-3], momenta=[0.9, 0.95])
SWEEP = dict(start_lr=1e-5, end_lr=1.0, num_iter=60, diverge_threshold=1e9, progress=False)


def batches(device, batch_size=64):
    images, labels = digits_tensors()
    images, labels = images.to(device), labels.to(device)
    return [(images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels) - batch_size + 1, batch_size)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("provider", ["one_after_another", "lrfused"])
def test_grid(benchmark, provider, device):
    batched = provider == "lrfused"
    benchmark.group = f"grid 2x2 {device} digits CNN {SWEEP['num_iter']} steps"
    torch.manual_seed(0)
    model = digits_cnn(width=2).to(device)
    data = batches(device)
    grid = benchmark.pedantic(lambda: range_test_grid(model, data, batched=batched, **GRID, **SWEEP), rounds=3, iterations=1)
    assert grid.path == ("batched_vmap" if batched else "sequential")

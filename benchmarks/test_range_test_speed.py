"""One LR range test sweep: lrfused.find.range_test against torch-lr-finder's LRFinder.range_test,
same model, data, iterations and LR range (up to 1.0, with divergence checks off, so that both run
every step). Both include saving and restoring the model.

    pip install torch-lr-finder   # the peer; skipped without it
    pytest benchmarks/test_range_test_speed.py --benchmark-only
"""
import pytest
import torch

from lrfused.find import range_test
from lrfused.find.builtin import digits_cnn, digits_tensors

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NUM_ITER, START_LR, END_LR, NO_DIVERGENCE = 100, 1e-5, 1.0, 1e9


def batches(device, batch_size=64):
    """The digits on the device, in a fixed order (torch-lr-finder takes only DataLoaders)."""
    images, labels = digits_tensors()
    dataset = torch.utils.data.TensorDataset(images.to(device), labels.to(device))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, drop_last=True)


def run_lrfused(model, data):
    range_test(model, data, start_lr=START_LR, end_lr=END_LR, num_iter=NUM_ITER,
               diverge_threshold=NO_DIVERGENCE, progress=False)


def run_torch_lr_finder(model, data):
    from torch_lr_finder import LRFinder

    opt = torch.optim.SGD(model.parameters(), lr=START_LR, momentum=0.9)
    device = next(model.parameters()).device
    finder = LRFinder(model, opt, torch.nn.CrossEntropyLoss(), device=device)
    finder.range_test(data, end_lr=END_LR, num_iter=NUM_ITER, step_mode="exp", diverge_th=NO_DIVERGENCE)
    finder.reset()


PROVIDERS = {"lrfused": run_lrfused, "torch_lr_finder": run_torch_lr_finder}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_sweep(benchmark, provider, device):
    if provider == "torch_lr_finder":
        pytest.importorskip("torch_lr_finder")
    torch.manual_seed(0)
    model = digits_cnn().to(device)
    data = batches(device)
    benchmark.group = f"{device}/range_test/digits_cnn/{NUM_ITER}_steps"
    run = PROVIDERS[provider]
    if device == "cuda":
        def run_synced(m, d):
            PROVIDERS[provider](m, d)
            torch.cuda.synchronize()
        run = run_synced
    benchmark.pedantic(run, args=(model, data), rounds=5, iterations=1, warmup_rounds=1)

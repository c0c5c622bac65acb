"""64-bit indexing: one tensor of more than 2**31 elements (bfloat16 to fit) is updated to its end.

Needs about 13 GiB of free memory on CPU (param, grad and momentum buffer of 4 GiB each), so it
skips where there is less; benchmarks/gpu_check.sh runs the CUDA version on a lent GPU.
"""
import pytest
import torch

import lrfused
from conftest import DEVICES

NUMEL = 2**31 + 7


def free_bytes(device):
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_of_more_than_2_pow_31_elements(device):
    need = 3 * NUMEL * 2 + (1 << 30)
    if free_bytes(device) < need:
        pytest.skip(f"needs {need / 2**30:.0f} GiB free on {device}")
    param = torch.zeros(NUMEL, dtype=torch.bfloat16, device=device)
    param.grad = torch.ones(NUMEL, dtype=torch.bfloat16, device=device)
    opt = lrfused.FusedWarmRestartsSGD([param], max_lr=0.5, T_0=10, momentum=0.9)
    opt.step()  # first step: buffer = grad = 1, param = -0.5 * 1
    buf = opt.state[param]["momentum_buffer"]
    for i in (0, 2**31 - 1, 2**31, NUMEL - 1):
        assert param[i].item() == -0.5 and buf[i].item() == 1.0
    assert bool((param == -0.5).all()) and bool((buf == 1.0).all())
    del param.grad
    del opt, buf

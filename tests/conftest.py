import pytest
import torch

import lrfused

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and lrfused.cuda_built() else [])
if torch.cuda.is_available() and not lrfused.cuda_built():
    print("lrfused: a GPU is visible but lrfused was built without CUDA; CUDA tests are skipped")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Absolute floor for comparisons against a float32 reference, per dtype (see assert_matches).
LOW_PRECISION = (torch.float16, torch.bfloat16)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def dtype_id(dtype):
    return str(dtype).replace("torch.", "")


def requires_cuda():
    return pytest.mark.skipif("cuda" not in DEVICES, reason="needs a GPU and lrfused built with CUDA")


def step_twice_without_host_sync(opt):
    """Two steps with torch's sync debug mode set to raise on any host sync (CUDA)."""
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")

import pytest
import torch

import lrfused

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and lrfused.cuda_built() else [])
if torch.cuda.is_available() and not lrfused.cuda_built():
    print("lrfused: a GPU is visible but lrfused was built without CUDA; CUDA tests are skipped")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Absolute floor for comparisons against a float32 reference, per dtype (see assert_matches).
LOW_PRECISION = (torch.float16, torch.bfloat16)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: runs on a GPU (set by conftest.py; gpu_check.sh runs these first)")


def pytest_collection_modifyitems(items):
    """Marks `cuda` every test that needs a GPU: one skipped without one (requires_cuda and the like)
    or parametrised with a CUDA device, so that `pytest -m cuda` selects them."""
    for item in items:
        if _needs_a_gpu(item):
            item.add_marker(pytest.mark.cuda)


def _needs_a_gpu(item):
    for mark in item.iter_markers("skipif"):
        reason = mark.kwargs.get("reason", "")
        if "GPU" in reason:
            return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(str(value).startswith("cuda") for value in params.values())


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

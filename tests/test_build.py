"""setup.py's choice of build: CPU-only with a message below CUDA 12.1 (whose kernel arguments are
too small for a launch's metadata), and GPU targets from TORCH_CUDA_ARCH_LIST, torch's detection of
the visible GPUs, or, with neither, CPU-only (LRFUSED_CUDA=1: the GPUs users have)."""
import os
import runpy
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="setup_under_test")  # main() not run


def fake_toolkit(root, release):
    """A CUDA_HOME whose nvcc only tells its version."""
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
    nvcc.chmod(0o755)
    return root


def test_toolkit_version_is_read_from_nvcc(tmp_path):
    assert SETUP["toolkit_version"](str(fake_toolkit(tmp_path, "12.4"))) == (12, 4)


@pytest.mark.parametrize(
    "request_, toolkit, arch_list, gpus_visible, expected",
    [
        ("1", (13, 0), None, False, (True, "7.5;8.0;9.0;10.0;12.0+PTX", None)),
        ("1", (12, 8), None, False, (True, "7.0;7.5;8.0;9.0;10.0;12.0+PTX", None)),
        ("1", (12, 1), None, False, (True, "7.0;7.5;8.0;9.0+PTX", None)),
        ("auto", (13, 0), "8.6", False, (True, None, None)),  # torch reads the variable
        ("auto", (13, 0), None, True, (True, None, None)),  # torch's detection of the visible GPUs
    ],
    ids=["cuda13", "cuda12.8", "cuda12.1", "arch_list_set", "gpu_visible"],
)
def test_gpu_targets(request_, toolkit, arch_list, gpus_visible, expected):
    assert SETUP["cuda_plan"](request_, toolkit, arch_list, gpus_visible, "/cuda") == expected


def test_no_gpu_and_no_target_asked_for_builds_cpu_only_and_says_how_to_get_cuda():
    """The newcomer's build on a machine without a GPU: CPU-only in a minute or two, not ~8 minutes of
    kernels for GPUs it does not have; one line says how to build them."""
    with_cuda, arch_list, note = SETUP["cuda_plan"]("auto", (13, 0), None, False, "/cuda")
    assert (with_cuda, arch_list) == (False, None)
    assert "no GPU visible and no GPU target asked for" in note and "LRFUSED_CUDA=1" in note and "\n" not in note


@pytest.mark.parametrize("toolkit", [(12, 0), (11, 8), None], ids=["cuda12.0", "cuda11.8", "unknown"])
def test_an_old_toolkit_falls_back_to_cpu_only_or_fails_a_required_cuda_build(toolkit):
    with_cuda, arch_list, note = SETUP["cuda_plan"]("auto", toolkit, None, False, "/cuda")
    assert not with_cuda and arch_list is None
    assert "need CUDA 12.1 or newer" in note and "toolkit at CUDA_HOME=/cuda" in note and "CPU-only" in note
    with pytest.raises(RuntimeError, match="LRFUSED_CUDA=1: lrfused's CUDA kernels need CUDA 12.1 or newer"):
        SETUP["cuda_plan"]("1", toolkit, None, False, "/cuda")


def test_lrfused_cuda_0_builds_cpu_only():
    assert SETUP["cuda_plan"]("0", (13, 0), None, True, "/cuda") == (False, None, None)


@pytest.mark.skipif(torch.version.cuda is None, reason="a CPU-only torch never builds the CUDA path")
def test_setup_py_says_why_it_builds_cpu_only_in_a_subprocess(tmp_path):
    """The whole script (`--name` decides and reports without building), against CUDA 11.8."""
    environ = {k: v for k, v in os.environ.items() if k not in ("TORCH_CUDA_ARCH_LIST", "CUDA_PATH", "LRFUSED_CUDA")}
    environ["CUDA_HOME"] = str(fake_toolkit(tmp_path, "11.8"))
    run = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, env=environ, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "lrfused's CUDA kernels need CUDA 12.1 or newer" in run.stdout and "is CUDA 11.8" in run.stdout
    assert "lrfused: building the CPU-only extension" in run.stdout

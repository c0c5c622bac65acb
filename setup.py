"""Builds lrfused._C: the CPU kernels always, the CUDA kernels when CUDA torch and nvcc are both there.

The CUDA kernels need CUDA 12.1 or newer (a launch's metadata is one kernel argument of 27,264
bytes, of the 32,764 a launch may take since CUDA 12.1); with an older toolkit the build is CPU-only,
with a message.

Environment overrides:
  LRFUSED_CUDA=0           build CPU-only even where CUDA could be built
  LRFUSED_CUDA=1           require the CUDA build (fail instead of falling back to CPU-only)
  TORCH_CUDA_ARCH_LIST     GPU targets, as torch reads it. Unset: the visible GPUs (torch's detection);
                           with none visible, CPU-only (nothing here could run the kernels), or with
                           LRFUSED_CUDA=1 every architecture the toolkit builds for from Volta
                           (Turing with CUDA 13) to Blackwell, plus PTX for later GPUs
  LRFUSED_SANITIZE=1       build the C++ code with AddressSanitizer + UndefinedBehaviorSanitizer
                           (run Python with the ASan runtime preloaded; see .ci/sanitize)
"""
import glob
import os
import re
import shutil
import subprocess

from setuptools import setup


def _toolkit_root_from_nvcc():
    """The CUDA toolkit root, seen through an `nvcc` on PATH that may be a wrapper script."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    nvcc = os.path.realpath(nvcc)
    try:
        with open(nvcc, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"#!"):  # a wrapper: find the real binary it execs
        for token in head.decode(errors="replace").split():
            if token.endswith("/bin/nvcc") and os.path.isfile(token):
                nvcc = os.path.realpath(token)
                break
        else:
            return None
    return os.path.dirname(os.path.dirname(nvcc))


def toolkit_version(cuda_home):
    """(major, minor) of the nvcc in cuda_home, or None if it does not say."""
    try:
        out = subprocess.run([os.path.join(cuda_home, "bin", "nvcc"), "--version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    found = re.search(r"release (\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else None


def default_arch_list(version):
    """The GPUs users have that this toolkit builds for (kernel arguments over 4 KB need Volta or
    newer; CUDA 13 starts at Turing) as machine code, plus PTX of the newest for later GPUs. sm_80
    code runs on 8.6 and 8.9 (A10, L4, RTX 30/40), sm_100 on 10.3, sm_120 on 12.1."""
    archs = ["7.0", "7.5", "8.0", "9.0"]
    if version >= (12, 8):
        archs += ["10.0", "12.0"]
    if version >= (13, 0):
        archs = [a for a in archs if a != "7.0"]
    return ";".join(archs) + "+PTX"


def cuda_plan(request, toolkit, arch_list, gpus_visible, cuda_home):
    """Whether to build the CUDA kernels, CUDA torch and nvcc being there, and for which targets:
    (with_cuda, TORCH_CUDA_ARCH_LIST to set or None to leave it to torch, a note for the build log or
    None). Raises where LRFUSED_CUDA=1 cannot be honoured."""
    if request == "0":
        return False, None, None
    if toolkit is None or toolkit < (12, 1):
        found = "of an unknown version" if toolkit is None else "CUDA %d.%d" % toolkit
        message = (
            "lrfused's CUDA kernels need CUDA 12.1 or newer (a launch's metadata is one 27.5 KB kernel "
            f"argument), but the toolkit at CUDA_HOME={cuda_home} is {found}"
        )
        if request == "1":
            raise RuntimeError(f"LRFUSED_CUDA=1: {message}")
        return False, None, f"{message}: building the CPU-only extension (point CUDA_HOME at a newer toolkit for the CUDA path)"
    if arch_list or gpus_visible:
        return True, None, None  # torch's variable, or torch's detection of the visible GPUs
    if request != "1":  # nothing here could run the kernels: the quick build (1-2 min instead of ~8)
        return False, None, (
            "no GPU visible and no GPU target asked for: building the CPU-only extension "
            "(LRFUSED_CUDA=1 builds the CUDA kernels for every GPU generation, TORCH_CUDA_ARCH_LIST=9.0 for one)"
        )
    return True, default_arch_list(toolkit), None


def main():
    # torch.utils.cpp_extension reads CUDA_HOME at import time, so settle it first.
    if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
        root = _toolkit_root_from_nvcc() or ("/usr/local/cuda" if os.path.isdir("/usr/local/cuda") else None)
        if root is not None:
            os.environ["CUDA_HOME"] = root

    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    here = os.path.dirname(os.path.abspath(__file__))
    cuda_request = os.environ.get("LRFUSED_CUDA", "auto")
    cuda_possible = torch.version.cuda is not None and CUDA_HOME is not None and os.path.exists(
        os.path.join(CUDA_HOME, "bin", "nvcc")
    )
    if cuda_request == "1" and not cuda_possible:
        raise RuntimeError(
            f"LRFUSED_CUDA=1 but the CUDA path cannot be built: torch.version.cuda={torch.version.cuda}, "
            f"CUDA_HOME={CUDA_HOME}"
        )
    with_cuda, arch_list, note = False, None, None
    if cuda_possible:
        with_cuda, arch_list, note = cuda_plan(
            cuda_request,
            toolkit_version(CUDA_HOME),
            os.environ.get("TORCH_CUDA_ARCH_LIST"),
            torch.cuda.device_count() > 0,
            CUDA_HOME,
        )
    if note is not None:
        print(f"lrfused: {note}")
    if arch_list is not None:
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list

    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/lrfused/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # -ffp-contract=off: no fused multiply-adds, so the vectorised body and the scalar tail of a loop
    # round the same way and results do not depend on how work is split across threads.
    # -fno-math-errno: sqrt need not set errno (nothing reads it), so AdamW's loop vectorises; the
    # results are the same IEEE square roots.
    cxx_flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-fvisibility=hidden"]
    link_flags = ["-fopenmp"]
    if os.environ.get("LRFUSED_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
        cxx_flags = ["-O1", "-g"] + cxx_flags[1:] + sanitize
        link_flags += sanitize
    if with_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        # No --use_fast_math: schedule values must match torch's schedulers.
        extension = CUDAExtension(
            "lrfused._C",
            sources,
            include_dirs=[os.path.join(here, "csrc")],
            define_macros=[("LRFUSED_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
            extra_link_args=link_flags,
        )
    else:
        extension = CppExtension(
            "lrfused._C",
            sources,
            include_dirs=[os.path.join(here, "csrc")],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )
    targets = os.environ.get("TORCH_CUDA_ARCH_LIST") or "the visible GPUs"
    print(
        f"lrfused: building the {'CPU + CUDA' if with_cuda else 'CPU-only'} extension "
        f"(torch {torch.__version__}, torch CUDA {torch.version.cuda}, CUDA_HOME={CUDA_HOME}, "
        f"LRFUSED_CUDA={cuda_request}" + (f", GPU targets {targets})" if with_cuda else ")")
    )
    setup(ext_modules=[extension], cmdclass={"build_ext": BuildExtension})


if __name__ == "__main__":  # also under pip: setuptools runs this file as __main__
    main()

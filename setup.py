"""Builds lrfused._C: the CPU kernels always, the CUDA kernels when CUDA torch and nvcc are both there.

Environment overrides:
  LRFUSED_CUDA=0           build CPU-only even where CUDA could be built
  LRFUSED_CUDA=1           require the CUDA build (fail instead of falling back to CPU-only)
  TORCH_CUDA_ARCH_LIST     GPU targets (default here: "8.0;9.0+PTX", i.e. sm_80, sm_90 and PTX)
  LRFUSED_SANITIZE=1       build the C++ code with AddressSanitizer + UndefinedBehaviorSanitizer
                           (run Python with the ASan runtime preloaded; see .ci/sanitize)
"""
import glob
import os
import shutil

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


# torch.utils.cpp_extension reads CUDA_HOME at import time, so settle it first.
if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
    root = _toolkit_root_from_nvcc() or ("/usr/local/cuda" if os.path.isdir("/usr/local/cuda") else None)
    if root is not None:
        os.environ["CUDA_HOME"] = root
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")

import torch  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)

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
with_cuda = cuda_possible and cuda_request != "0"

sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/lrfused/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
# -ffp-contract=off: no fused multiply-adds, so the vectorised body and the scalar tail of a loop round
# the same way and results do not depend on how work is split across threads.
cxx_flags = ["-O3", "-ffp-contract=off", "-fopenmp", "-fvisibility=hidden"]
link_flags = ["-fopenmp"]
if os.environ.get("LRFUSED_SANITIZE") == "1":
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
    cxx_flags = ["-O1", "-g"] + cxx_flags[1:] + sanitize
    link_flags += sanitize
define_macros = []
if with_cuda:
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    define_macros.append(("LRFUSED_WITH_CUDA", None))
    # No --use_fast_math: schedule values must match torch's schedulers.
    extension = CUDAExtension(
        "lrfused._C",
        sources,
        include_dirs=[os.path.join(here, "csrc")],
        define_macros=define_macros,
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
print(
    f"lrfused: building the {'CPU + CUDA' if with_cuda else 'CPU-only'} extension "
    f"(torch {torch.__version__}, torch CUDA {torch.version.cuda}, CUDA_HOME={CUDA_HOME}, "
    f"LRFUSED_CUDA={cuda_request})"
)

setup(
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExtension},
)

"""lrfused: fused SGD, AdamW and Lion with their LR (and momentum / beta1) schedule computed in the kernel:
1cycle, cyclical, warm restarts, warm-up + cosine, any per-step table, and the LR range test's ramp."""
from lrfused import schedules
from lrfused._ext import _C
from lrfused.fused_adamw import FusedAdamW, FusedOneCycleAdamW
from lrfused.fused_lion import FusedLion, FusedOneCycleLion
from lrfused.fused_sgd import FusedCyclicSGD, FusedOneCycleSGD, FusedRampSGD, FusedSGD, FusedWarmRestartsSGD
from lrfused.kernel_scheduler import KernelScheduler

__version__ = "0.2.0"


def cuda_built():
    """Whether this build of lrfused has its CUDA kernels (it may still run on a machine without a GPU)."""
    return _C.cuda_built()


__all__ = [
    "FusedSGD",
    "FusedOneCycleSGD",
    "FusedCyclicSGD",
    "FusedWarmRestartsSGD",
    "FusedRampSGD",
    "FusedAdamW",
    "FusedOneCycleAdamW",
    "FusedLion",
    "FusedOneCycleLion",
    "KernelScheduler",
    "schedules",
    "cuda_built",
    "__version__",
]

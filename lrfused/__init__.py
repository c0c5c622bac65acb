"""lrfused: fused SGD with its LR (and momentum) schedule computed in the kernel: 1cycle, cyclical,
warm restarts, and the LR range test's ramp."""
from lrfused._ext import _C
from lrfused.cyclic import FusedCyclicSGD
from lrfused.one_cycle import FusedOneCycleSGD
from lrfused.ramp import FusedRampSGD
from lrfused.warm_restarts import FusedWarmRestartsSGD

__version__ = "0.1.0"


def cuda_built():
    """Whether this build of lrfused has its CUDA kernels (it may still run on a machine without a GPU)."""
    return _C.cuda_built()


__all__ = ["FusedOneCycleSGD", "FusedCyclicSGD", "FusedWarmRestartsSGD", "FusedRampSGD", "cuda_built", "__version__"]

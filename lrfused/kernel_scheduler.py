"""KernelScheduler: the torch LR scheduler to hand a training framework that insists on one (Hugging
Face's Trainer takes optimizers=(optimizer, lr_scheduler) and makes its own linear schedule when the
second is None). lrfused's optimizers compute the LR in the kernel; this scheduler never writes it."""
from torch.optim.lr_scheduler import LRScheduler

from lrfused._fused_optimizer import FusedOptimizer


class KernelScheduler(LRScheduler):
    """Reports the LR an lrfused optimizer's own schedule gives, and changes nothing: ``step()``
    refreshes ``get_last_lr()`` from the optimizer (``optimizer.get_last_lr()``, which reads the
    device counter only after a CUDA graph capture or a compiled step). A torch scheduler on the same
    optimizer would write ``group['lr']``, which the kernel ignores (the optimizer warns)."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, FusedOptimizer):
            raise TypeError(
                f"optimizer must be one of lrfused's optimizers (FusedSGD, FusedAdamW, ...), whose kernel computes "
                f"the LR; got {type(optimizer).__name__}: use a torch scheduler for it"
            )
        super().__init__(optimizer)

    def get_lr(self):
        return self.optimizer.get_last_lr()

    def step(self, epoch=None):
        """Counts the step and reads the optimizer's next LR; writes nothing."""
        self._step_count += 1
        self.last_epoch += 1
        self._last_lr = self.optimizer.get_last_lr()

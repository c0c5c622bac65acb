"""The sweep's precision: float32, or autocast to bfloat16 / float16 (float16 with a GradScaler, whose
skipped steps the sweep records as skipped rather than as losses)."""
import contextlib
import warnings

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision, device):
    """Raises before anything runs unless autocast can run `precision` on `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return
    if not torch.amp.is_autocast_available(device.type):
        raise ValueError(f"precision={precision!r}: autocast does not run on {device.type}")
    with warnings.catch_warnings():  # an unsupported dtype is a warning and a disabled autocast
        warnings.simplefilter("ignore")
        enabled = torch.autocast(device.type, dtype=dtype)._enabled
    if not enabled:
        raise ValueError(f"precision={precision!r}: autocast cannot run {dtype} on {device.type}")


class Precision:
    """autocast() around the forward, backward(loss) and step(stepper) with the GradScaler if any."""

    def __init__(self, precision, device):
        self._dtype = PRECISIONS[precision]
        self._device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast(self):
        if self._dtype is None:
            return contextlib.nullcontext()
        # no weight-cast cache: it would outlive a CUDA graph's capture
        return torch.autocast(self._device_type, dtype=self._dtype, cache_enabled=False)

    def backward(self, loss):
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, stepper):
        """The stepper's step; with a GradScaler, a device flag that is True if it skipped the step
        (an inf or NaN grad: the scaler lowered its scale), else None."""
        if self.scaler is None:
            stepper.step(stepper.optimizer.step)
            return None
        scale = self.scaler._scale.clone()  # (the public get_scale() syncs)
        stepper.step(lambda: self.scaler.step(stepper.optimizer))
        self.scaler.update()
        return self.scaler._scale < scale

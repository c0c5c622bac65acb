"""The LR range test's sweep (Ramp)."""
from lrfused._checks import check_choice, check_int, check_number, refuse_tensor_lr
from lrfused._ext import _C
from lrfused._schedule import Field, Schedule, write_fields


def check_ramp(start_lr, end_lr, num_steps, mode):
    refuse_tensor_lr("start_lr", start_lr)
    refuse_tensor_lr("end_lr", end_lr)
    check_number("start_lr", start_lr, strictly_above=True)
    check_number("end_lr", end_lr, strictly_above=True)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be greater than start_lr, got start_lr={start_lr} and end_lr={end_lr}")
    check_int("num_iter", num_steps, minimum=2)
    check_choice("mode", mode, ("exp", "linear"))


def ramp_lr(start_lr, end_lr, num_steps, mode, step):
    """The LR of step `step` (0-based): start_lr * (end_lr / start_lr) ** (step / (num_steps - 1)) for
    mode 'exp', start_lr + (end_lr - start_lr) * step / (num_steps - 1) for 'linear'; exactly start_lr
    at step 0 and end_lr from step num_steps - 1 on. The same function the kernel evaluates."""
    schedule = _C.Schedule()
    schedule.kind = _C.SCHEDULE_RAMP
    write_fields(schedule.ramp, _RAMP_FIELDS, dict(zip(_RAMP_ARGUMENTS, (start_lr, end_lr, num_steps, mode))))
    return _C.schedule_value(schedule, step)[0]


_RAMP_FIELDS = (
    Field("start_lr", convert=float),
    Field("end_lr", convert=float),
    Field("num_iter", "num_steps", int),
    Field("mode", "exponential", lambda mode: mode == "exp"),
)
_RAMP_ARGUMENTS = [f.key for f in _RAMP_FIELDS]


class Ramp(Schedule):
    """An LR that rises from ``start_lr`` (step 0) to ``end_lr`` (step ``num_iter - 1``),
    geometrically (``mode='exp'``) or linearly, then stays at ``end_lr``; constant momentum."""

    kind = _C.SCHEDULE_RAMP
    struct = "ramp"
    fields = _RAMP_FIELDS

    def __init__(self, start_lr=1e-7, end_lr=10.0, num_iter=100, mode="exp"):
        check_ramp(start_lr, end_lr, num_iter, mode)
        self._settings = dict(
            start_lr=float(start_lr), end_lr=float(end_lr), num_iter=num_iter, mode=mode, cycle_momentum=False
        )

    def settings(self):
        return dict(self._settings)

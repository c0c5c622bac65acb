"""The step counter and what the param groups show: the kernel's counter on the device, its host copy
(so that step() never reads the device), the LR and cycled momentum written into each group as
torch's schedulers do, the schedule's keys a step uses, and the warning on a write from outside."""
import warnings

from lrfused._ext import _C
from lrfused._schedule import Constant


class ScheduleShown:
    """Counter and display of a FusedOptimizer. The host copy of the counter is None while unknown
    (after a GradScaler step on CUDA that may not have counted, a captured or a compiled step)."""

    @property
    def step_counter(self):
        """The kernel's step counter: an int64 one-element tensor on the params' device, read and
        advanced by every step (also inside a CUDA graph, which holds its address). Read-only: do
        not write it; load_state_dict sets it."""
        return self._step

    def get_last_lr(self):
        """The LR of each group for the next step, as torch's schedulers' get_last_lr()."""
        if self._host_step is None or self._captured:
            self._show_schedule_values(sync=True)
        return [group["lr"] for group in self.param_groups]

    @property
    def schedule_step(self):
        """How many steps this optimizer's schedule has taken."""
        if self._host_step is None or self._captured:
            self._show_schedule_values(sync=True)
        return self._host_step

    # The host copy sits in a list: torch.compile drops attribute assignments on optimizers, not list writes.
    @property
    def _host_step(self):
        return self._host_count[0]

    @_host_step.setter
    def _host_step(self, value):
        self._host_count[0] = value

    def _check_can_step(self):
        """Past the end of a schedule of fixed length: OneCycleLR's ValueError, unless held."""
        if self._host_step is None:
            return  # unknown without a sync; the kernel holds the final values
        for group in self.param_groups:
            total = self.schedule.total_steps(group)
            if total is not None and self._host_step >= total and not group["hold_final_lr"]:
                raise ValueError(
                    f"Tried to step {self._host_step + 1} times. The specified number of total steps is "
                    f"{total}. Give {self.schedule.longer}, or pass hold_final_lr=True to keep training "
                    "at the final LR."
                )

    def _note_capture(self, kernel_groups):
        """A captured step runs at each replay, not now: the host count becomes unknown (read from
        the device when asked), and the tables the graph reads are kept. From now on replays may
        advance the counter behind the host's back: schedule_step and get_last_lr() read the device
        every time, and the host count read last is a lower bound (the end-of-schedule check may
        then raise late, never early)."""
        self._host_step = None
        self._captured = True
        self._graph_tables.extend(g.table for g in kernel_groups if g.table is not None)

    def _count_host_step(self, found_inf):
        """Advances the host's copy of the counter as the kernel advanced the device's."""
        if self._host_step is None:
            return
        if found_inf is None or self.count_skipped_steps:
            self._host_step += 1
        elif found_inf.device.type == "cpu":
            self._host_step += int(found_inf.item() == 0)  # free on the CPU
        else:
            self._host_step = None  # known on the device only; read when asked for

    def _as_scheduled(self, index, group):
        """The group as this step's schedule reads it. A torch scheduler reads its keys (max_lr, ...)
        when it steps, after the optimizer: an edit shows in group['lr'] after the next step and
        trains from the one after. So the schedule's keys are those of the last step (or of
        construction); the family's keys (weight_decay, ...) are the group's own, as torch's
        optimizers read them."""
        shown = self._shown_values.get(index)
        if shown is not None and not self._warned_outside_write:
            self._check_no_outside_write(index, group, shown)
        scheduled = self._schedule_keys.get(index)
        if scheduled is None or all(group.get(key) == value for key, value in scheduled.items()):
            return group
        return {**group, **scheduled}

    def _check_no_outside_write(self, index, group, shown):
        """Warns once if group['lr'] (or a cycled momentum) is not what the schedule showed: a torch
        scheduler's or a user's write that the kernel, which computes its own, would silently ignore."""
        view = self.family.schedule_view(group)
        for key, value in shown.items():
            if view[key] != value:
                self._warned_outside_write = True
                where = f"group['{key}']" if key == "lr" else self.family.momentum_label
                warnings.warn(
                    f"param group {index}: {where} was set to {view[key]!r} from outside (a torch LR "
                    f"scheduler?), but {type(self).__name__}'s schedule ({type(self.schedule).__name__}) computes "
                    f"the {key} of every step in the kernel and ignores it. To drive the {key} from a torch "
                    f"scheduler or by hand, use lrfused.{self.family.plain_name}(params, lr=..., schedule=Constant()); to "
                    "change this schedule, change its keys (max_lr, ...) in the group.",
                    stacklevel=3,
                )
                return

    def _show_schedule_values(self, kernel_groups=None, sync=False):
        """Writes the next step's LR (and momentum, if cycled) into each group, as torch's schedulers
        do, and remembers the schedule's keys the next step uses (not when only reading: `sync`).
        `kernel_groups`: the groups' configs when the caller has them already."""
        if sync:
            self._host_step = int(self._step.item())
        elif not isinstance(self.schedule, Constant):
            keys = self.schedule.group_keys
            for index, group in enumerate(self.param_groups):
                self._schedule_keys[index] = {key: group[key] for key in keys if key in group}
        if self._host_step is None:
            return
        if kernel_groups is None:
            kernel_groups = [self._group_config(i, g) for i, g in enumerate(self.param_groups)]
        for index, (group, kernel_group) in enumerate(zip(self.param_groups, kernel_groups)):
            if kernel_group.lr is not None:
                continue  # a tensor lr is the group's own (Constant schedule): nothing to show
            step = self._host_step
            total = self.schedule.total_steps(group)
            if total is not None and group["hold_final_lr"]:
                step = min(step, total - 1)
            view = self.family.schedule_view(group)
            if kernel_group.rows is not None:
                lr, momentum = self.schedule.shown_row(kernel_group.rows, step, view)
            else:
                lr, momentum = _C.schedule_value(kernel_group.config.schedule, step)
            group["lr"] = lr
            if group["cycle_momentum"]:
                view["momentum"] = momentum
            if not isinstance(self.schedule, Constant):
                self._shown_values[index] = {"lr": lr, "momentum": momentum} if group["cycle_momentum"] else {"lr": lr}

"""How the sweep applies its LR ramp: computed in the kernel of a family's fused optimizer (the Ramp
schedule), or written into a given torch optimizer's param groups before each step. The sweep loop
(lrfused.find.sweep) is the same for both: it asks the stepper where the step's loss goes (index(),
see put()) and to take the step."""
import torch

from lrfused.find.families import FAMILIES, UNSET, family_of, taking
from lrfused.one_cycle import OneCycle
from lrfused.ramp import Ramp, ramp_lr
from lrfused.schedules import Constant


def optimizer_name(optimizer):
    """How the JSON and the plot name the sweep's optimizer."""
    return optimizer if isinstance(optimizer, str) else f"{type(optimizer).__name__} (given)"


def check_optimizer(model, optimizer, **settings):
    """Raises before anything runs unless `optimizer` (and the settings that go with it: UNSET's, as
    keywords) can be swept on `model`; returns the settings, those of a family (lrfused.find.families)
    with its defaults filled in and checked, and None for those it does not take. A setting the swept
    optimizer does not take must be as range_test leaves it (an optimizer instance takes none)."""
    family = family_of(optimizer)
    taken = family.settings if family else {}
    if any(settings[name] != UNSET[name] for name in ("momentum", "nesterov") if name not in taken):
        names, titles = taking("momentum")
        raise ValueError(f"momentum, nesterov: they set the fused {titles} sweep (optimizer={names}); got "
                         f"momentum={settings['momentum']!r}, nesterov={settings['nesterov']!r} with "
                         f"optimizer={optimizer_name(optimizer)}")
    if isinstance(optimizer, torch.optim.Optimizer):
        _check_instance(model, optimizer, settings)
        return dict.fromkeys(UNSET)
    if family is None:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, FAMILIES))} or a "
                         f"torch.optim.Optimizer instance, got {optimizer!r}")
    for name, value in settings.items():
        if name not in taken and value != UNSET[name]:
            raise ValueError(f"{name} applies to optimizer={taking(name)[0]} only, got {name}={value!r} with "
                             f"optimizer={family.name!r}")
    checked = family.settings_of(settings)
    return {name: checked.get(name) for name in UNSET}


def _check_instance(model, optimizer, settings):
    """An optimizer instance: swept with its own hyperparameters, over the model's parameters."""
    schedule = getattr(optimizer, "schedule", None)
    if schedule is not None and not isinstance(schedule, Constant):
        classes = " / ".join(family.optimizer.__name__ for family in FAMILIES.values())
        raise ValueError(f"optimizer: {type(optimizer).__name__} computes its own LR from its schedule "
                         f"({type(schedule).__name__}) in the kernel, so a sweep cannot set it; use "
                         f"lrfused.{classes}(params, schedule=Constant()), or optimizer="
                         f"{' / '.join(map(repr, FAMILIES))}")
    given = [name for name, value in settings.items() if name not in ("momentum", "nesterov") and value is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: an optimizer instance sweeps with its own hyperparameters; "
                         "set them on the optimizer instead")
    own = {id(p) for p in model.parameters()}
    for index, group in enumerate(optimizer.param_groups):
        if any(id(p) not in own for p in group["params"]):
            raise ValueError(f"optimizer: param group {index} holds parameters that are not the model's "
                             "(build the optimizer over model.parameters())")
    first = float(optimizer.param_groups[0]["lr"])
    if not first > 0:
        raise ValueError(f"optimizer: the first param group's lr must be > 0 (the sweep keeps every group's "
                         f"ratio to it), got {first}")


def make_stepper(model, config, optimizer):
    """The stepper for config.optimizer (a family's name) or the given optimizer instance: the sweep's
    ramp, or with config.one_cycle_lr a 1cycle run of config.num_iter steps at that max_lr (torch's
    OneCycleLR defaults, momentum / beta1 cycled), as the recommendation's confirmation trains."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return WrittenLR(optimizer, config)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters that require grad: there is nothing to sweep")
    if config.one_cycle_lr is None:
        schedule = Ramp(start_lr=config.start_lr, end_lr=config.end_lr, num_iter=config.num_iter, mode=config.mode)
    else:  # as the recommended 1cycle drop-in trains: momentum (beta1) cycled, whatever the sweep's
        schedule = OneCycle(config.one_cycle_lr, total_steps=config.num_iter)
    return KernelSchedule(FAMILIES[config.optimizer].sweep_optimizer(params, config, schedule), config)


class KernelSchedule:
    """A family's fused optimizer on a kernel schedule (the sweep's Ramp, a confirmation candidate's
    OneCycle): the LR computed in the kernel from the optimizer's device step counter, so a step
    needs no host work and can be captured in a CUDA graph."""

    capturable = True

    def __init__(self, optimizer, config):
        self.optimizer = optimizer
        self._last = config.num_iter - 1

    def index(self):
        # the step counter read on the device: no sync, graph-safe
        # (clamped: a counter past the end must not index out of bounds)
        return self.optimizer.step_counter.view(1).clamp(max=self._last)

    def step(self, take_step):
        """take_step(): optimizer.step(), or a GradScaler's step of it."""
        take_step()


class WrittenLR:
    """Any torch optimizer: the ramp's LR written into every param group before each step, each group
    keeping the ratio of its LR to the first group's. The host counts the steps."""

    capturable = False

    def __init__(self, optimizer, config):
        self.optimizer = optimizer
        first = float(optimizer.param_groups[0]["lr"])
        self._ratios = [float(group["lr"]) / first for group in optimizer.param_groups]
        self._ramp = (config.start_lr, config.end_lr, config.num_iter, config.mode)
        self._last = config.num_iter - 1
        self._step = 0

    def index(self):
        return min(self._step, self._last)

    def step(self, take_step):
        """take_step(): optimizer.step(), or a GradScaler's step of it."""
        lr = ramp_lr(*self._ramp, min(self._step, self._last))
        for group, ratio in zip(self.optimizer.param_groups, self._ratios):
            if isinstance(group["lr"], torch.Tensor):  # a tensor LR (capturable/fused optimizers) stays one
                group["lr"].fill_(lr * ratio)
            else:
                group["lr"] = lr * ratio
        take_step()
        self._step += 1


def put(history, index, value):
    """history[index] = value (a scalar tensor), index from a stepper's index()."""
    if isinstance(index, int):
        history[index] = value
    else:
        history.index_copy_(0, index, value.reshape(1))

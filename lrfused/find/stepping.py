"""How the sweep applies its LR ramp: computed in the kernel of lrfused's fused SGD or AdamW (the Ramp
schedule), or written into a given torch optimizer's param groups before each step. The sweep loop
(lrfused.find.sweep) is the same for both: it asks the stepper where the step's loss goes (index(),
see put()) and to take the step."""
import torch

from lrfused._checks import check_number
from lrfused.fused_adamw import FusedAdamW, check_betas
from lrfused.fused_sgd import FusedSGD
from lrfused.one_cycle import OneCycle
from lrfused.ramp import Ramp, ramp_lr
from lrfused.schedules import Constant

OPTIMIZER_NAMES = ("sgd", "adamw")
SGD_MOMENTUM = 0.9  # range_test's default momentum


def optimizer_name(optimizer):
    """How the JSON and the plot name the sweep's optimizer."""
    return optimizer if isinstance(optimizer, str) else f"{type(optimizer).__name__} (given)"


def check_optimizer(model, optimizer, *, betas, eps, weight_decay, momentum, nesterov):
    """Raises before anything runs unless `optimizer` (and the settings that go with it) can be swept
    on `model`; returns (betas, eps, weight_decay) with the defaults of that optimizer filled in.
    momentum and nesterov belong to the fused SGD sweep: any other optimizer refuses them unless they
    are range_test's defaults (which it then does not use)."""
    if optimizer != "sgd" and (momentum != SGD_MOMENTUM or nesterov):
        raise ValueError(f"momentum, nesterov: they set the fused SGD sweep (optimizer='sgd'); got momentum={momentum!r}, "
                         f"nesterov={nesterov!r} with optimizer={optimizer_name(optimizer)}")
    if isinstance(optimizer, torch.optim.Optimizer):
        schedule = getattr(optimizer, "schedule", None)
        if schedule is not None and not isinstance(schedule, Constant):
            raise ValueError(f"optimizer: {type(optimizer).__name__} computes its own LR from its schedule "
                             f"({type(schedule).__name__}) in the kernel, so a sweep cannot set it; use "
                             "lrfused.FusedSGD / FusedAdamW(params, schedule=Constant()), or optimizer='sgd' / 'adamw'")
        given = [name for name, value in (("betas", betas), ("eps", eps), ("weight_decay", weight_decay)) if value is not None]
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
        return None, None, None
    if optimizer not in OPTIMIZER_NAMES:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZER_NAMES))} or a "
                         f"torch.optim.Optimizer instance, got {optimizer!r}")
    if optimizer == "sgd":
        for name, value in (("betas", betas), ("eps", eps)):
            if value is not None:
                raise ValueError(f"{name} applies to optimizer='adamw' only, got {name}={value!r} with optimizer='sgd'")
        return None, None, 0.0 if weight_decay is None else weight_decay  # FusedSGD checks it
    # torch.optim.AdamW's defaults
    betas = check_betas("betas", (0.9, 0.999) if betas is None else betas)
    eps = check_number("eps", 1e-8 if eps is None else eps, strictly_above=True)
    weight_decay = check_number("weight_decay", 1e-2 if weight_decay is None else weight_decay)
    return betas, eps, weight_decay


def make_stepper(model, config, optimizer):
    """The stepper for config.optimizer ("sgd", "adamw") or the given optimizer instance: the sweep's
    ramp, or with config.one_cycle_lr a 1cycle run of config.num_iter steps at that max_lr (torch's
    OneCycleLR defaults, momentum / beta1 cycled), as the recommendation's confirmation trains."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return WrittenLR(optimizer, config)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters that require grad: there is nothing to sweep")
    if config.one_cycle_lr is None:
        schedule = Ramp(start_lr=config.start_lr, end_lr=config.end_lr, num_iter=config.num_iter, mode=config.mode)
    else:  # as the recommended FusedOneCycleSGD / AdamW trains: momentum (beta1) cycled, whatever the sweep's
        schedule = OneCycle(config.one_cycle_lr, total_steps=config.num_iter)
    if config.optimizer == "sgd":
        return KernelSchedule(FusedSGD(
            params, lr=config.start_lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.nesterov, schedule=schedule,
        ), config)
    return KernelSchedule(FusedAdamW(
        params, lr=config.start_lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay,
        schedule=schedule,
    ), config)


class KernelSchedule:
    """lrfused's fused SGD or AdamW on a kernel schedule (the sweep's Ramp, a confirmation candidate's
    OneCycle): the LR computed in the kernel from the optimizer's device step counter, so a step
    needs no host work and can be captured in a CUDA graph."""

    capturable = True

    def __init__(self, optimizer, config):
        self.optimizer = optimizer
        self._last = config.num_iter - 1

    def index(self):
        # the step counter read on the device: no sync, graph-safe
        # (clamped: a counter past the end must not index out of bounds)
        return self.optimizer._step.view(1).clamp(max=self._last)

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

"""Training one task with plain torch (never lrfused's optimizers): the oracle's and the peers' loop."""
import math

import torch

ONE_CYCLE_OPTIMIZERS = {
    "sgd": lambda params, wd: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=wd),
    "adamw": lambda params, wd: torch.optim.AdamW(params, lr=1e-3, weight_decay=wd),
}


class Batches:
    """(inputs, targets) batches of a tensor data set, reshuffled at every pass by its own generator
    (so the range test's RNG restore does not replay one order), the last partial batch dropped."""

    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.x) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=self.generator)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[index], self.y[index]


def val_batches(task, size=500):
    _, _, x, y = task.tensors
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def fresh_model(task, seed):
    torch.manual_seed(seed)
    return task.make_model()


@torch.no_grad()
def evaluate(task, model):
    """(validation loss, accuracy or None): the mean over every validation example."""
    model.eval()
    loss_fn = task.loss_fn()
    total, correct, count = 0.0, 0, 0
    for x, y in val_batches(task):
        out = model(x)
        total += float(loss_fn(out, y)) * y.numel()
        if task.classifies:
            correct += int((out.argmax(dim=-1) == y).sum())
        count += y.numel()
    model.train()
    loss = total / count
    return (loss if math.isfinite(loss) else math.inf), (correct / count if task.classifies else None)


def train(task, seed, make_optimizer, make_scheduler=None, before_eval=None):
    """Trains a fresh model (init and batch order from `seed`) for the task's budget; returns
    {"val_loss", "val_accuracy"}. A run whose loss is not finite stops and scores inf."""
    model = fresh_model(task, seed)
    x, y, _, _ = task.tensors
    data = Batches(x, y, task.batch_size, seed)
    opt = make_optimizer(model.parameters())
    scheduler = make_scheduler(opt) if make_scheduler else None
    loss_fn = task.loss_fn()
    model.train()
    for _ in range(task.epochs):
        for xb, yb in data:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            if not torch.isfinite(loss):
                return {"val_loss": math.inf, "val_accuracy": _chance(task)}
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
    if before_eval is not None:
        before_eval(model, opt, data)
    loss, accuracy = evaluate(task, model)
    return {"val_loss": loss, "val_accuracy": accuracy if math.isfinite(loss) else _chance(task)}


def train_one_cycle(task, max_lr, seed):
    """The policy the recommendation is for: torch SGD (momentum 0.9) or AdamW with the task's
    weight decay, OneCycleLR at `max_lr` over the task's budget (torch's defaults otherwise)."""
    return train(
        task, seed,
        lambda params: ONE_CYCLE_OPTIMIZERS[task.family](params, task.weight_decay),
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=task.total_steps),
    )


def _chance(task):
    return 0.0 if task.classifies else None

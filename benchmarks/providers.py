"""The things a benchmark times: one optimizer step of each provider, and the memory floor.

Every optimizer provider runs its family (SGD with momentum and weight decay, AdamW or Lion with
weight decay) on the 1cycle schedule: torch's optimizers followed by OneCycleLR.step(), lrfused's
FusedOneCycleSGD / FusedOneCycleAdamW / FusedOneCycleLion .step() alone. torch has no Lion: its
providers are PlainLion below, a tensor at a time (as lion-pytorch writes it) or with foreach ops.
"""
import torch

import lrfused

PROVIDERS = ("torch_forloop", "torch_foreach", "torch_fused", "lrfused")
ONE_CYCLE = {"sgd": lrfused.FusedOneCycleSGD, "adamw": lrfused.FusedOneCycleAdamW, "lion": lrfused.FusedOneCycleLion}
MAX_LR, WEIGHT_DECAY = 0.1, 5e-4
TOTAL_STEPS = 10**8  # longer than any benchmark, so the schedule never runs out


def make_params(shapes, dtype, device):
    generator = torch.Generator(device=device).manual_seed(0)
    params = [torch.randn(s, dtype=dtype, device=device, generator=generator) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, dtype=dtype, device=device, generator=generator) * 1e-3
    return params


def make_step(provider, params, family="sgd"):
    """A no-argument callable doing one optimizer step (schedule included) of `provider`."""
    if provider == "lrfused":
        opt = ONE_CYCLE[family](params, max_lr=MAX_LR, total_steps=TOTAL_STEPS, weight_decay=WEIGHT_DECAY)
        return opt.step
    flags = {"torch_forloop": dict(foreach=False), "torch_foreach": dict(foreach=True), "torch_fused": dict(fused=True)}
    if family == "sgd":
        opt = torch.optim.SGD(params, lr=MAX_LR, momentum=0.9, weight_decay=WEIGHT_DECAY, **flags[provider])
    elif family == "adamw":
        opt = torch.optim.AdamW(params, lr=MAX_LR, weight_decay=WEIGHT_DECAY, **flags[provider])
    else:
        opt = PlainLion(params, lr=MAX_LR, weight_decay=WEIGHT_DECAY, **flags[provider])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, total_steps=TOTAL_STEPS)

    def step():
        opt.step()
        sched.step()

    return step


def providers_of(family):
    """The providers a family has: torch has no fused Lion."""
    return tuple(p for p in PROVIDERS if not (family == "lion" and p == "torch_fused"))


class PlainLion(torch.optim.Optimizer):
    """Lion in plain torch, the peer of FusedLion's speed: per param (foreach=False, lion-pytorch's
    loop) or over all params at once with torch._foreach ops, the interpolations as lerps
    (foreach=True, as lion-pytorch's foreach variant)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, foreach=False):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, foreach=foreach))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            moments = [self.state[p].setdefault("exp_avg", torch.zeros_like(p)) for p in params]
            if group["foreach"]:
                torch._foreach_mul_(params, 1 - lr * decay)
                updates = [m.clone() for m in moments]
                torch._foreach_lerp_(updates, grads, 1 - beta1)
                torch._foreach_sign_(updates)
                torch._foreach_add_(params, updates, alpha=-lr)
                torch._foreach_lerp_(moments, grads, 1 - beta2)
                continue
            for p, grad, exp_avg in zip(params, grads, moments):
                p.mul_(1 - lr * decay)
                p.add_(exp_avg.mul(beta1).add_(grad, alpha=1 - beta1).sign_(), alpha=-lr)
                exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)


def bytes_per_param(dtype, family="sgd"):
    """Bytes a step must move per param. SGD with momentum and Lion: read param, grad, buffer
    (exp_avg); write param, buffer. AdamW: read param, grad, exp_avg, exp_avg_sq; write param,
    exp_avg, exp_avg_sq."""
    return (7 if family == "adamw" else 5) * torch.tensor([], dtype=dtype).element_size()


def make_floor(shapes, dtype, device, family="sgd"):
    """A streaming copy that moves the same bytes as the step: half of them read, half written."""
    total_bytes = sum(torch.Size(s).numel() for s in shapes) * bytes_per_param(dtype, family)
    src = torch.ones(total_bytes // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src), total_bytes

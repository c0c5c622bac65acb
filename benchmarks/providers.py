"""The things a benchmark times: one optimizer step of each provider, and the memory floor.

Every optimizer provider runs its family (SGD with momentum and weight decay, or AdamW with weight
decay) on the 1cycle schedule: torch's optimizers followed by OneCycleLR.step(), lrfused's
FusedOneCycleSGD / FusedOneCycleAdamW .step() alone.
"""
import torch

import lrfused

PROVIDERS = ("torch_forloop", "torch_foreach", "torch_fused", "lrfused")
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
        one_cycle = lrfused.FusedOneCycleSGD if family == "sgd" else lrfused.FusedOneCycleAdamW
        opt = one_cycle(params, max_lr=MAX_LR, total_steps=TOTAL_STEPS, weight_decay=WEIGHT_DECAY)
        return opt.step
    flags = {"torch_forloop": dict(foreach=False), "torch_foreach": dict(foreach=True), "torch_fused": dict(fused=True)}
    if family == "sgd":
        opt = torch.optim.SGD(params, lr=MAX_LR, momentum=0.9, weight_decay=WEIGHT_DECAY, **flags[provider])
    else:
        opt = torch.optim.AdamW(params, lr=MAX_LR, weight_decay=WEIGHT_DECAY, **flags[provider])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=MAX_LR, total_steps=TOTAL_STEPS)

    def step():
        opt.step()
        sched.step()

    return step


def bytes_per_param(dtype, family="sgd"):
    """Bytes a step must move per param. SGD with momentum: read param, grad, buffer; write param,
    buffer. AdamW: read param, grad, exp_avg, exp_avg_sq; write param, exp_avg, exp_avg_sq."""
    return (5 if family == "sgd" else 7) * torch.tensor([], dtype=dtype).element_size()


def make_floor(shapes, dtype, device, family="sgd"):
    """A streaming copy that moves the same bytes as the step: half of them read, half written."""
    total_bytes = sum(torch.Size(s).numel() for s in shapes) * bytes_per_param(dtype, family)
    src = torch.ones(total_bytes // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src), total_bytes

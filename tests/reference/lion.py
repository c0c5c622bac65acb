"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2) in plain
torch, one tensor at a time, as the paper writes it, and lrfused's FusedLion side by side with it
driven by torch's schedulers (the harness: moments.py). ReferenceLion keeps `betas` in its groups, so
OneCycleLR / CyclicLR cycle beta1 as they do Adam's."""
import torch

import lrfused
from reference.moments import MomentReference

LION_KEYS = ("lr", "betas", "weight_decay", "maximize")
MOMENT_KEYS = ("exp_avg",)
TOLERANCES = {torch.float32: {}, torch.float64: {}}  # torch.testing's defaults


class ReferenceLion(torch.optim.Optimizer):
    """torch.optim's conventions: maximize negates the grad, a param without a grad is skipped, a
    complex param is updated as its real view."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg = state["exp_avg"]
                if torch.is_complex(p):  # the real and imaginary parts as two reals, as torch's AdamW does
                    p, grad, exp_avg = torch.view_as_real(p), torch.view_as_real(grad), torch.view_as_real(exp_avg)
                p.mul_(1 - lr * weight_decay)
                update = (exp_avg * beta1 + grad * (1 - beta1)).sign_()
                p.add_(update, alpha=-lr)
                exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
        return loss


LION = MomentReference(
    lrfused.FusedLion,
    lrfused.FusedOneCycleLion,
    ReferenceLion,
    keys=LION_KEYS,
    moment_keys=MOMENT_KEYS,
    count_key=None,
    tolerances=TOLERANCES,
    param_norm="mean",  # (a sign's update: see MomentReference)
)
run_and_compare = LION.run_and_compare
torch_one_cycle = LION.torch_one_cycle
assert_states_match = LION.assert_states_match

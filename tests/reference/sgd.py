"""Runs lrfused's optimizers side by side with torch.optim.SGD(foreach=False) + torch's schedulers."""
import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LambdaLR,
    LinearLR,
    OneCycleLR,
    SequentialLR,
)

import lrfused
from lrfused.schedules import Constant, Table, WarmupCosine
from reference.common import MIN_SAMPLES, compare_each_step

SGD_KEYS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize")


def split_kwargs(kwargs):
    sgd = {k: v for k, v in kwargs.items() if k in SGD_KEYS}
    schedule = {k: v for k, v in kwargs.items() if k not in SGD_KEYS}
    return sgd, schedule


def step_both(fused, torch_opt, scheduler, fused_params, torch_params, make_grad=torch.randn_like):
    """One step of each side with the same fresh grads (make_grad(fused_param), a clone for torch)."""
    for f, r in zip(fused_params, torch_params):
        grad = make_grad(f)
        f.grad, r.grad = grad, grad.clone()
    fused.step()
    torch_opt.step()
    scheduler.step()


def torch_one_cycle(groups, **kwargs):
    sgd, schedule = split_kwargs(kwargs)
    sgd.setdefault("momentum", 0.9)
    schedule.pop("hold_final_lr", None)
    opt = torch.optim.SGD(groups, lr=0.1, foreach=False, **sgd)
    return opt, OneCycleLR(opt, **schedule)


def torch_cyclic(groups, **kwargs):
    sgd, schedule = split_kwargs(kwargs)
    sgd.setdefault("momentum", 0.9)
    opt = torch.optim.SGD(groups, lr=0.1, foreach=False, **sgd)
    return opt, CyclicLR(opt, **schedule)


def torch_warm_restarts(groups, max_lr, T_0, T_mult=1, eta_min=0.0, **kwargs):
    sgd, _ = split_kwargs(kwargs)
    sgd.setdefault("momentum", 0.9)
    if isinstance(groups, list) and groups and isinstance(groups[0], dict):
        lrs = max_lr if isinstance(max_lr, list) else [max_lr] * len(groups)
        groups = [{**g, "lr": lr} for g, lr in zip(groups, lrs)]
    opt = torch.optim.SGD(groups, lr=max_lr if not isinstance(max_lr, list) else 0.1, foreach=False, **sgd)
    return opt, CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=eta_min)


def fused_constant(groups, lr, **sgd):
    return lrfused.FusedSGD(groups, lr=lr, schedule=Constant(), **sgd)


def torch_constant(groups, lr, **sgd):
    opt = torch.optim.SGD(groups, lr=lr, foreach=False, **sgd)
    return opt, LambdaLR(opt, lambda step: 1.0)  # a scheduler that changes nothing


def fused_warmup_cosine(groups, lr, total_steps, warmup_steps=0, start_factor=1.0 / 3, eta_min=0.0, **sgd):
    schedule = WarmupCosine(total_steps, warmup_steps, start_factor, eta_min)
    return lrfused.FusedSGD(groups, lr=lr, schedule=schedule, **sgd)


def torch_warmup_cosine(groups, lr, total_steps, warmup_steps=0, start_factor=1.0 / 3, eta_min=0.0, **sgd):
    opt = torch.optim.SGD(groups, lr=lr, foreach=False, **sgd)
    cosine = CosineAnnealingLR(opt, T_max=total_steps - warmup_steps, eta_min=eta_min)
    if warmup_steps == 0:
        return opt, cosine
    warmup = LinearLR(opt, start_factor=start_factor, total_iters=warmup_steps)
    return opt, SequentialLR(opt, [warmup, cosine], milestones=[warmup_steps])


def fused_table(groups, lr, lr_lambda, total_steps, momenta=None, **sgd):
    return lrfused.FusedSGD(groups, lr=lr, schedule=Table(lr_lambda, total_steps, momentum=momenta), **sgd)


class _TableScheduler(LambdaLR):
    """LambdaLR, plus a momentum per step (what a user's own loop would set)."""

    def __init__(self, opt, lr_lambda, momenta):
        self.momenta = momenta
        super().__init__(opt, lr_lambda)

    def get_lr(self):
        if self.momenta is not None:
            for group in self.optimizer.param_groups:
                group["momentum"] = self.momenta[min(self.last_epoch, len(self.momenta) - 1)]
        return super().get_lr()


def torch_table(groups, lr, lr_lambda, total_steps, momenta=None, **sgd):
    """LambdaLR(opt, lr_lambda); a list of factors as a lambda that shows the last one after the
    last step (what lrfused shows then, having no lr_lambda(total_steps) to show)."""
    if not callable(lr_lambda):
        factors = [float(f) for f in lr_lambda]
        lr_lambda = lambda step: factors[min(step, total_steps - 1)]  # noqa: E731
    if momenta is not None:
        sgd["momentum"] = momenta[0]  # the scheduler sets each step's; SGD checks nesterov against this one
    opt = torch.optim.SGD(groups, lr=lr, foreach=False, **sgd)
    return opt, _TableScheduler(opt, lr_lambda, momenta)


PAIRS = {
    "one_cycle": (lrfused.FusedOneCycleSGD, torch_one_cycle),
    "cyclic": (lrfused.FusedCyclicSGD, torch_cyclic),
    "warm_restarts": (lrfused.FusedWarmRestartsSGD, torch_warm_restarts),
    "constant": (fused_constant, torch_constant),
    "warmup_cosine": (fused_warmup_cosine, torch_warmup_cosine),
    "table": (fused_table, torch_table),
}
# torch computes these schedules recursively (each LR from the last), lrfused in closed form: the
# values agree to rounding, not bit for bit.
APPROXIMATE_SCHEDULES = ("warmup_cosine",)


def low_precision(dtype):
    return dtype in (torch.float16, torch.bfloat16)


class SideBySide:
    """The same params and grads given to lrfused and to torch (and, for float16/bfloat16, to a
    float32 torch run that serves as the accurate reference)."""

    def __init__(self, kind, group_specs, dtype, device, master_weights=False, **kwargs):
        """group_specs: one dict per param group, {'shapes': [...], **per-group options}.
        master_weights: lrfused's only (torch has none); the low-precision rule still applies."""
        fused_cls, torch_factory = PAIRS[kind]
        self.exact_schedule = kind not in APPROXIMATE_SCHEDULES
        self.dtype = dtype
        self.shapes = [list(spec["shapes"]) for spec in group_specs]
        masters = [[torch.randn(s, dtype=torch.float32, device=device) for s in shapes] for shapes in self.shapes]
        self.fused_params = [[m.to(dtype, copy=True) for m in group] for group in masters]
        self.torch_params = [[m.to(dtype, copy=True) for m in group] for group in masters]
        # Low precision: the float32 reference starts from the same (rounded) values.
        self.exact_params = [[m.to(dtype).to(torch.float32, copy=True) for m in group] for group in masters]
        options = [{k: v for k, v in spec.items() if k != "shapes"} for spec in group_specs]

        def groups(param_lists):
            return [{"params": ps, **o} for ps, o in zip(param_lists, options)]

        self.fused = fused_cls(groups(self.fused_params), master_weights=master_weights, **kwargs)
        self.torch_opt, self.torch_sched = torch_factory(groups(self.torch_params), **kwargs)
        if low_precision(dtype):
            self.exact_opt, self.exact_sched = torch_factory(groups(self.exact_params), **kwargs)

    def all_params(self):
        runs = [self.fused_params, self.torch_params]
        if low_precision(self.dtype):
            runs.append(self.exact_params)
        return runs

    def step(self, skip=(), grad_scale=None, found_inf=False):
        """One step of every run with the same random grads; params whose flat index is in `skip`
        get no grad this step. grad_scale (a power of two): lrfused gets the grads scaled and the
        scale, as from torch.amp.GradScaler; found_inf: the step is skipped (torch's optimizers are
        not stepped, their schedulers are, as in the usual GradScaler loop)."""
        index = 0
        for group_i, shapes in enumerate(self.shapes):
            for param_i, shape in enumerate(shapes):
                grad = None if index in skip else torch.randn(shape, device=self.fused_params[0][0].device)
                for run in self.all_params():
                    p = run[group_i][param_i]
                    p.grad = None if grad is None else grad.to(p.dtype, copy=True)
                    if grad is not None and run is self.fused_params and grad_scale is not None:
                        p.grad.mul_(grad_scale)
                index += 1
        if grad_scale is not None:
            device = self.fused_params[0][0].device
            self.fused.grad_scale = torch.tensor(float(grad_scale), device=device)
            self.fused.found_inf = torch.tensor(float(found_inf), device=device)
        self.fused.step()
        if grad_scale is not None:
            del self.fused.grad_scale, self.fused.found_inf
        for opt, sched in [(self.torch_opt, self.torch_sched)] + (
            [(self.exact_opt, self.exact_sched)] if low_precision(self.dtype) else []
        ):
            if not found_inf:
                opt.step()
            sched.step()

    def assert_schedule_matches(self):
        def same(a, b):
            return a == b if self.exact_schedule else abs(a - b) <= 1e-12 * max(abs(a), abs(b))

        for fused_group, torch_group in zip(self.fused.param_groups, self.torch_opt.param_groups):
            assert same(fused_group["lr"], torch_group["lr"]), (fused_group["lr"], torch_group["lr"])
            assert fused_group["momentum"] == torch_group["momentum"]
        assert all(map(same, self.fused.get_last_lr(), self.torch_sched.get_last_lr()))

    def assert_params_match(self, step):
        fused = [p for g in self.fused_params for p in g]
        ref = [p for g in self.torch_params for p in g]
        if not low_precision(self.dtype):
            for i, (f, r) in enumerate(zip(fused, ref)):
                torch.testing.assert_close(f, r, msg=lambda m: f"step {step}, param {i}: {m}")
                self._assert_buffer_matches(f, r, step, i)
            return
        # float16/bfloat16: lrfused computes in float32 and rounds once; torch rounds after every op.
        # lrfused must be at most twice as far as torch from the float32 run, plus one ulp of slack.
        # The rule compares error maxima, which needs samples: each param of MIN_SAMPLES elements or
        # more is judged alone, the smaller ones pooled (on two elements who rounds luckier is chance).
        exact = [p for g in self.exact_params for p in g]
        large = [i for i, e in enumerate(exact) if e.numel() >= MIN_SAMPLES]
        small = [i for i, e in enumerate(exact) if 0 < e.numel() < MIN_SAMPLES]
        for name, members in [(f"param {i}", [i]) for i in large] + [("the small params", small)]:
            if not members:
                continue
            e = torch.cat([exact[i].flatten() for i in members])
            f = torch.cat([fused[i].flatten().float() for i in members])
            r = torch.cat([ref[i].flatten().float() for i in members])
            fused_error, torch_error = (f - e).abs().max().item(), (r - e).abs().max().item()
            slack = torch.finfo(self.dtype).eps * max(e.abs().max().item(), 1.0)
            assert fused_error <= 2 * torch_error + slack, (
                f"step {step}, {name}: lrfused is {fused_error:.3g} from the float32 reference, "
                f"torch {self.dtype} is {torch_error:.3g}"
            )

    def _assert_buffer_matches(self, fused_param, torch_param, step, i):
        fused_buf = self.fused.state.get(fused_param, {}).get("momentum_buffer")
        torch_buf = self.torch_opt.state.get(torch_param, {}).get("momentum_buffer")
        if torch_buf is None:
            # torch has no buffer yet (no grad so far): ours, if allocated, was never written.
            if fused_buf is not None:
                assert int(self.fused.state[fused_param]["momentum_first_step"]) == lrfused._C.NEVER_WRITTEN
            return
        assert fused_buf is not None, f"step {step}, param {i}: torch has a momentum buffer, lrfused none"
        torch.testing.assert_close(fused_buf, torch_buf, msg=lambda m: f"step {step}, buffer {i}: {m}")


def run_and_compare(kind, group_specs, dtype, device, steps, skips=lambda step: (), **kwargs):
    return compare_each_step(SideBySide(kind, group_specs, dtype, device, **kwargs), steps, skips)


def assert_states_match(fused, torch_opt, fused_params, torch_params, step, **tol):
    """Params and momentum buffers, same dtype on both sides; a param torch has not stepped yet has
    no buffer on lrfused's side either, or one that no step has written."""
    for i, (f, r) in enumerate(zip(fused_params, torch_params)):
        where = f"step {step}, param {i}"
        torch.testing.assert_close(f, r, **tol, msg=lambda m: f"{where}: {m}")
        if r in torch_opt.state:
            torch.testing.assert_close(
                fused.state[f]["momentum_buffer"], torch_opt.state[r]["momentum_buffer"], **tol,
                msg=lambda m: f"{where}, momentum_buffer: {m}",
            )
        else:  # torch has not stepped yet: our buffer was never written
            assert f not in fused.state or int(fused.state[f]["momentum_first_step"]) == lrfused._C.NEVER_WRITTEN, where

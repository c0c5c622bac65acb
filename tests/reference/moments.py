"""The side-by-side harness of a family whose params keep moment tensors beside a plain-torch
optimizer of the same arguments (AdamW: torch.optim.AdamW(foreach=False); Lion: reference/lion.py's),
each driven by torch's schedulers (and, for float16/bfloat16, a float64 torch run that serves as the
accurate reference). A family's module builds one MomentReference."""
import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LinearLR,
    OneCycleLR,
    SequentialLR,
)

import lrfused
from reference.common import MIN_SAMPLES, assert_step_matches, compare_each_step

LOW_PRECISION = (torch.float16, torch.bfloat16)
# torch computes these recursively (each LR from the last), lrfused in closed form: equal to rounding.
APPROXIMATE_SCHEDULES = ("warmup_cosine",)


def low_precision(dtype):
    return dtype in LOW_PRECISION


def random_grad(shape, dtype, device):
    """A float32 normal grad; for float16/bfloat16 one whose magnitudes lie in [0.25, 1.75], so that
    (1 - beta2) * grad**2 stays a normal float16 number: with grads near 0 torch's own float16 AdamW
    divides by a flushed-to-zero second moment (eps=1e-8 is 0 in float16) and its error is inf, which
    would make the low-precision rule vacuous."""
    grad = torch.randn(shape, device=device)
    if low_precision(dtype):
        grad = grad.sign().masked_fill_(grad == 0, 1.0) * (0.25 + 1.5 * torch.rand(shape, device=device))
    return grad.to(dtype)


def assert_within_twice_torch(fused, ref, exact, dtype, where, floor=1.0, norm="max"):
    """The low-precision rule: lrfused (float32 math, one rounding) at most twice as far as torch in the
    same dtype from an accurate run (the largest error, or the mean: see MomentReference), plus one ulp
    of the largest value (at least of `floor`)."""
    error = (lambda d: d.abs().max().item()) if norm == "max" else (lambda d: d.abs().mean().item())
    fused_error = error(fused.double() - exact.double())
    torch_error = error(ref.double() - exact.double())
    slack = torch.finfo(dtype).eps * max(exact.abs().max().item(), floor)
    assert fused_error <= 2 * torch_error + slack, (
        f"{where}: lrfused is {fused_error:.3g} from the float64 reference, torch {dtype} is {torch_error:.3g}"
    )


class MomentReference:
    """One family's pairs (lrfused factory, torch factory) per schedule and its state comparisons.
    fused / one_cycle: the family's general optimizer and 1cycle drop-in; torch_optimizer(groups,
    **options): the plain-torch optimizer; keys: the optimizer's own arguments (the rest of a test's
    keywords are the schedule's); moment_keys: its per-param state tensors; count_key: torch's
    per-param step key, or None; tolerances: dtype -> assert_close keywords against torch.
    param_norm: how the low-precision rule measures a param's error, "max" or "mean" (for an update
    that is a sign, as Lion's: where the sign's argument rounds to either side of 0 the two runs move
    an element 2 * lr apart, in lrfused's float32 math or in torch's float16 alike, at elements that
    differ by chance; the mean still sees any systematic error)."""

    def __init__(self, fused, one_cycle, torch_optimizer, keys, moment_keys, count_key, tolerances, param_norm="max"):
        self.param_norm = param_norm
        self.fused, self.one_cycle, self.torch_optimizer = fused, one_cycle, torch_optimizer
        self.keys, self.moment_keys, self.count_key, self.tolerances = keys, moment_keys, count_key, tolerances
        self.pairs = {
            "constant": (self.fused_constant, self.torch_constant),
            "one_cycle": (self.fused_one_cycle, self.torch_one_cycle),
            "one_cycle_schedule": (self.fused_one_cycle_schedule, self.torch_one_cycle),
            "cyclic": (self.fused_cyclic, self.torch_cyclic),
            "warm_restarts": (self.fused_warm_restarts, self.torch_warm_restarts),
            "warmup_cosine": (self.fused_warmup_cosine, self.torch_warmup_cosine),
        }

    def split_kwargs(self, kwargs):
        options = {k: v for k, v in kwargs.items() if k in self.keys}
        schedule = {k: v for k, v in kwargs.items() if k not in self.keys}
        return options, schedule

    # --- the pairs: lrfused factory(groups, **kwargs) -> optimizer; torch factory -> (optimizer, scheduler)

    def fused_constant(self, groups, **kwargs):
        return self.fused(groups, **kwargs)

    def torch_constant(self, groups, **kwargs):
        return self.torch_optimizer(groups, **kwargs), None

    def fused_one_cycle(self, groups, **kwargs):
        return self.one_cycle(groups, **kwargs)

    def fused_one_cycle_schedule(self, groups, **kwargs):
        """The same through the general optimizer with schedule=OneCycle(...)."""
        options, schedule = self.split_kwargs(kwargs)
        options.pop("lr", None)
        return self.fused(groups, schedule=lrfused.schedules.OneCycle(**schedule), **options)

    def torch_one_cycle(self, groups, **kwargs):
        options, schedule = self.split_kwargs(kwargs)
        options.setdefault("lr", 0.1)  # OneCycleLR overwrites it
        opt = self.torch_optimizer(groups, **options)
        return opt, OneCycleLR(opt, **schedule)

    def fused_cyclic(self, groups, **kwargs):
        options, schedule = self.split_kwargs(kwargs)
        return self.fused(groups, schedule=lrfused.schedules.Cyclic(**schedule), **options)

    def torch_cyclic(self, groups, **kwargs):
        options, schedule = self.split_kwargs(kwargs)
        opt = self.torch_optimizer(groups, **options)
        return opt, CyclicLR(opt, **schedule)

    def fused_warm_restarts(self, groups, max_lr, T_0, T_mult=1, eta_min=0.0, **options):
        schedule = lrfused.schedules.WarmRestarts(max_lr, T_0, T_mult, eta_min)
        return self.fused(groups, lr=max_lr, schedule=schedule, **options)

    def torch_warm_restarts(self, groups, max_lr, T_0, T_mult=1, eta_min=0.0, **options):
        opt = self.torch_optimizer(groups, lr=max_lr, **options)
        return opt, CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=eta_min)

    def fused_warmup_cosine(self, groups, total_steps, warmup_steps=0, start_factor=1.0 / 3, eta_min=0.0, **options):
        schedule = lrfused.schedules.WarmupCosine(total_steps, warmup_steps, start_factor, eta_min)
        return self.fused(groups, schedule=schedule, **options)

    def torch_warmup_cosine(self, groups, total_steps, warmup_steps=0, start_factor=1.0 / 3, eta_min=0.0, **options):
        opt = self.torch_optimizer(groups, **options)
        cosine = CosineAnnealingLR(opt, T_max=total_steps - warmup_steps, eta_min=eta_min)
        if warmup_steps == 0:
            return opt, cosine
        warmup = LinearLR(opt, start_factor=start_factor, total_iters=warmup_steps)
        return opt, SequentialLR(opt, [warmup, cosine], milestones=[warmup_steps])

    # --- the comparisons

    def stepped(self, torch_state):
        """Whether torch has stepped the param (a skipped step may have made its state)."""
        return bool(torch_state) and (self.count_key is None or float(torch_state[self.count_key]) != 0)

    def assert_unstepped(self, fused, param, where):
        """torch has no state for this param yet (it never had a grad, or every step was skipped):
        lrfused has none either, or one that no step has written."""
        state = fused.state.get(param)
        if not state:
            return
        if self.count_key is not None:
            count = float(state[self.count_key])
            assert count == 0, f"{where}: {self.count_key} {count} but torch never stepped it"
        for key in self.moment_keys:
            if key in state:
                assert not state[key].any(), f"{where}: {key} written but torch never stepped the param"

    def assert_states_match(self, fused, torch_opt, fused_params, torch_params, step, **tol):
        """Params, the moments and the per-param count of every param, same dtype on both sides."""
        for i, (f, r) in enumerate(zip(fused_params, torch_params)):
            where = f"step {step}, param {i}"
            torch.testing.assert_close(f, r, **tol, msg=lambda m: f"{where}: {m}")
            torch_state = torch_opt.state.get(r)
            if not self.stepped(torch_state):
                self.assert_unstepped(fused, f, where)
                continue
            fused_state = fused.state[f]
            if self.count_key is not None:
                assert_step_matches(fused_state, torch_state, f, where)
            for key in self.moment_keys:
                if key not in torch_state:
                    assert key not in fused_state, f"{where}: {key} where torch keeps none"
                    continue
                torch.testing.assert_close(fused_state[key], torch_state[key], **tol, msg=lambda m: f"{where}, {key}: {m}")

    def run_and_compare(self, kind, group_specs, dtype, device, steps, skips=lambda step: (), **kwargs):
        return compare_each_step(SideBySide(self, kind, group_specs, dtype, device, **kwargs), steps, skips)


class SideBySide:
    """The same params and grads given to lrfused and to the family's torch optimizer (and, for
    float16/bfloat16, to a float64 run of it, the accurate reference of the low-precision rule)."""

    def __init__(self, reference, kind, group_specs, dtype, device, **kwargs):
        """group_specs: one dict per param group, {'shapes': [...], **per-group options}."""
        self.reference = reference
        fused_factory, torch_factory = reference.pairs[kind]
        self.exact_schedule = kind not in APPROXIMATE_SCHEDULES
        self.dtype, self.device = dtype, device
        self.shapes = [list(spec["shapes"]) for spec in group_specs]
        starts = [[torch.randn(s, device=device).to(dtype) for s in shapes] for shapes in self.shapes]
        self.fused_params = [[t.clone() for t in group] for group in starts]
        self.torch_params = [[t.clone() for t in group] for group in starts]
        self.exact_params = [[t.double() for t in group] for group in starts]
        options = [{k: v for k, v in spec.items() if k != "shapes"} for spec in group_specs]

        def groups(param_lists):
            return [{"params": ps, **o} for ps, o in zip(param_lists, options)]

        self.fused = fused_factory(groups(self.fused_params), **kwargs)
        self.torch_opt, self.torch_sched = torch_factory(groups(self.torch_params), **kwargs)
        self.runs = [(self.torch_opt, self.torch_sched)]
        if low_precision(dtype):
            self.exact_opt, exact_sched = torch_factory(groups(self.exact_params), **kwargs)
            self.runs.append((self.exact_opt, exact_sched))

    def all_params(self):
        runs = [self.fused_params, self.torch_params]
        return runs + [self.exact_params] if low_precision(self.dtype) else runs

    def step(self, skip=()):
        """One step of every run with the same grads; params whose flat index is in `skip` get none."""
        index = 0
        for group_i, shapes in enumerate(self.shapes):
            for param_i, shape in enumerate(shapes):
                grad = None if index in skip else random_grad(shape, self.dtype, self.device)
                for run in self.all_params():
                    p = run[group_i][param_i]
                    p.grad = None if grad is None else grad.to(p.dtype, copy=True)
                index += 1
        self.fused.step()
        for opt, sched in self.runs:
            opt.step()
            if sched is not None:
                sched.step()

    def assert_schedule_matches(self):
        """group['lr'] and group['betas'] show the next step's values, as torch's schedulers leave them."""

        def same(a, b):
            return a == b if self.exact_schedule else abs(a - b) <= 1e-12 * max(abs(a), abs(b))

        for i, (fused_group, torch_group) in enumerate(zip(self.fused.param_groups, self.torch_opt.param_groups)):
            assert same(float(fused_group["lr"]), float(torch_group["lr"])), (i, fused_group["lr"], torch_group["lr"])
            fused_betas, torch_betas = tuple(fused_group["betas"]), tuple(torch_group["betas"])
            assert len(fused_betas) == 2, (i, fused_betas)
            assert same(float(fused_betas[0]), float(torch_betas[0])), (i, fused_betas, torch_betas)
            assert float(fused_betas[1]) == float(torch_betas[1]), (i, fused_betas, torch_betas)
        if self.torch_sched is not None:
            torch_lrs = self.torch_sched.get_last_lr()
            assert all(same(float(g["lr"]), lr) for g, lr in zip(self.fused.param_groups, torch_lrs)), torch_lrs

    def assert_params_match(self, step):
        fused = [p for g in self.fused_params for p in g]
        ref = [p for g in self.torch_params for p in g]
        if not low_precision(self.dtype):
            self.reference.assert_states_match(self.fused, self.torch_opt, fused, ref, step, **self.reference.tolerances[self.dtype])
            return
        # float16/bfloat16: params and moments by the low-precision rule, judged per param of
        # MIN_SAMPLES elements or more, the smaller ones pooled (as reference/sgd.py does).
        exact = [p for g in self.exact_params for p in g]
        for i, (f, r) in enumerate(zip(fused, ref)):
            if self.torch_opt.state.get(r):
                if self.reference.count_key is not None:
                    assert_step_matches(self.fused.state[f], self.torch_opt.state[r], f, f"step {step}, param {i}")
                for key in self.reference.moment_keys:
                    assert (key in self.fused.state[f]) == (key in self.torch_opt.state[r]), (step, i, key)
                    if key in self.fused.state[f]:  # without master weights, in the param's dtype as torch's
                        assert self.fused.state[f][key].dtype == self.dtype, (step, i, key)
            else:
                self.reference.assert_unstepped(self.fused, f, f"step {step}, param {i}")
                assert torch.equal(f, r), f"step {step}, param {i} moved without a grad"
        large = [i for i, e in enumerate(exact) if e.numel() >= MIN_SAMPLES]
        small = [i for i, e in enumerate(exact) if 0 < e.numel() < MIN_SAMPLES]
        for name, members in [(f"param {i}", [i]) for i in large] + [("the small params", small)]:
            members = [i for i in members if self.torch_opt.state.get(ref[i])]  # stepped at least once
            if not members:
                continue
            where = f"step {step}, {name}"
            cat = lambda ts: torch.cat([ts[i].flatten() for i in members])  # noqa: E731
            assert_within_twice_torch(cat(fused), cat(ref), cat(exact), self.dtype, where, norm=self.reference.param_norm)
            for key in self.reference.moment_keys:
                keyed = [i for i in members if key in self.torch_opt.state[ref[i]]]
                if not keyed:
                    continue
                f_key = torch.cat([self.fused.state[fused[i]][key].flatten() for i in keyed])
                r_key = torch.cat([self.torch_opt.state[ref[i]][key].flatten() for i in keyed])
                e_key = torch.cat([self.exact_opt.state[exact[i]][key].flatten() for i in keyed])
                assert_within_twice_torch(f_key, r_key, e_key, self.dtype, f"{where}, {key}", floor=0.0)

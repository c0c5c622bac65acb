"""Property tests: random layouts, groups, dtypes, options and schedules against torch, every step.

CI runs a bounded profile; LRFUSED_HYPOTHESIS_PROFILE=long runs 1,000 examples. Layouts reach
hundreds of tensors, past the count from which a step checks its params in parallel.
"""
import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import DEVICES
from reference.sgd import SideBySide

# CI draws the same examples on every run (derandomize, no example database): `make test` must not
# pass or fail by luck. The long profile explores with fresh random draws.
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("LRFUSED_HYPOTHESIS_PROFILE", "ci"))

SIZES = st.one_of(st.integers(0, 8), st.integers(9, 5000), st.sampled_from([65_537, 100_000]))


@st.composite
def group_specs(draw):
    groups = []
    lr = draw(st.sampled_from([None, 0.3]))  # Constant(): a group may give its own lr
    budget = 300_000  # elements in all, to keep an example fast
    for _ in range(draw(st.integers(1, 3))):
        sizes = draw(st.one_of(
            st.lists(SIZES, min_size=1, max_size=draw(st.sampled_from([3, 20, 70]))),
            st.lists(st.integers(0, 8), min_size=260, max_size=400),  # past the parallel checks' grain
        ))
        shapes = []
        for size in sizes:
            if size <= budget:
                shapes.append((size,))
                budget -= size
        shapes = shapes or [(1,)]
        nesterov = draw(st.booleans())
        groups.append({
            "shapes": shapes,
            "weight_decay": draw(st.sampled_from([0.0, 1e-4, 0.05])),
            "nesterov": nesterov,
            "dampening": 0.0 if nesterov else draw(st.sampled_from([0.0, 0.3])),
            "maximize": draw(st.booleans()),
            **({"lr": lr} if lr is not None and groups else {}),
        })
    return groups


# (base_momentum, max_momentum): the defaults, a wide band, and a flat one
MOMENTUM_BOUNDS = st.sampled_from([(0.85, 0.95), (0.5, 0.99), (0.9, 0.9)])


def per_group(values, num_groups):
    """One value for every group, or a list with one per group (as OneCycleLR's max_lr)."""
    return st.one_of(values, st.lists(values, min_size=num_groups, max_size=num_groups))


@st.composite
def schedules(draw, num_groups):
    kind = draw(st.sampled_from(["one_cycle", "cyclic", "warm_restarts", "warmup_cosine", "table", "constant"]))
    cycle_momentum = draw(st.booleans())
    momentum = {} if cycle_momentum else {"momentum": draw(st.sampled_from([0.5, 0.9]))}
    if kind == "one_cycle":
        total = draw(st.integers(1, 30))
        base_momentum, max_momentum = draw(MOMENTUM_BOUNDS)
        kwargs = dict(max_lr=draw(per_group(st.sampled_from([0.01, 0.3]), num_groups)), total_steps=total,
                      pct_start=draw(st.sampled_from([0.0, 0.25, 0.3, 0.5, 0.9])),
                      anneal_strategy=draw(st.sampled_from(["cos", "linear"])),
                      three_phase=draw(st.booleans()), cycle_momentum=cycle_momentum,
                      div_factor=draw(st.sampled_from([25.0, 4.0, 1.5])),
                      final_div_factor=draw(st.sampled_from([1e4, 10.0, 1.0])),
                      base_momentum=base_momentum, max_momentum=max_momentum, **momentum)
        assume(not zero_length_phase(kwargs))  # where OneCycleLR itself divides by zero
        return kind, kwargs, total
    if kind == "cyclic":
        base_momentum, max_momentum = draw(MOMENTUM_BOUNDS)
        kwargs = dict(base_lr=draw(per_group(st.sampled_from([0.01, 0.05]), num_groups)),
                      max_lr=draw(per_group(st.sampled_from([0.2, 0.1]), num_groups)),
                      base_momentum=base_momentum, max_momentum=max_momentum, step_size_up=draw(st.integers(1, 5)),
                      step_size_down=draw(st.one_of(st.none(), st.integers(1, 5))),
                      mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
                      gamma=draw(st.sampled_from([1.0, 0.9])), cycle_momentum=cycle_momentum, **momentum)
        return kind, kwargs, draw(st.integers(1, 20))
    if kind == "warmup_cosine":
        total = draw(st.integers(1, 25))
        kwargs = dict(lr=draw(st.sampled_from([0.01, 0.3])), total_steps=total,
                      warmup_steps=draw(st.integers(0, total - 1)), start_factor=draw(st.sampled_from([0.1, 1 / 3, 1.0])),
                      eta_min=draw(st.sampled_from([0.0, 0.001])), momentum=draw(st.sampled_from([0.0, 0.9])))
        return kind, kwargs, total
    if kind == "table":
        total = draw(st.integers(1, 20))
        factors = draw(st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=total, max_size=total))
        momenta = draw(st.one_of(st.none(), st.lists(st.sampled_from([0.0, 0.5, 0.9]), min_size=total, max_size=total)))
        extra = {"momenta": momenta} if momenta is not None else {"momentum": draw(st.sampled_from([0.0, 0.9]))}
        return kind, dict(lr=0.1, lr_lambda=factors, total_steps=total, **extra), total
    if kind == "constant":
        return kind, dict(lr=draw(st.sampled_from([0.01, 0.2])), momentum=draw(st.sampled_from([0.0, 0.9]))), draw(st.integers(1, 10))
    kwargs = dict(max_lr=draw(per_group(st.sampled_from([0.2, 0.05]), num_groups)), T_0=draw(st.integers(1, 5)), T_mult=draw(st.integers(1, 3)),
                  eta_min=draw(st.sampled_from([0.0, 0.01])), momentum=draw(st.sampled_from([0.0, 0.9])))
    return kind, kwargs, draw(st.integers(1, 20))


def zero_length_phase(kwargs):
    """Whether a 1cycle phase the schedule reaches has length 0 (test_schedule covers lrfused there)."""
    n, pct = kwargs["total_steps"], kwargs["pct_start"]
    ends = [pct * n - 1, 2 * pct * n - 2, n - 1] if kwargs["three_phase"] else [pct * n - 1, n - 1]
    return any(end == start for end, start in zip(ends, [0.0] + ends[:-1]))


def valid_for(groups, kwargs):
    """nesterov needs a non-zero momentum; drop it where the draw gave none."""
    no_momentum = kwargs.get("cycle_momentum", False) is False and kwargs.get("momentum", 0.9) == 0.0
    if no_momentum or (kwargs.get("momenta") is not None and not all(kwargs["momenta"])):
        for g in groups:
            g["nesterov"] = False
    return groups


# torch warns when a GradScaler-skipped first step comes before its scheduler's first step
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@given(data=st.data(), groups=group_specs(),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
       device=st.sampled_from(DEVICES), skip_seed=st.integers(0, 3), master_weights=st.booleans(),
       grad_scale=st.sampled_from([None, 8.0]), inf_steps=st.sets(st.integers(0, 6), max_size=2))
def test_matches_torch_after_every_step(data, groups, dtype, device, skip_seed, master_weights, grad_scale, inf_steps):
    kind, kwargs, steps = data.draw(schedules(len(groups)), label="schedule")
    groups = valid_for(groups, kwargs)
    runs = SideBySide(kind, groups, dtype, device, master_weights=master_weights, **kwargs)
    runs.assert_schedule_matches()
    n_params = sum(len(g["shapes"]) for g in groups)
    for step in range(steps):
        # Some params get no grad on some steps.
        skip = {i for i in range(n_params) if (i + step + skip_seed) % 5 == 0} if skip_seed else set()
        runs.step(skip=skip, grad_scale=grad_scale, found_inf=grad_scale is not None and step in inf_steps)
        runs.assert_schedule_matches()
        runs.assert_params_match(step)

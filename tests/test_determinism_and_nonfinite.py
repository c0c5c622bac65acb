"""Bit-identical results across runs and thread counts; NaN/inf grads behave exactly as in torch; for
every family (families.py)."""
import math

import pytest
import torch

import lrfused
from conftest import DEVICES
from families import families


def sgd_nesterov(params):
    return lrfused.FusedOneCycleSGD(params, max_lr=0.3, total_steps=5, weight_decay=1e-3, nesterov=True)


def run_steps(threads, dtype, make=sgd_nesterov):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        params = [torch.randn(n, generator=generator).to(dtype) for n in (1, 4097, 100_003, 70_000)]
        opt = make(params)
        for _ in range(5):
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator).to(dtype)
            opt.step()
        return params
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_bit_identical_across_runs_and_thread_counts(dtype):
    reference = run_steps(1, dtype)
    for threads in (1, 2, 3):
        for a, b in zip(reference, run_steps(threads, dtype)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("family", families())
def test_every_family_is_bit_identical_across_runs_and_thread_counts(family, dtype):
    """With every hyperparameter of the family off its default (family.custom)."""
    make = lambda params: family.one_cycle(params, max_lr=family.max_lr, total_steps=5, **family.custom)  # noqa: E731
    reference = run_steps(1, dtype, make)
    for threads in (1, 2, 3):
        for a, b in zip(reference, run_steps(threads, dtype, make)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("family", families())
def test_non_finite_grads_match_torch_and_stay_in_their_tensor(family, bad, device):
    fused_params = [torch.randn(33, device=device) for _ in range(3)]
    torch_params = [p.clone() for p in fused_params]
    kwargs = dict(max_lr=family.max_lr / 5, total_steps=4, weight_decay=1e-2, **list(family.variants.values())[0])
    fused = family.one_cycle(fused_params, **kwargs)
    ref, sched = family.reference.torch_one_cycle(torch_params, **kwargs)
    for step in range(4):
        for i, (f, t) in enumerate(zip(fused_params, torch_params)):
            grad = torch.randn(33, device=device)
            if i == 1 and step == 1:
                grad[5] = bad
            f.grad, t.grad = grad, grad.clone()
        fused.step()
        ref.step()
        sched.step()
        for f, t in zip(fused_params, torch_params):
            torch.testing.assert_close(f, t, equal_nan=True, **family.tolerance())
    def touched(i):  # the param and its state tensors
        return [fused_params[i]] + [fused.state[fused_params[i]][k] for k in family.state_keys if k in fused.state[fused_params[i]]]

    assert all(torch.isfinite(t).all() for i in (0, 2) for t in touched(i))
    # Element 5 of param 1 took it: in the param (as torch's, compared above), or only in the state
    # where the update is a sign (Lion's: torch.sign(nan) is 0).
    assert any(not torch.isfinite(t[5]) for t in touched(1))
    assert bool(torch.isfinite(fused_params[1][5])) == bool(torch.isfinite(torch_params[1][5]))

"""The benchmarks' own Lion peer (benchmarks/providers.py's PlainLion, timed against FusedLion since
torch has none) computes Lion: a speed comparison against something else would mean nothing."""
import os
import sys

import pytest
import torch

from reference.lion import ReferenceLion

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from providers import PlainLion  # noqa: E402


@pytest.mark.parametrize("foreach", [False, True], ids=["forloop", "foreach"])
def test_plain_lion_is_lion(foreach):
    generator = torch.Generator().manual_seed(0)
    shapes = [(7, 3), (1,), (4097,)]
    ours = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    theirs = [p.clone() for p in ours]
    plain = PlainLion(ours, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, foreach=foreach)
    reference = ReferenceLion(theirs, lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)
    for _ in range(4):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=generator, dtype=torch.float64)
            b.grad = a.grad.clone()
        plain.step()
        reference.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b)
            torch.testing.assert_close(plain.state[a]["exp_avg"], reference.state[b]["exp_avg"])

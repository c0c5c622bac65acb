"""The CPU update loops are built three times (baseline x86-64, AVX2, AVX-512) and picked at run time;
without fused multiply-adds every build must give the same bits. LRFUSED_CPU_LOOPS forces one build
per process, so each runs in its own subprocess."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Steps of every rule and dtype over sizes with vector tails; prints a digest of every param and state.
SCRIPT = r"""
import hashlib, torch, lrfused
torch.manual_seed(0)
digest = hashlib.sha256()
shapes = [(1,), (7, 3), (4097,), (33, 65), (70001,)]
for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
    for make in (
        lambda ps: lrfused.FusedOneCycleSGD(ps, max_lr=0.1, total_steps=6, nesterov=True, weight_decay=1e-2),
        lambda ps: lrfused.FusedOneCycleAdamW(ps, max_lr=0.01, total_steps=6, amsgrad=True, maximize=True),
        lambda ps: lrfused.FusedAdamW(ps, lr=0.01, weight_decay=0.0, master_weights=True),
    ):
        params = [torch.randn(s, dtype=dtype) for s in shapes]
        opt = make(params)
        for _ in range(5):
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
        for p in params:
            digest.update(p.float().numpy().tobytes())
            for value in opt.state[p].values():
                digest.update(value.float().numpy().tobytes())
print(digest.hexdigest())
"""


def cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return flag in f.read().split()
    except OSError:
        return False


def run_with_loops(loops):
    env = {**os.environ, "LRFUSED_CPU_LOOPS": loops, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)


def test_every_build_of_the_cpu_loops_gives_the_same_bits():
    builds = ["default"] + [name for name, flag in (("avx2", "avx2"), ("avx512", "avx512bw")) if cpu_has(flag)]
    if len(builds) == 1:
        pytest.skip("this processor runs only the baseline build")
    digests = {}
    for loops in builds:
        done = run_with_loops(loops)
        assert done.returncode == 0, done.stderr
        digests[loops] = done.stdout.strip()
    assert len(set(digests.values())) == 1, digests


def test_an_unknown_loops_choice_is_refused_with_its_name():
    done = run_with_loops("sse9")
    assert done.returncode != 0
    assert "LRFUSED_CPU_LOOPS must be default, avx2 or avx512, got 'sse9'" in done.stderr

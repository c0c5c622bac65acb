"""Interleaved timing of one layout's step, torch's fused and foreach SGD or AdamW (Lion: plain torch's foreach)
+ OneCycleLR against lrfused, in one process: rounds alternate between them, so a noisy machine slows all alike.

    python benchmarks/ab_step.py resnet18 [--family adamw] [--dtype bf16] [--rounds 15]
"""
import argparse
import os
import sys
import time

# The repo root first: lrfused is built in place there, not installed (this file's folder, which
# Python puts first, has only the benchmark helpers).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from layouts import LAYOUTS  # noqa: E402
from providers import make_params, make_step, providers_of  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layout", choices=sorted(LAYOUTS))
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--family", choices=("sgd", "adamw", "lion"), default="sgd")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    shapes = LAYOUTS[args.layout]()
    steps = {
        p: make_step(p, make_params(shapes, DTYPES[args.dtype], "cpu"), args.family)
        for p in ("torch_fused", "torch_foreach", "lrfused") if p in providers_of(args.family)
    }
    times = {p: [] for p in steps}
    for _ in range(args.rounds):
        for provider, step in steps.items():
            step()  # warm
            start = time.perf_counter()
            for _ in range(3):
                step()
            times[provider].append((time.perf_counter() - start) / 3)
    median = {p: sorted(t)[len(t) // 2] * 1e3 for p, t in times.items()}
    peers = [p for p in median if p != "lrfused"]
    print(f"{args.family} {args.layout} {args.dtype}: "
          + ", ".join(f"{p} {median[p]:.2f} ms" for p in peers) + f", lrfused {median['lrfused']:.2f} ms; "
          + ", ".join(f"lrfused / {p} {median['lrfused'] / median[p]:.3f}" for p in peers))


if __name__ == "__main__":
    main()

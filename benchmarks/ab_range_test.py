"""Interleaved timing of the range test's training-loop modes, lrfused against torch-lr-finder, in one
process: rounds alternate between the two, so a noisy machine slows both alike (the pytest-benchmark
file, test_range_test_modes_speed.py, runs each provider's rounds one after the other).

    python benchmarks/ab_range_test.py [--rounds 9] [--modes adamw adamw_fp16 ...]
"""
import argparse
import contextlib
import io
import os
import sys
import time

# The repo root first: lrfused is built in place there, not installed.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from lrfused.find.builtin import digits_cnn  # noqa: E402
from test_range_test_modes_speed import MODES, PROVIDERS  # noqa: E402
from test_range_test_speed import batches  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=sorted(MODES))
    args = parser.parse_args()
    device = torch.device("cpu")
    for mode in args.modes:
        times = {provider: [] for provider in PROVIDERS}
        for _ in range(args.rounds + 1):  # the first round warms up, untimed
            for provider, run in PROVIDERS.items():
                torch.manual_seed(0)
                model, data = digits_cnn().to(device), batches(device)
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    start = time.perf_counter()
                    run(model, data, mode)  # (torch-lr-finder prints a bar and a line)
                    times[provider].append(time.perf_counter() - start)
        median = {p: sorted(t[1:])[len(t[1:]) // 2] * 1e3 for p, t in times.items()}
        print(f"{mode:18s} lrfused {median['lrfused']:7.1f} ms, torch-lr-finder {median['torch_lr_finder']:7.1f} ms, "
              f"ratio {median['lrfused'] / median['torch_lr_finder']:.3f}", flush=True)


if __name__ == "__main__":
    main()

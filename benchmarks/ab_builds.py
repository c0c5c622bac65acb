"""Interleaved A/B of two builds of lrfused (e.g. main's in a scratch worktree against this one): the CPU
step of every (family, layout, dtype) of test_step_speed.py, in two live processes, one per build,
alternating 3-step samples between them (which side goes first alternates too), so that a loaded
machine slows both alike. Prints each case's medians and the median of its per-sample ratios B/A.

    git worktree add --detach /tmp/wt_base main && (cd /tmp/wt_base && python setup.py build_ext --inplace)
    OMP_NUM_THREADS=1 python benchmarks/ab_builds.py /tmp/wt_base . [--rounds 15]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = [f"{f}/{l}/{d}" for f in ("sgd", "adamw", "lion") for l in ("many_small", "resnet18", "transformer", "large")
         for d in ("fp32", "bf16")]


def worker(repo):
    """Serves 'prep CASE', 'run N' (prints seconds per step) and 'free' from stdin, with repo's lrfused."""
    sys.path[:0] = [repo, os.path.join(repo, "benchmarks")]
    import torch
    import lrfused
    from layouts import LAYOUTS
    from providers import make_params, make_step

    assert os.path.realpath(lrfused.__file__).startswith(os.path.realpath(repo)), lrfused.__file__
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    step = None
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "prep":
            family, layout, dtype = args[0].split("/")
            step = make_step("lrfused", make_params(LAYOUTS[layout](), dtypes[dtype], "cpu"), family)
            step()
            step()
            print("ok", flush=True)
        elif command == "run":
            start = time.perf_counter()
            for _ in range(int(args[0])):
                step()
            print((time.perf_counter() - start) / int(args[0]), flush=True)
        elif command == "free":
            step = None
            print("ok", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="repo root of build A (the baseline)")
    parser.add_argument("b", help="repo root of build B")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", nargs="+", metavar="CASE", help="only these cases, e.g. sgd/large/fp32")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(os.path.abspath(args.a))

    def start(repo):
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), os.path.abspath(repo), "-", "--worker"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
        assert p.stdout.readline().strip() == "ready"
        return p

    def ask(p, message):
        p.stdin.write(message + "\n")
        p.stdin.flush()
        return p.stdout.readline().strip()

    a, b = start(args.a), start(args.b)
    ratios_all = []
    for case in args.only or CASES:
        ask(a, "prep " + case)
        ask(b, "prep " + case)
        times = {a: [], b: []}
        for r in range(args.rounds):
            for side in ((a, b) if r % 2 == 0 else (b, a)):
                times[side].append(float(ask(side, "run 3")))
        ask(a, "free")
        ask(b, "free")
        ratio = statistics.median(tb / ta for ta, tb in zip(times[a], times[b]))
        ratios_all.append(ratio)
        print(f"{case:24s} A {statistics.median(times[a]) * 1e3:8.2f} ms  B {statistics.median(times[b]) * 1e3:8.2f} ms"
              f"  B/A {ratio:.3f}", flush=True)
    print(f"geometric mean of the cases' B/A: {statistics.geometric_mean(ratios_all):.3f}")


if __name__ == "__main__":
    main()

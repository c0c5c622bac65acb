"""GPU report for benchmarks/gpu_check.sh: the fused step against torch fused SGD + OneCycleLR and
against the memory floor, launches per step, and a CUDA-graph-replayed step. CUDA events, medians.

    python benchmarks/gpu_report.py [--json PATH] [--dry-run]

--dry-run (CI, no GPU): every stage on the CPU at toy sizes, the CUDA-only measurements (kernel
counts, graph replay) left out: it checks that the report runs, not what it measures.
"""
import argparse
import json
import os
import statistics
import sys
import time

# The repo root first: lrfused is built in place there, not installed (this file's folder, which
# Python puts first, has only the benchmark helpers).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import lrfused  # noqa: E402
from layouts import LAYOUTS, numel  # noqa: E402
from providers import bytes_per_param, make_params, make_step  # noqa: E402

REPEATS = 30
# The full report, and the dry run's toy version of each stage.
FULL = dict(device="cuda", repeats=REPEATS, copy_bytes=2 * 1024**3, sweep_steps=300, grid_steps=100,
            grid_values=([0.0, 1e-4, 1e-3, 1e-2], [0.8, 0.9, 0.95, 0.99]))
DRY_RUN = dict(device="cpu", repeats=2, copy_bytes=2 * 1024**2, sweep_steps=12, grid_steps=6,
               grid_values=([0.0, 1e-3], [0.9]))


def time_ms(fn, device, repeats=REPEATS):
    """Median milliseconds of fn() over `repeats` runs, each bracketed by CUDA events (on the CPU,
    by the clock)."""
    for _ in range(3):
        fn()
    times = []
    if device == "cpu":
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - start))
        return statistics.median(times)
    torch.cuda.synchronize()
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth_gbps(device, nbytes, repeats):
    src = torch.ones(nbytes // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, repeats)
    return nbytes / (ms / 1e3) / 1e9  # bytes read + bytes written


def kernels_per_step(step):
    """CUDA kernels launched by one step() (after the first), counted by the profiler (memory copies
    included: lrfused's eager step over more than 160 tensors copies its table once)."""
    step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def graphed_step_ms(params):
    """The fused step captured in a CUDA graph: replay time, and whether replays advanced the schedule."""
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10**8, weight_decay=5e-4)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    before = int(opt._step)
    ms = time_ms(graph.replay, "cuda")
    advanced = int(opt._step) - before
    return ms, advanced


def sweep_rows(device, num_iter):
    """The range test on the digits CNN: CUDA-graph sweep against the eager one, same steps."""
    from lrfused.find import range_test
    from lrfused.find.builtin import digits_cnn, digits_loader

    rows = []
    for graph in (True, False):
        torch.manual_seed(0)
        model = digits_cnn().to(device)
        before = [p.detach().clone() for p in model.parameters()]
        result = range_test(model, digits_loader(), start_lr=1e-5, end_lr=1.0, num_iter=num_iter,
                            diverge_threshold=1e9, cuda_graph=graph, progress=False)
        restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        rows.append({"cuda_graph": graph, "path": result.path, "steps": len(result.lrs),
                     "ms_per_step": result.timings["ms_per_step"], "restored": restored,
                     "fallback_reason": result.fallback_reason})
    return rows


def grid_rows(device, num_iter, grid_values):
    """A grid (weight decay x momentum) of range tests on the digits CNN: one after another (CUDA
    graphs) against one vmap-batched computation."""
    from lrfused.find.builtin import digits_cnn, digits_loader
    from lrfused.find.grid import range_test_grid

    weight_decays, momenta = grid_values
    rows = []
    for batched in (False, True):
        torch.manual_seed(0)
        model = digits_cnn().to(device)
        start = time.perf_counter()
        grid = range_test_grid(model, digits_loader, weight_decays=weight_decays, momenta=momenta,
                               start_lr=1e-5, end_lr=1.0, num_iter=num_iter, diverge_threshold=1e9, progress=False,
                               batched=batched)
        if device == "cuda":
            torch.cuda.synchronize()
        rows.append({"batched": batched, "path": grid.path, "s": time.perf_counter() - start,
                     "fallback_reason": grid.fallback_reason})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU at toy sizes (CI)")
    args = parser.parse_args(argv)
    run = DRY_RUN if args.dry_run else FULL
    device = run["device"]
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_report: no GPU visible")
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    print(f"device: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"lrfused from {os.path.dirname(lrfused.__file__)}, CUDA build: {lrfused.cuda_built()}")
    bandwidth = copy_bandwidth_gbps(device, run["copy_bytes"], run["repeats"])
    print(f"device-to-device copy: {bandwidth:.0f} GB/s (bytes read + written)")

    layouts = dict(LAYOUTS)
    layouts["huge_1e8"] = lambda: [(25_000_000,)] * 4
    if args.dry_run:
        layouts = {"toy": lambda: [(1000,), (3,), (4097,)]}
    rows = []
    for name, make_shapes in layouts.items():
        shapes = make_shapes()
        n = numel(shapes)
        floor_ms = n * bytes_per_param(torch.float32) / (bandwidth * 1e9) * 1e3
        row = {"layout": name, "tensors": len(shapes), "params": n, "floor_ms": floor_ms}
        for provider in ("torch_fused", "lrfused"):
            step = make_step(provider, make_params(shapes, torch.float32, device))
            row[f"{provider}_ms"] = time_ms(step, device, run["repeats"])
            row[f"{provider}_kernels"] = kernels_per_step(step) if device == "cuda" else -1
        if device == "cuda":  # (no graphs on the CPU: a dry run shows -1 for these)
            row["graph_ms"], row["graph_steps_advanced"] = graphed_step_ms(make_params(shapes, torch.float32, device))
            torch.cuda.empty_cache()
        else:
            row["graph_ms"], row["graph_steps_advanced"] = -1.0, -1
        row["graph_steps_expected"] = REPEATS + 3
        rows.append(row)

    header = (f"{'layout (fp32, mom+wd, 1cycle)':30s}{'tensors':>8s}{'params':>12s}{'torch fused':>12s}"
              f"{'lrfused':>10s}{'graph':>10s}{'floor':>10s}{'speedup':>9s}{'of BW':>7s}{'kernels t/l':>13s}")
    print()
    print(header)
    for r in rows:
        speedup = r["torch_fused_ms"] / r["lrfused_ms"]
        of_bandwidth = r["floor_ms"] / r["lrfused_ms"]
        print(f"{r['layout']:30s}{r['tensors']:8d}{r['params']:12d}{r['torch_fused_ms']:10.3f}ms"
              f"{r['lrfused_ms']:8.3f}ms{r['graph_ms']:8.3f}ms{r['floor_ms']:8.3f}ms{speedup:8.2f}x"
              f"{of_bandwidth:6.0%}{r['torch_fused_kernels']:7d}/{r['lrfused_kernels']:<5d}")
    ok = True
    if device == "cuda":
        ok = all(r["graph_steps_advanced"] == r["graph_steps_expected"] for r in rows)
        print(f"\ngraph replay advanced the schedule once per replay: {'yes' if ok else 'NO'} "
              f"({[r['graph_steps_advanced'] for r in rows]} of {rows[0]['graph_steps_expected']})")

    sweeps = sweep_rows(device, run["sweep_steps"])
    print(f"\nrange test, digits CNN, {run['sweep_steps']} steps, batch 64:")
    for r in sweeps:
        print(f"  cuda_graph={r['cuda_graph']!s:5} path={r['path']:10s} {r['ms_per_step']:.3f} ms/step "
              f"restored={r['restored']}" + (f"  ({r['fallback_reason']})" if r["fallback_reason"] else ""))
    ok = ok and all(r["restored"] for r in sweeps) and sweeps[0]["path"] == ("cuda_graph" if device == "cuda" else "eager")

    grids = grid_rows(device, run["grid_steps"], run["grid_values"])
    weight_decays, momenta = run["grid_values"]
    print(f"\ngrid of range tests, {len(weight_decays)} x {len(momenta)} combinations, digits CNN, "
          f"{run['grid_steps']} steps each:")
    for r in grids:
        print(f"  batched={r['batched']!s:5} path={r['path']:12s} {r['s']:.2f} s"
              + (f"  ({r['fallback_reason']})" if r["fallback_reason"] else ""))
    print(f"  batched / one after another: {grids[1]['s'] / grids[0]['s']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"copy_GBps": bandwidth, "rows": rows, "sweeps": sweeps, "grids": grids}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

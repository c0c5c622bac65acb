"""GPU report for benchmarks/gpu_check.sh: the fused step against torch fused SGD + OneCycleLR and
against the memory floor, launches per step, and a CUDA-graph-replayed step. CUDA events, medians.

    python benchmarks/gpu_report.py [--json PATH]
"""
import argparse
import json
import statistics
import sys

import torch

import lrfused
from layouts import LAYOUTS, numel
from providers import bytes_per_param, make_params, make_step

REPEATS = 30


def time_ms(fn, repeats=REPEATS):
    """Median milliseconds of fn() over `repeats` runs, each bracketed by CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth_gbps(nbytes=2 * 1024**3):
    src = torch.ones(nbytes // 2, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src))
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
    ms = time_ms(graph.replay)
    advanced = int(opt._step) - before
    return ms, advanced


def sweep_rows():
    """The range test on the digits CNN: CUDA-graph sweep against the eager one, same steps."""
    from lrfused.find import range_test
    from lrfused.find.builtin import digits_cnn, digits_loader

    rows = []
    for graph in (True, False):
        torch.manual_seed(0)
        model = digits_cnn().cuda()
        before = [p.detach().clone() for p in model.parameters()]
        result = range_test(model, digits_loader(), start_lr=1e-5, end_lr=1.0, num_iter=300,
                            diverge_threshold=1e9, cuda_graph=graph, progress=False)
        restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        rows.append({"cuda_graph": graph, "path": result.path, "steps": len(result.lrs),
                     "ms_per_step": result.timings["ms_per_step"], "restored": restored,
                     "fallback_reason": result.fallback_reason})
    return rows


def grid_rows():
    """A 4 x 4 grid (weight decay x momentum) of 100-step range tests on the digits CNN: one after
    another (CUDA graphs) against one vmap-batched computation."""
    import time

    from lrfused.find.builtin import digits_cnn, digits_loader
    from lrfused.find.grid import range_test_grid

    rows = []
    for batched in (False, True):
        torch.manual_seed(0)
        model = digits_cnn().cuda()
        start = time.perf_counter()
        grid = range_test_grid(model, digits_loader, weight_decays=[0.0, 1e-4, 1e-3, 1e-2], momenta=[0.8, 0.9, 0.95, 0.99],
                               start_lr=1e-5, end_lr=1.0, num_iter=100, diverge_threshold=1e9, progress=False,
                               batched=batched)
        torch.cuda.synchronize()
        rows.append({"batched": batched, "path": grid.path, "s": time.perf_counter() - start,
                     "fallback_reason": grid.fallback_reason})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_report: no GPU visible")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"lrfused CUDA build: {lrfused.cuda_built()}")
    bandwidth = copy_bandwidth_gbps()
    print(f"device-to-device copy: {bandwidth:.0f} GB/s (bytes read + written)")

    layouts = dict(LAYOUTS)
    layouts["huge_1e8"] = lambda: [(25_000_000,)] * 4
    rows = []
    for name, make_shapes in layouts.items():
        shapes = make_shapes()
        n = numel(shapes)
        floor_ms = n * bytes_per_param(torch.float32) / (bandwidth * 1e9) * 1e3
        row = {"layout": name, "tensors": len(shapes), "params": n, "floor_ms": floor_ms}
        for provider in ("torch_fused", "lrfused"):
            step = make_step(provider, make_params(shapes, torch.float32, "cuda"))
            row[f"{provider}_ms"] = time_ms(step)
            row[f"{provider}_kernels"] = kernels_per_step(step)
        row["graph_ms"], row["graph_steps_advanced"] = graphed_step_ms(make_params(shapes, torch.float32, "cuda"))
        row["graph_steps_expected"] = REPEATS + 3
        rows.append(row)
        torch.cuda.empty_cache()

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
    ok = all(r["graph_steps_advanced"] == r["graph_steps_expected"] for r in rows)
    print(f"\ngraph replay advanced the schedule once per replay: {'yes' if ok else 'NO'} "
          f"({[r['graph_steps_advanced'] for r in rows]} of {rows[0]['graph_steps_expected']})")

    sweeps = sweep_rows()
    print("\nrange test, digits CNN, 300 steps, batch 64:")
    for r in sweeps:
        print(f"  cuda_graph={r['cuda_graph']!s:5} path={r['path']:10s} {r['ms_per_step']:.3f} ms/step "
              f"restored={r['restored']}" + (f"  ({r['fallback_reason']})" if r["fallback_reason"] else ""))
    ok = ok and all(r["restored"] for r in sweeps) and sweeps[0]["path"] == "cuda_graph"

    grids = grid_rows()
    print("\ngrid of range tests, 4 x 4 combinations, digits CNN, 100 steps each:")
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

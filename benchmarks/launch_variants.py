"""A few steps of each way the CUDA step launches, small enough for compute-sanitizer (gpu_check.sh
runs memcheck and racecheck over this script instead of over pytest): one by-value launch, the
device-table launch (an eager step over more than 160 tensors), by-value launches under CUDA graph
capture (replayed), master weights, GradScaler (a skipped step included), a table schedule, and
misaligned views (the scalar fallback); and the same for AdamW (amsgrad, master weights, GradScaler
with a skipped step, several launches under capture, the device table with an empty tensor), whose
params' own step counts are advanced by separate small kernels. The AdamW variants also check that
every param's `step` advanced once per step that was not skipped.

    python benchmarks/launch_variants.py [--device cpu]

--device cpu (CI's dry run) runs the same steps on the CPU, the graph capture left out.
"""
import argparse
import os
import sys

# The repo root first: lrfused is built in place there, not installed.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import lrfused  # noqa: E402
from lrfused.schedules import Table  # noqa: E402

MANY = 200  # tensors: more than one launch's argument holds (160)


def _params(sizes, device, dtype=torch.float32):
    params = [torch.randn(n, device=device, dtype=dtype) for n in sizes]
    for p in params:
        p.grad = torch.randn_like(p)
    return params


def by_value(device):
    opt = lrfused.FusedOneCycleSGD(_params([1, 300, 4097], device), max_lr=0.1, total_steps=10, nesterov=True)
    for _ in range(3):
        opt.step()


def device_table(device):
    params = _params([1 + i % 7 * 50 for i in range(MANY)], device)
    groups = [{"params": params[i::3], "weight_decay": 1e-3 * i} for i in range(3)]
    opt = lrfused.FusedCyclicSGD(groups, base_lr=0.01, max_lr=0.1, step_size_up=2)
    for _ in range(3):
        opt.step()


def _capture_and_replay(opt, replays=3):
    """One eager step (it makes the state), one captured, `replays` replays."""
    opt.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    for _ in range(replays):
        graph.replay()
    torch.cuda.synchronize()


def _scaled_steps(opt, params, device):
    """Three GradScaler steps of a bf16 model, the second one overflowing (skipped)."""
    scaler = torch.amp.GradScaler(device, init_scale=2.0**16)
    for step in range(3):
        opt.zero_grad()
        loss = sum(p.float().square().sum() for p in params) * (float("inf") if step == 1 else 1.0)  # 1: skipped
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


def captured(device):
    if device != "cuda":
        return "skipped: CUDA graphs only"
    params = _params([1 + i % 7 * 50 for i in range(MANY)], device)
    _capture_and_replay(lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10))
    return None


def master_weights(device):
    params = _params([1, 300, 4097], device, torch.bfloat16) + _params([257], device, torch.float16)
    opt = lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10, master_weights=True)
    for _ in range(3):
        opt.step()


def grad_scaler(device):
    params = [p.requires_grad_() for p in _params([1, 300, 4097], device, torch.bfloat16)]
    _scaled_steps(lrfused.FusedOneCycleSGD(params, max_lr=0.1, total_steps=10, master_weights=True), params, device)


def table(device):
    opt = lrfused.FusedSGD(_params([300, 4097], device), lr=0.1, momentum=0.9, schedule=Table([1.0, 0.5, 0.25]))
    for _ in range(3):
        opt.step()


def misaligned(device):
    bases = _params([2, 302, 4099], device)
    params = [b.detach()[1:] for b in bases]  # one element past the start: not 16-byte aligned
    for p in params:
        p.grad = torch.randn(p.numel() + 1, device=device)[1:]
    opt = lrfused.FusedCyclicSGD(params, base_lr=0.01, max_lr=0.1, step_size_up=2, weight_decay=1e-3)
    for _ in range(3):
        opt.step()


def _assert_param_steps(opt, params, expected, variant):
    """Every param's own AdamW step count (empty tensors included) is `expected`."""
    steps = [float(opt.state[p]["step"]) for p in params]
    if steps != [float(expected)] * len(params):
        wrong = {i: s for i, s in enumerate(steps) if s != expected}
        raise AssertionError(f"{variant}: param steps should all be {expected}, these are not: {wrong}")


def adamw_by_value(device):
    """One by-value launch, amsgrad on in one group, a misaligned view (scalar fallback) among them."""
    params = _params([1, 300, 4097, 0], device)
    base = torch.randn(258, device=device)
    odd = base[1:]  # not 16-byte aligned
    odd.grad = torch.randn(258, device=device)[1:]
    params.append(odd)
    groups = [{"params": params[:2], "amsgrad": True}, {"params": params[2:], "weight_decay": 0.0, "maximize": True}]
    opt = lrfused.FusedOneCycleAdamW(groups, max_lr=0.1, total_steps=10, weight_decay=1e-2)
    for _ in range(3):
        opt.step()
    _assert_param_steps(opt, params, 3, "adamw_by_value")


def adamw_device_table(device):
    """An eager step over more than 160 tensors (the device table), empty ones among them: their
    counts advance too (advance_table_counts_kernel)."""
    params = _params([(1 + i % 7 * 50) if i % 9 else 0 for i in range(MANY)], device)
    groups = [{"params": params[i::3], "weight_decay": 1e-3 * i, "amsgrad": i == 1} for i in range(3)]
    opt = lrfused.FusedAdamW(groups, lr=1e-2)
    for _ in range(3):
        opt.step()
    _assert_param_steps(opt, params, 3, "adamw_device_table")


def adamw_captured(device):
    """More tensors (200, empty ones among them) than one launch holds under capture: several by-value
    launches, each followed by the count kernel of the tensors whose last chunk it held."""
    if device != "cuda":
        return "skipped: CUDA graphs only"
    params = _params([(1 + i % 7 * 50) if i % 9 else 0 for i in range(MANY)], device)
    opt = lrfused.FusedOneCycleAdamW(params, max_lr=0.1, total_steps=10, amsgrad=True)
    _capture_and_replay(opt)
    _assert_param_steps(opt, params, 4, "adamw_captured")
    return None


def adamw_master_weights(device):
    params = _params([1, 300, 4097], device, torch.bfloat16) + _params([257], device, torch.float16)
    groups = [{"params": params[:2], "amsgrad": True}, {"params": params[2:]}]
    opt = lrfused.FusedOneCycleAdamW(groups, max_lr=0.1, total_steps=10, master_weights=True)
    for _ in range(3):
        opt.step()
    _assert_param_steps(opt, params, 3, "adamw_master_weights")


def adamw_grad_scaler(device):
    params = [p.requires_grad_() for p in _params([1, 300, 4097], device, torch.bfloat16)]
    opt = lrfused.FusedOneCycleAdamW(params, max_lr=0.1, total_steps=10, master_weights=True, amsgrad=True)
    _scaled_steps(opt, params, device)
    _assert_param_steps(opt, params, 2, "adamw_grad_scaler")


VARIANTS = [by_value, device_table, captured, master_weights, grad_scaler, table, misaligned,
            adamw_by_value, adamw_device_table, adamw_captured, adamw_master_weights, adamw_grad_scaler]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args(argv)
    for variant in VARIANTS:
        note = variant(args.device)
        if args.device == "cuda":
            torch.cuda.synchronize()
        print(f"{variant.__name__}: {note or 'ran'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

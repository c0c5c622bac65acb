"""python benchmarks/resource_usage.py [EXTENSION.so] [--from-text FILE]: the CUDA kernels' registers,
spills (local memory), static shared memory and the occupancy their registers allow, per GPU target,
read from `cuobjdump --dump-resource-usage` of the built extension (gpu_check.sh's report part).

Occupancy here is the bound the registers set at the kernels' 512 threads per block: registers are
allocated per warp in units of 256, 65,536 per SM on every target built; an SM holds at most
MAX_WARPS[arch] warps. (Shared memory does not bind: the kernels use a few hundred bytes.)
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

THREADS_PER_BLOCK = 512  # csrc/cuda/launch_meta.cuh: kThreads
REGISTERS_PER_SM = 65536
MAX_WARPS = {"sm_75": 32, "sm_80": 64, "sm_86": 48, "sm_89": 48, "sm_90": 64, "sm_100": 64, "sm_120": 48}


def parse(text):
    """[{"arch", "kernel", "REG", "LOCAL", "SHARED", ...}] from cuobjdump --dump-resource-usage."""
    rows, arch, kernel = [], None, None
    for line in text.splitlines():
        line = line.strip()
        found = re.match(r"arch = (sm_\d+)", line)
        if found:
            arch = found.group(1)
            continue
        found = re.match(r"Function (\S+):$", line)
        if found:
            kernel = found.group(1)
            continue
        if kernel is not None and line.startswith("REG:"):
            values = dict(re.findall(r"(\w+(?:\[\d+\])?):(\d+)", line))
            rows.append({"arch": arch, "kernel": short_name(kernel), **{k: int(v) for k, v in values.items()}})
            kernel = None
    return rows


def short_name(mangled):
    """lrfused's kernel names read without their arguments: _ZN7lrfused17sgd_step_by_valueE... ->
    sgd_step_by_value (other symbols are kept as they are)."""
    found = re.match(r"_ZN7lrfused(?:12_GLOBAL__N_1)?(\d+)", mangled)
    if not found:
        return mangled
    length, start = int(found.group(1)), found.end()
    return mangled[start : start + length]


def occupancy(arch, registers):
    """The share of the SM's warps resident when registers bind (None for an unknown target)."""
    max_warps = MAX_WARPS.get(arch)
    if max_warps is None:
        return None
    warps_per_block = THREADS_PER_BLOCK // 32
    per_warp = -(-registers * 32 // 256) * 256
    blocks = min(REGISTERS_PER_SM // (per_warp * warps_per_block), max_warps // warps_per_block)
    return blocks * warps_per_block / max_warps


def table(rows):
    lines = [f"{'arch':<7} {'kernel':<28} {'regs':>5} {'spill (LOCAL)':>13} {'shared':>7} {'occupancy':>9}"]
    for r in rows:
        occ = occupancy(r["arch"], r.get("REG", 0))
        lines.append(f"{r['arch'] or '?':<7} {r['kernel'][:28]:<28} {r.get('REG', 0):>5} {r.get('LOCAL', 0):>13} "
                     f"{r.get('SHARED', 0):>7} {'-' if occ is None else format(occ, '.0%'):>9}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extension", nargs="?", help="the built lrfused/_C*.so (default: the in-place build)")
    parser.add_argument("--from-text", help="read this cuobjdump output instead of running cuobjdump")
    args = parser.parse_args(argv)
    if args.from_text:
        with open(args.from_text) as f:
            text = f.read()
    else:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        extension = args.extension or next(iter(glob.glob(os.path.join(root, "lrfused", "_C*.so"))), None)
        tool = shutil.which("cuobjdump")
        if extension is None or tool is None:
            print(f"resource usage not read: {'no cuobjdump on PATH' if tool is None else 'no built extension'}")
            return 0
        text = subprocess.run([tool, "--dump-resource-usage", extension], capture_output=True, text=True, check=True).stdout
    rows = parse(text)
    if not rows:
        print("no CUDA kernels in the extension (a CPU-only build?)")
        return 0
    print(table(rows))
    spills = [r for r in rows if r.get("LOCAL", 0) > 0]
    print(f"{len(rows)} kernels x targets; {len(spills)} with spills to local memory"
          + (": " + ", ".join(f"{r['kernel']} ({r['arch']})" for r in spills) if spills else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

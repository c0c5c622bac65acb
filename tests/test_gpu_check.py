"""benchmarks/gpu_check.sh --dry-run: the GPU check's stages, invoked as on the GPU machine, run on
the CPU, so that a stage that cannot even start (an import path, an argument) fails here rather than
on the few minutes of a lent GPU; and the shape of what comes back (at most 8 files)."""
import os
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import not_reached  # noqa: E402
import resource_usage  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_FILES_BACK = 8  # the device tool brings back at most 8 files from $OUT


def dry_run(tmp_path, *args):
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ.update(OUT=str(tmp_path), PYTHON=sys.executable)
    run = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--dry-run", *args], cwd=tmp_path,
                         env=environ, capture_output=True, text=True)
    summary = run.stdout.split("== summary\n")[-1].splitlines()
    return run, [line.split()[2:4] for line in summary if line.startswith("part ")]


def test_the_gpu_checks_stages_run_in_a_subprocess_and_bring_back_at_most_8_files(tmp_path):
    run, stages = dry_run(tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert stages == [["tests_cuda", "ok"], ["tests_rest", "ok"], ["variants", "ok"], ["resources", "ok"],
                      ["report", "ok"], ["experiment", "ok"]]
    back = sorted(os.listdir(tmp_path))
    assert len(back) <= MAX_FILES_BACK, back
    assert {"summary.txt", "logs.tar.gz", "report.json", "report.txt", "experiment_one_cycle_hard.json"} <= set(back)
    # The stages used the package built in place in this checkout.
    assert f"lrfused from {os.path.join(ROOT, 'lrfused')}," in (tmp_path / "report.txt").read_text()
    with tarfile.open(tmp_path / "logs.tar.gz") as logs:
        names = {os.path.basename(n) for n in logs.getnames()}
    assert {"tests_cuda.collected", "variants.log", "experiment.txt", "summary.txt"} <= names


def test_part_1_runs_the_build_and_test_stages_only_in_a_subprocess(tmp_path):
    run, stages = dry_run(tmp_path, "--part", "1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [name for name, _ in stages] == ["tests_cuda", "tests_rest", "variants"]
    assert sorted(os.listdir(tmp_path)) == ["logs.tar.gz", "summary.txt"]


def test_not_reached_names_the_tests_a_timed_out_log_never_reported():
    listed = "tests/a.py::test_one\ntests/a.py::test_two[cuda]\ntests/b.py::test_three\n\n3 tests collected\n"
    log = ("tests/a.py::test_one PASSED                     [ 33%]\n"
           "[gw1] SKIPPED tests/b.py::test_three\n")
    assert not_reached.not_reached(listed, log) == ["tests/a.py::test_two[cuda]"]
    assert not_reached.not_reached(listed, log + "tests/a.py::test_two[cuda] FAILED\n") == []


CUOBJDUMP = """
Fatbin elf code:
================
arch = sm_90
code version = [1,8]
host = linux
compile_size = 64bit

Resource usage:
 Common:
  GLOBAL:0
 Function _ZN7lrfused17sgd_step_by_valueENS_10LaunchMetaENS_12StepPointersE:
  REG:40 STACK:0 SHARED:24 LOCAL:0 CONSTANT[0]:27936 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function _ZN7lrfused12_GLOBAL__N_121advance_counts_kernelENS0_9CountListEPKf:
  REG:72 STACK:16 SHARED:0 LOCAL:8 CONSTANT[0]:1288 TEXTURE:0 SURFACE:0 SAMPLER:0
"""


def test_resource_usage_reads_registers_spills_and_occupancy_per_kernel():
    rows = resource_usage.parse(CUOBJDUMP)
    assert [(r["arch"], r["kernel"], r["REG"], r["LOCAL"]) for r in rows] == [
        ("sm_90", "sgd_step_by_value", 40, 0), ("sm_90", "advance_counts_kernel", 72, 8)]
    # 40 registers: 1,280 a warp, 20,480 a 512-thread block, 3 blocks in 65,536: 48 of 64 warps
    assert resource_usage.occupancy("sm_90", 40) == 0.75
    assert resource_usage.occupancy("sm_90", 32) == 1.0  # 4 blocks: the 2,048-thread limit binds
    assert resource_usage.occupancy("sm_90", 72) == 0.25  # 2,304 a warp -> 1 block
    text = resource_usage.table(rows)
    assert "sgd_step_by_value" in text.splitlines()[1] and "75%" in text.splitlines()[1]

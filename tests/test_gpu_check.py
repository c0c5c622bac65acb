"""benchmarks/gpu_check.sh --dry-run: the GPU check's Python stages, invoked as on the GPU machine,
run on the CPU, so that a stage that cannot even start (an import path, an argument) fails here
rather than on the few minutes of a lent GPU."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_gpu_checks_python_stages_run_in_a_subprocess(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ.update(OUT=str(tmp_path), PYTHON=sys.executable)
    run = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--dry-run"], cwd=tmp_path,
                         env=environ, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = run.stdout.split("== summary\n")[1].splitlines()
    assert [line.split()[:2] for line in summary] == [["report", "ok"], ["variants", "ok"], ["experiment", "ok"]]
    # The stages used the package built in place in this checkout.
    assert f"lrfused from {os.path.join(ROOT, 'lrfused')}," in (tmp_path / "report.txt").read_text()
    assert (tmp_path / "report.json").exists() and (tmp_path / "experiment_one_cycle_hard.json").exists()

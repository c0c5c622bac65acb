# The two commands of the README:  make find  (set up + run the range test)  and  make test.
PYTHON ?= python
# torch is pinned to the CUDA 13.0 build that matches this machine's nvcc (see README).
DEPS = torch==2.14.1 pybind11 ninja numpy matplotlib tqdm pytest pytest-benchmark hypothesis

.PHONY: setup build find test bench quality sanitize clean

setup:
	$(PYTHON) -m pip install -q $(DEPS)
	$(MAKE) build

# Builds lrfused/_C in place (CPU + CUDA where CUDA torch and nvcc are present); incremental.
build:
	@mkdir -p build
	@$(PYTHON) setup.py build_ext --inplace > build/build.log 2>&1 || (tail -60 build/build.log; exit 1)
	@grep "^lrfused: " build/build.log
	@$(PYTHON) -c "import lrfused; print('lrfused._C ready; CUDA kernels compiled in:', lrfused.cuda_built())"

# The range test on the bundled digits, its max_lr confirmed for a 20-epoch 1cycle run, then that run.
find: setup
	$(PYTHON) -m lrfused.find --then-train 20 --out lr_find_out

test: setup
	$(PYTHON) -m pytest tests -q

bench: setup
	$(PYTHON) -m pip install -q torch-lr-finder
	$(PYTHON) -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results.json

# The recommended max_lr against a grid of full 1cycle trainings and the untuned peers (issue 24):
# tables in benchmarks/lr_quality/results.md, one picture per task in benchmarks/lr_quality/plots/.
# Then the limits of any confirmation: short runs' best max_lr per horizon (horizons.md, plots/horizons.png)
# and the training seeds' luck (seed_noise.md). Cached trainings (oracle, picks, peers, horizons, seed_noise
# .json) are reused while torch, the tasks and seeds are the same.
quality: setup
	$(PYTHON) -m pip install -q prodigyopt schedulefree
	$(PYTHON) -m benchmarks.lr_quality
	$(PYTHON) -m benchmarks.lr_quality.loto
	$(PYTHON) -m benchmarks.lr_quality.horizons
	$(PYTHON) -m benchmarks.lr_quality.seed_noise

# The CPU test suite against an AddressSanitizer + UBSan build (in a scratch copy; see .ci/sanitize).
sanitize: setup
	PYTHON=$(PYTHON) ./.ci/sanitize

clean:
	rm -rf build lrfused/_C*.so lr_find_out .benchmarks

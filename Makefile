# Two commands: `make run` and `make test`. Both create .venv when missing: `make run`
# installs the package (editable) with its runtime dependencies only, `make test` the
# tested pins of requirements.txt, the optional engines and the test tools.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.runtime-installed
STAMP := $(VENV)/.requirements-installed
PORT ?= 8501
# Loopback only by default; HOST=0.0.0.0 shares the dashboard on the network.
HOST ?= 127.0.0.1
export TLCORE_HOME ?= $(CURDIR)/workspace

# The GPU check's carried packages (bench/gpu_check.sh): Keras and what tlcore needs beyond
# a GPU machine's JAX, NumPy, h5py, Pillow and pandas, as CPython 3.12 wheels.
GPU_WHEELS := keras==3.15.1 namex==0.1.0 optree==0.20.0 pydantic==2.14.3 pydantic-core==2.50.4 \
	annotated-types==0.8.0 typing-inspection==0.4.5
GPU_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
	manylinux2014_x86_64,--platform $(p))

.PHONY: run test test-fast test-browser test-postgres test-ray lint bench gpu-wheels venv clean

venv: $(STAMP)

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/tlcore studio --host $(HOST) --port $(PORT)

# On every core; the browser tests share one test process, and so do the Ray tests.
test: $(STAMP)
	$(PY) -m ruff check .
	env -u TLCORE_HOME $(PY) -m pytest -n auto --dist loadgroup

# Slow groups can run alone: the browser tests, the PostgreSQL store, the Ray executor,
# and everything but the browser and training tests.
test-browser: $(STAMP)
	env -u TLCORE_HOME $(PY) -m pytest -m e2e

test-postgres: $(STAMP)
	env -u TLCORE_HOME $(PY) -m pytest -m postgres

test-ray: $(STAMP)
	env -u TLCORE_HOME $(PY) -m pytest -m ray

test-fast: $(STAMP)
	env -u TLCORE_HOME $(PY) -m pytest -m "not e2e and not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m bench.recipe
	$(PY) -m bench.backends
	$(PY) -m bench.sweep
	$(PY) -m bench.worker_start
	$(PY) -m bench.runs_page
	$(PY) -m bench.inference
	$(PY) -m bench.versions
	$(PY) -m bench.label_issues
	$(PY) -m bench.adapt

gpu-wheels: $(STAMP)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(GPU_PLATFORMS) -d .gpu-wheels $(GPU_WHEELS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Two commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
PORT ?= 8501
# Loopback only by default; HOST=0.0.0.0 shares the dashboard on the network.
HOST ?= 127.0.0.1
export TLCORE_HOME ?= $(CURDIR)/workspace

.PHONY: run test test-fast test-browser lint bench venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: $(STAMP)
	$(PY) -m ruff check .
	env -u TLCORE_HOME $(PY) -m pytest

# Slow groups can run alone: the browser test, and everything but it and the training tests.
test-browser: $(STAMP)
	env -u TLCORE_HOME $(PY) -m pytest -m e2e

test-fast: $(STAMP)
	env -u TLCORE_HOME $(PY) -m pytest -m "not e2e and not slow"

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m bench.recipe

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

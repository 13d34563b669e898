# Two commands on a fresh machine: `make demo` and `make test`. Both bootstrap .venv with uv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
export DO_NOT_TRACK := 1

.PHONY: demo test lint install bench clean

$(STAMP): pyproject.toml constraints/airflow-3.3.2.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "clvdrift needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(UV) pip install -q --compile-bytecode --python $(PY) -c constraints/airflow-3.3.2.txt -e '.[reports,dev,airflow]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clvdrift demo

# static checks first (seconds), then the suite
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench dags
	$(VENV)/bin/ruff format --check src tests bench dags
	$(VENV)/bin/mypy src
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/train.py
	$(PY) bench/drift_vs_evidently.py
	$(PY) bench/calibration.py
	$(PY) bench/history.py

clean:
	rm -rf $(VENV) models data/reference data/current monitoring clvdrift.db

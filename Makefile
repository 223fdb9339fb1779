# Partwise: `make run` starts everything for development, `make test` runs the whole suite.
# Neither needs any environment variable; see README.md for the settings production uses.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes (or the venv is new).
STAMP := $(VENV)/.installed

.PHONY: run test install lint clean-var

run: install
	$(BIN)/python manage.py rundev

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest --timeout=600
	@if [ -f frontend/package.json ]; then \
		if command -v node >/dev/null 2>&1; then \
			echo "node --test (frontend/)"; cd frontend && node --test; \
		else \
			echo "node is not installed: SKIPPING the frontend tests (apt-get install nodejs)"; \
		fi; \
	fi

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .

# Removes the local database, SeaweedFS data, dev credentials and the dev login.
clean-var:
	rm -rf var

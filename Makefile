# Needs only python3 (3.11+), its venv and pip modules, and make. Everything else is installed
# into .venv from uv.lock by a pinned uv.

PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
# uv installs into .venv, never downloads a Python, and keeps pip and itself (--inexact).
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(BIN)/uv

.PHONY: setup demo serve test lint format lock clean

setup: $(VENV)/.installed

# Redone only when the lock or the project metadata change. --locked fails, rather than
# re-resolving, if uv.lock no longer matches pyproject.toml (run `make lock`). The dev group
# (pytest, ruff, mypy, ...) is installed too: uv syncs it by default.
$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || { $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip; \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	$(UV) sync --locked --inexact
	touch $@

demo: setup
	$(BIN)/billfold demo

serve: setup
	$(BIN)/billfold serve

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

lock: setup
	$(UV) lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

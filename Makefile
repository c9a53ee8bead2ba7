# Needs only python3 (3.11+), its venv and pip modules, and make. Everything else is installed
# into .venv from uv.lock by a pinned uv.

PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
# uv installs into .venv, never downloads a Python, and keeps pip and itself (--inexact).
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(BIN)/uv

.PHONY: setup runtime demo serve test screenshots lint format lock clean

# Everything, for tests, lint and benchmarks: the service's dependencies, the dev group (pytest,
# ruff, mypy, ...) and the bench group it includes (tools/bench, `billfold bench`).
setup: $(VENV)/.installed
# The service's dependencies only, for demo and serve.
runtime: $(VENV)/.runtime

# A venv holding the pinned uv, made once.
$(BIN)/uv:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Each redone only when the lock or the project metadata change. --locked fails, rather than
# re-resolving, if uv.lock no longer matches pyproject.toml (run `make lock`). --inexact never
# removes a package: `make demo` after `make test` keeps the dev tools, and `make test` after
# `make demo` adds them.
$(VENV)/.installed: pyproject.toml tools/bench/pyproject.toml uv.lock | $(BIN)/uv
	$(UV) sync --locked --inexact
	touch $@

$(VENV)/.runtime: pyproject.toml uv.lock | $(BIN)/uv
	@echo "Installing Billfold's dependencies into $(VENV)..."
	@$(UV) sync --locked --inexact --no-dev --quiet
	@touch $@

demo: runtime
	$(BIN)/billfold demo

serve: runtime
	$(BIN)/billfold serve

# PYTEST_ARGS: more pytest arguments (.ci/run leaves the browser and topology tests to one pass).
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

# The web app's pages as the browser tests see them, into docs/screenshots/ (needs chromium).
screenshots: setup
	BILLFOLD_SCREENSHOTS=1 $(BIN)/pytest tests/web

lint: setup
	$(BIN)/ruff check src tools tests
	$(BIN)/ruff format --check src tools tests
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix src tools tests
	$(BIN)/ruff format src tools tests

lock: setup
	$(UV) lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

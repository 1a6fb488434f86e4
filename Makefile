# The two commands: `make run` (set up, seed, start web + worker) and `make test` (set up, run everything).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PROJECT_ENVIRONMENT := .venv
# These targets are for development machines; a deployment sets DEBUG=0 and SECRET_KEY (see the Procfile).
export DEBUG ?= 1
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup run test test-fast hostsite lint format bench browser clean

help:
	@echo "make run    set up everything, seed the demo, start the console (web + worker) on http://$(HOST):$(PORT)/"
	@echo "make test   set up everything and run the whole test suite (browser tests included)"
	@echo "make lint   ruff, djhtml, mypy strict;  make bench   benchmarks against peers;  make format   ruff + djhtml"

# uv is installed into the project (.tools/) when the machine has none.
.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

# The standalone site and the tests need the `standalone` extra (Huey, Redis, PostgreSQL, gunicorn, ...).
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet --extra standalone
	@touch $@

setup: .venv/.synced
	@mkdir -p var
	$(PY) manage.py migrate --no-input -v0
	$(PY) manage.py collectstatic --no-input -v0

run: setup
	$(PY) manage.py console_demo
	$(PY) manage.py console_admin --password-file var/admin_password
	@echo "Console: http://$(HOST):$(PORT)/   (Ctrl-C stops web and worker)"
	HOST=$(HOST) PORT=$(PORT) .venv/bin/honcho start -f Procfile.dev

# Browser tests need a Chromium: $$CHROMIUM, /usr/bin/chromium, or one installed now.
browser:
	@if [ -n "$$CHROMIUM" ] && [ -x "$$CHROMIUM" ]; then exit 0; fi; \
	if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if command -v apt-get >/dev/null; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null && exit 0; \
	fi; \
	.venv/bin/playwright install chromium

# Tests run as production does (DEBUG off, JSON logs); pytest-django makes its own test databases.
test: .venv/.synced browser
	DEBUG=0 $(PY) -m pytest --cov --cov-branch --cov-report=term:skip-covered $(PYTEST_ARGS)

# The host-site tier: the built wheel in fresh startproject sites (needs the package registry for pip).
hostsite: .venv/.synced browser
	rm -rf dist && $(UV) build --wheel --out-dir dist --quiet
	HOST_SITE_WHEEL=$$(ls dist/*.whl) $(PY) -m pytest tests/hostsite -p no:randomly $(PYTEST_ARGS)

test-fast: .venv/.synced
	DEBUG=0 $(PY) -m pytest -m "not browser" -x $(PYTEST_ARGS)

TEMPLATES := $(shell find console templates -name '*.html')
DJHTML := .venv/bin/djhtml --tabwidth 2 --extra-block partialdef,endpartialdef

lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(DJHTML) --check $(TEMPLATES)
	.venv/bin/mypy console tests bench

format: .venv/.synced
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
	$(DJHTML) $(TEMPLATES)

bench: setup
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var/test-*.sqlite3 var/huey-console-test-*.sqlite3 .coverage

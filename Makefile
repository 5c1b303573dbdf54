# Two commands do everything on a fresh machine:  make run  /  make test
# Environments (created on demand, rebuilt when their inputs change):
#   .venv        newest Python 3 + newest rasa-sdk: the action server, tests, lint, types
#   .venv-sdk36  Python 3.10 + rasa-sdk 3.6.x: the same actions on the oldest supported SDK
#   .venv-rasa   Python 3.10 + Rasa Open Source 3.6.21: connectors and end-to-end conversations

PYTHON ?= python3
PYTHON310 ?= $(shell scripts/find-python310 2>/dev/null)
RASA_CONSTRAINTS := constraints/rasa-3.6.21-py310.txt
PIP_FLAGS := --quiet --disable-pip-version-check
export PIP_NO_INPUT := 1

.PHONY: run test lint types unit sdk36 rasa e2e chat bench clean

run: .venv/.ok
	scripts/run-action-server

.venv/.ok: pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv/bin/pip install $(PIP_FLAGS) -e '.[test,bench]'
	touch $@

.venv-sdk36/.ok: pyproject.toml
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required for .venv-sdk36 (set PYTHON310)"; exit 1; }
	$(PYTHON310) -m venv .venv-sdk36
	.venv-sdk36/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv-sdk36/bin/pip install $(PIP_FLAGS) -e '.[test]' 'rasa-sdk>=3.6,<3.7'
	touch $@

# Rasa pins pydantic 1.10, so the project goes in without its own dependencies; the
# connectors use only what Rasa already brings.
.venv-rasa/.ok: pyproject.toml $(RASA_CONSTRAINTS)
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required for .venv-rasa (set PYTHON310)"; exit 1; }
	$(PYTHON310) -m venv .venv-rasa
	.venv-rasa/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv-rasa/bin/pip install $(PIP_FLAGS) 'rasa==3.6.21' -c $(RASA_CONSTRAINTS)
	.venv-rasa/bin/pip install $(PIP_FLAGS) 'pytest>=8,<9' 'pytest-asyncio>=0.23,<0.24' \
	    'aioresponses==0.7.6' 'html2text>=2024.2.26' -c $(RASA_CONSTRAINTS)
	.venv-rasa/bin/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

test: lint types unit sdk36 rasa e2e

lint: .venv/.ok
	.venv/bin/ruff check .

types: .venv/.ok
	.venv/bin/mypy actions clients connectors sandbox

# Markers: `rasa` tests import Rasa and run inside .venv-rasa; `e2e` tests run here and
# start Rasa from .venv-rasa as a subprocess.
# tests/connectors and tests/rasa import Rasa itself: they run in the `rasa` step only.
unit: .venv/.ok
	scripts/pytest .venv -m "not rasa and not e2e" --ignore=tests/connectors --ignore=tests/rasa

sdk36: .venv-sdk36/.ok
	scripts/pytest .venv-sdk36 -m "not rasa and not e2e" tests/actions

# Only these folders: the rest of tests/ imports the action server's dependencies, which
# .venv-rasa does not have (the project goes in there without them).
rasa:
	scripts/with-rasa-env $(MAKE) .venv-rasa/.ok
	scripts/with-rasa-env scripts/pytest .venv-rasa -m rasa tests/connectors tests/rasa

# Trains the reference bot if domain/, data/ or config/config.yml changed (models/ cache).
e2e: .venv/.ok
	scripts/with-rasa-env $(MAKE) .venv-rasa/.ok
	scripts/with-rasa-env scripts/pytest .venv -m e2e tests/e2e

chat: .venv/.ok .venv-rasa/.ok
	scripts/chat

bench: .venv/.ok
	.venv/bin/python -m bench

clean:
	rm -rf .venv .venv-sdk36 .venv-rasa .pytest_cache .mypy_cache .ruff_cache models

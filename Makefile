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

.PHONY: run test lint types redis unit sdk36 rasa e2e newbot chat bench clean

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

# The project goes in with its dependencies, as a designer installs it next to Rasa: the
# actions and the connectors run on Rasa's pydantic 1.10 (the constraints keep Rasa's pins).
.venv-rasa/.ok: pyproject.toml $(RASA_CONSTRAINTS)
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required for .venv-rasa (set PYTHON310)"; exit 1; }
	$(PYTHON310) -m venv .venv-rasa
	.venv-rasa/bin/pip install $(PIP_FLAGS) --upgrade pip
	.venv-rasa/bin/pip install $(PIP_FLAGS) 'rasa==3.6.21' -e . -c $(RASA_CONSTRAINTS)
	.venv-rasa/bin/pip install $(PIP_FLAGS) 'pytest>=8,<9' 'pytest-asyncio>=0.23,<0.24' \
	    'aioresponses==0.7.6' 'requests' 'pyyaml' 'hypothesis>=6.100,<7' -c $(RASA_CONSTRAINTS)
	.venv-rasa/bin/pip check
	touch $@

test: lint types unit sdk36 rasa e2e newbot

lint: .venv/.ok
	.venv/bin/ruff check .

types: .venv/.ok
	.venv/bin/mypy rasa_service_desk actions rasa_sdk_plugins

# Markers: `rasa` tests import Rasa and run inside .venv-rasa; `e2e` and `newbot` tests run
# here and start Rasa from .venv-rasa as a subprocess.
# tests/connectors and tests/rasa import Rasa itself: they run in the `rasa` step only.
# Tests start a real redis-server on a loopback port; installed here if missing (as root).
redis:
	scripts/ensure-redis

# Rasa's environment first: one test drives Rasa's own action client against the server.
unit: .venv/.ok redis
	scripts/with-rasa-env $(MAKE) .venv-rasa/.ok
	scripts/pytest .venv -m "not rasa and not e2e and not newbot" --ignore=tests/connectors \
	    --ignore=tests/rasa

sdk36: .venv-sdk36/.ok
	scripts/pytest .venv-sdk36 -m "not rasa and not e2e" tests/actions

# Tests that import Rasa itself, plus the actions, clients, simulators and stores in Rasa's
# own environment (pydantic 1.10, aiohttp 3.9), as designers who run `rasa run actions`
# next to Rasa do.
rasa:
	scripts/with-rasa-env $(MAKE) .venv-rasa/.ok
	scripts/with-rasa-env scripts/pytest .venv-rasa -m rasa tests/connectors tests/rasa
	scripts/with-rasa-env scripts/pytest .venv-rasa -m "not rasa and not e2e" tests/actions tests/test_domain_consistency.py \
	    tests/clients tests/sandbox tests/state tests/outbox

# Trains the reference bot if domain/, data/ or config/config.yml changed (models/ cache).
e2e: .venv/.ok redis
	scripts/with-rasa-env $(MAKE) .venv-rasa/.ok
	scripts/with-rasa-env scripts/pytest .venv -m e2e tests/e2e tests/logs

# A fresh `rasa init` bot per integration, each given ONLY that integration by the documented
# recipe, validated, trained (Rasa's default pipeline) and talked to (~7 min on 2 cores).
newbot: .venv/.ok
	scripts/with-rasa-env $(MAKE) .venv-rasa/.ok
	scripts/with-rasa-env scripts/pytest .venv -m newbot tests/newbot

chat: .venv/.ok .venv-rasa/.ok
	scripts/chat

bench: .venv/.ok
	.venv/bin/python -m bench

clean:
	rm -rf .venv .venv-sdk36 .venv-rasa .pytest_cache .mypy_cache .ruff_cache models

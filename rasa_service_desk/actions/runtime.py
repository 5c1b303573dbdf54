"""Process-wide state of the action server: checked settings and one client per vendor.

Each vendor's action module calls `enable("<vendor>")` when it is imported, so a bot that
imports only `rasa_service_desk.actions.benti` reads, checks and logs Benti's settings and
nothing of the other vendors. rasa-sdk imports the action modules before it serves, so a
wrong setting stops the server at start (exit code 2, one line per problem), never on the
first customer.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.redact import install_redaction
from rasa_service_desk.clients.settings import (
    DEFAULT_ACTION_DEADLINE_SECONDS,
    GlobalSettings,
    Integration,
    load_global_settings,
    load_integrations,
)
from rasa_service_desk.logs import configure_action_server_logging

logger = logging.getLogger(__name__)

C = TypeVar("C")

_integrations: dict[str, Integration] = {}
_clients: dict[str, Any] = {}
_global: list[GlobalSettings] = []


def _refuse_to_start(what: str, exc: ConfigurationError) -> NoReturn:
    print(f"\nThe action server cannot start ({what}): {exc.message}\n"
          "Set these variables in the environment or in .env (see .env.example).\n",
          file=sys.stderr)
    raise SystemExit(2) from None


def global_settings() -> GlobalSettings:
    """The checked global switches (SANDBOX, LOG_LEVEL, ACTION_DEADLINE_SECONDS, ...), read
    once per process; a wrong one stops the process (exit code 2, one line per problem)."""
    if not _global:
        try:
            _global.append(load_global_settings())
        except ConfigurationError as exc:
            _refuse_to_start("settings", exc)
    return _global[0]


def action_deadline() -> float:
    """Seconds an `IntegrationAction` may run (ACTION_DEADLINE_SECONDS)."""
    if not _global:
        try:
            _global.append(load_global_settings())
        except ConfigurationError as exc:
            # Only when nothing checked the settings at startup (no integration enabled, no
            # plugin): the action must still answer.
            logger.error("%s; using %g s", " ".join(exc.message.split()),
                         DEFAULT_ACTION_DEADLINE_SECONDS)
            return DEFAULT_ACTION_DEADLINE_SECONDS
    return _global[0].action_deadline_seconds


def in_server_worker() -> bool:
    """True in a Sanic worker process: newer rasa-sdk releases check the settings in the main
    process and import the actions again in each worker."""
    return bool(os.environ.get("SANIC_WORKER_NAME"))


def _ensure_logging(level: str) -> None:
    """Give the process a log handler if the SDK did not configure one.

    Newer rasa-sdk releases serve requests from a Sanic worker process where logging is not
    configured, which would hide every INFO line (ticket created, errand id, ...).
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)-8s %(name)s - %(message)s",
        )


def enable(name: str) -> Integration:
    """Load and check the settings of integration `name` once per process, or stop the
    process with a message naming every variable to fix."""
    existing = _integrations.get(name)
    if existing is not None:
        return existing
    install_redaction()
    try:
        # Reports the global switches' problems and this vendor's together.
        loaded = load_integrations([name])[name]
    except ConfigurationError as exc:
        _refuse_to_start(name, exc)
    _ensure_logging(global_settings().log_level)
    # Redaction of every record, JSON lines with LOG_FORMAT=json, secrets of the environment.
    configure_action_server_logging(global_settings().log_level)
    _integrations[name] = loaded
    # One line per integration and start: a worker process repeats it at DEBUG only.
    level = logging.DEBUG if in_server_worker() else logging.INFO
    if loaded.sandboxed:
        logger.log(level, "%s: enabled, using the local simulator (no vendor credentials, "
                   "or SANDBOX=1)", name)
    else:
        logger.log(level, "%s: enabled, using the vendor API", name)
    return loaded


def integration(name: str) -> Integration:
    """The checked settings of one vendor (enabling it on first use)."""
    return enable(name)


def enabled() -> list[str]:
    """The integrations this process has enabled, in the order they were imported."""
    return list(_integrations)


def client(name: str, factory: Callable[[Any], C]) -> C:
    """The process's client for vendor `name`, built once from its settings.

    Clients keep tokens and caches, so sharing one per process is what makes auth and
    discovery calls amortise across conversations.
    """
    existing = _clients.get(name)
    if existing is None:
        existing = _clients[name] = factory(integration(name).settings)
    return existing

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
from typing import Any, TypeVar

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.redact import install_redaction
from rasa_service_desk.clients.settings import Integration, load_integrations

logger = logging.getLogger(__name__)

C = TypeVar("C")

_integrations: dict[str, Integration] = {}
_clients: dict[str, Any] = {}


def _ensure_logging() -> None:
    """Give the process a log handler if the SDK did not configure one.

    Newer rasa-sdk releases serve requests from a Sanic worker process where logging is not
    configured, which would hide every INFO line (ticket created, errand id, ...).
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=os.environ.get("LOG_LEVEL", "INFO").upper(),
            format="%(asctime)s %(levelname)-8s %(name)s - %(message)s",
        )


def enable(name: str) -> Integration:
    """Load and check the settings of integration `name` once per process, or stop the
    process with a message naming every variable to fix."""
    existing = _integrations.get(name)
    if existing is not None:
        return existing
    _ensure_logging()
    install_redaction()
    try:
        loaded = load_integrations([name])[name]
    except ConfigurationError as exc:
        print(f"\nThe action server cannot start ({name}): {exc.message}\n"
              "Set these variables in the environment or in .env (see .env.example).\n",
              file=sys.stderr)
        raise SystemExit(2) from None
    _integrations[name] = loaded
    if loaded.sandboxed:
        logger.info("%s: enabled, using the local simulator (no vendor credentials, or "
                    "SANDBOX=1)", name)
    else:
        logger.info("%s: enabled, using the vendor API", name)
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

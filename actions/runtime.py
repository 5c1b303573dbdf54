"""Process-wide state of the action server: checked settings and one client per vendor."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from clients.errors import ConfigurationError
from clients.redact import install_redaction
from clients.settings import Integration, load_integrations

logger = logging.getLogger(__name__)

C = TypeVar("C")

_integrations: dict[str, Integration] | None = None
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


def startup() -> None:
    """Install log redaction, then load the settings or stop the process with a clear message."""
    global _integrations
    _ensure_logging()
    install_redaction()
    try:
        _integrations = load_integrations()
    except ConfigurationError as exc:
        print(f"\nThe action server cannot start: {exc.message}\n"
              "Set these variables in the environment or in .env (see .env.example).\n",
              file=sys.stderr)
        raise SystemExit(2) from None
    for item in _integrations.values():
        logger.info("%s: %s", item.name, "simulator" if item.sandboxed else "vendor API")


def integration(name: str) -> Integration:
    """The checked settings of one vendor."""
    if _integrations is None:
        startup()
    assert _integrations is not None
    return _integrations[name]


def client(name: str, factory: Callable[[Any], C]) -> C:
    """The process's client for vendor `name`, built once from its settings.

    Clients keep tokens and caches, so sharing one per process is what makes auth and
    discovery calls amortise across conversations.
    """
    existing = _clients.get(name)
    if existing is None:
        existing = _clients[name] = factory(integration(name).settings)
    return existing


"""The action server's handle on the shared state store (`rasa_service_desk.state`).

Opened and checked once per process by the first integration that needs it (at import, so a
wrong or unreachable `STATE_URL` stops the server at start with exit code 2 and a message
naming the setting).
"""

from __future__ import annotations

import logging
import sys

from rasa_service_desk.actions.runtime import in_server_worker
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.state import StateStore, load_store

logger = logging.getLogger(__name__)

_store: StateStore | None = None


def shared_state() -> StateStore:
    """The process's store, opened and checked on first use."""
    global _store
    if _store is None:
        try:
            _store = load_store()
        except ConfigurationError as exc:
            print(f"\nThe action server cannot start: {exc.message}\n"
                  "Set STATE_URL in the environment or in .env: sqlite:///<file> for one "
                  "host, redis://host:6379/0 for several.\n", file=sys.stderr)
            raise SystemExit(2) from None
        # Once per server: newer rasa-sdk imports the actions again in each Sanic worker.
        level = logging.DEBUG if in_server_worker() else logging.INFO
        logger.log(level, "shared state: %s", _store.description)
    return _store

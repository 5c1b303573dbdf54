"""The action server's handle on the shared state store (`rasa_service_desk.state`).

Opened and checked once per process by the first integration that needs it (at import, so a
wrong or unreachable `STATE_URL` stops the server at start with exit code 2 and a message
naming the setting).
"""

from __future__ import annotations

import sys

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.state import StateStore, load_store

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
    return _store

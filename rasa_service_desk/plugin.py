"""rasa-sdk plugin hooks, handed to rasa-sdk by the bot's `rasa_sdk_plugins` package.

rasa-sdk >= 3.8 imports a top-level `rasa_sdk_plugins` package and calls its `init_hooks`; a
bot's one-line `rasa_sdk_plugins/__init__.py` re-exports `init_hooks` from here.

Closes the shared HTTP session when the action server stops, so no connection is left
half-open and no "Unclosed client session" warning is printed. On older SDKs without plugin
support the session is simply released when the process exits.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("rasa_sdk")


class _SessionLifecycle:
    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        from rasa_service_desk.clients.http import close_shared_sessions

        async def close(*_: Any) -> None:
            await close_shared_sessions()

        app.register_listener(close, "before_server_stop")


def init_hooks(manager: pluggy.PluginManager) -> None:
    """Called by rasa-sdk's plugin manager."""
    manager.register(_SessionLifecycle())

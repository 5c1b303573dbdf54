"""rasa-sdk (3.6 and newer) loads a top-level package of exactly this name from the bot's folder.

The reference bot's one line hands the hooks to `rasa_service_desk` (the installed package
does not ship a `rasa_sdk_plugins` of its own, which could shadow a bot's). Copy this file
into your bot, or add the call to your own `init_hooks`. Without it the action server runs,
but without the graceful stop, the request checks, ACTION_SERVER_TOKEN and the error replies
that never echo the request (see `rasa_service_desk.plugin`).
"""

from rasa_service_desk.plugin import init_hooks

__all__ = ["init_hooks"]

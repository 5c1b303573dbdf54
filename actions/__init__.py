"""The reference bot's actions package: `rasa run actions` (or `make run`) serves it.

A bot enables an integration with one import line, exactly as below; this bot uses all four.
The bot's own actions would sit next to these lines, in this package.
"""

from rasa_service_desk.actions import benti, cention, imbee, loop  # noqa: F401

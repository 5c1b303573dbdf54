"""The reference bot's actions package: `rasa run actions` (or `make run`) serves it.

A bot enables an integration with one import line, exactly as below; this bot uses all four.
The bot's own actions sit next to these lines, in this package: `survey_after_answer`
offers the Loop survey after a Cention agent's answer (`OFFER_SURVEY_AFTER_AGENT_ANSWER`).
"""

from rasa_service_desk.actions import benti, cention, imbee, loop  # noqa: F401

from . import survey_after_answer  # noqa: F401

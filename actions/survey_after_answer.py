"""The reference bot's own glue between two integrations: when a Cention agent's answer
reaches the conversation, offer Loop's survey about that answer.

Neither integration knows the other; this module (the bot's, not the package's) joins them
through what they make public:

- `domain/reference_bot.yml` declares `agent_answered_errand`, filled from the answer
  message's `cention_errand_id` entity (Cention's connector sends it). The slot is featurized
  only so that the rule of `data/rules.yml` ("agent's answer, then this action") is more
  specific than Cention's own "agent's answer, then listen", and wins;
- `action_offer_survey_after_answer` runs right after `action_cention_agent_answer` when no
  form is active. With `OFFER_SURVEY_AFTER_AGENT_ANSWER=1` it utters
  `utter_offer_survey_after_answer` (buttons: take the survey, get the survey link) and puts
  "Cention errand <id>" (from Cention's `cention_answer_errand_id` slot) into Loop's
  `loop_survey_reference`, which the Loop survey records in its response. Off (the default),
  it says nothing. Either way it clears its trigger slot.

A form in progress is never interrupted: the rule requires no active form, and the action
checks again (inside a form, `action_cention_agent_answer` hands back to the form instead).
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.settings import EnvironmentSettings

TRIGGER_SLOT = "agent_answered_errand"
#: Public slots of the two integrations.
CENTION_ERRAND_SLOT = "cention_answer_errand_id"
LOOP_REFERENCE_SLOT = "loop_survey_reference"
MAX_ERRAND_ID = 100


class ReferenceBotSettings(EnvironmentSettings):
    """The reference bot's own switches (environment or `.env`)."""

    env_prefix: ClassVar[str] = ""

    #: `OFFER_SURVEY_AFTER_AGENT_ANSWER`: offer the Loop survey after a Cention agent's answer.
    offer_survey_after_agent_answer: bool = False


def _load() -> ReferenceBotSettings:
    try:
        return ReferenceBotSettings.load()
    except ConfigurationError as exc:
        print(f"\nThe action server cannot start (reference bot): {exc.message}\n",
              file=sys.stderr)
        raise SystemExit(2) from None


SETTINGS = _load()


class ActionOfferSurveyAfterAnswer(Action):
    """Offer the Loop survey about the agent's answer just shown (see the module docstring)."""

    def name(self) -> str:
        return "action_offer_survey_after_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [SlotSet(TRIGGER_SLOT, None)]
        errand = tracker.get_slot(CENTION_ERRAND_SLOT)
        if (
            not SETTINGS.offer_survey_after_agent_answer
            or (tracker.active_loop or {}).get("name")
            or not isinstance(errand, str)
            or not errand.strip()
            or len(errand) > MAX_ERRAND_ID
        ):
            return events
        dispatcher.utter_message(response="utter_offer_survey_after_answer")
        return [*events, SlotSet(LOOP_REFERENCE_SLOT, f"Cention errand {errand.strip()}")]

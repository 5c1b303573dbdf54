"""Loop survey: the bot asks the questions of the location's Loop survey and submits one response.

The questions are not in the domain: they come from Loop at run time, so a survey edited in
Loop changes the bot without a deploy. `loop_survey_form` has one requested slot,
`loop_answer`, that is asked again and again:

- `action_ask_loop_answer` (the form's "ask" action) loads the survey on first use (kept in
  `loop_survey` for the rest of the conversation, so questions and answers always match),
  fixes the question order once (`loop_question_order`: shuffled when the survey sets
  `questionOrderRandomization`), and asks the first unanswered question in the customer's
  language (`language` slot, then `LOOP_FALLBACK_LANGUAGE`, then any text Loop has):
  `utter_loop_ask_bool` with yes/no buttons, `utter_loop_ask_text[_optional]` for free text;
- `validate_loop_survey_form` reads the answer to that question: natural yes/no words for
  yes/no questions, bounded text for text questions, "skip" for optional text questions.
  A valid answer goes into `loop_answers` (categoryId -> value, None when skipped) and
  `loop_answer` is emptied, so the form asks the next question; the form ends when every
  question has an answer;
- `action_loop_submit_survey` sends one response with the typed answers, thanks the customer
  and, when Loop opened a loop from it, says a team member will follow up.

With `LOOP_LET_CUSTOMER_CHOOSE_LOCATION` on, the form first asks `loop_location` (see
`location`), and the survey is that location's. When `loop_survey_reference` holds what the
survey is about (the reference bot puts "Cention errand <id>" there when it offers the survey
after a support agent's answer), the response records it in its free text (see
`LoopClient.with_reference`) and the slot is cleared once the response is stored.

Questions of types other than `bool` and `text` cannot be answered in a chat and are left out.
"""

from __future__ import annotations

import logging
import random
import re
import time
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import (
    PENDING_ACTION_SLOT,
    DomainDict,
    EventList,
    IntegrationAction,
)
from rasa_service_desk.actions.delivery import Submission, declare
from rasa_service_desk.actions.forms import TextSlotForm
from rasa_service_desk.actions.loop.common import settings
from rasa_service_desk.actions.loop.location import (
    LOCATION_SLOT,
    LocationChoice,
    chosen_location,
    chosen_location_id,
    location_by_id,
)
from rasa_service_desk.actions.runtime import client, enable
from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.actions.validation import (
    clean_line,
    clean_text,
    mapping_slot,
    text_list_slot,
    text_slot,
    wrong_type,
)
from rasa_service_desk.clients.compat import dump_model, parse_model
from rasa_service_desk.clients.errors import MalformedReply, RejectedInput
from rasa_service_desk.clients.loop.client import LoopClient
from rasa_service_desk.clients.loop.models import BOOL, TEXT, Question, Survey, localized
from rasa_service_desk.outbox import Kind

#: Importing this module enables Loop: its settings are read and checked now.
enable("loop")
shared_state()  # checked at start too: submissions are recorded there (exactly once)

logger = logging.getLogger(__name__)

FORM = "loop_survey_form"
ANSWER_SLOT = "loop_answer"
ANSWERS_SLOT = "loop_answers"
ORDER_SLOT = "loop_question_order"
SURVEY_SLOT = "loop_survey"
RESPONSE_ID_SLOT = "loop_response_id"
REFERENCE_SLOT = "loop_survey_reference"
MAX_REFERENCE = 200
LANGUAGE_SLOT = "language"
REQUESTED_SLOT = "requested_slot"
SUPPORTED_TYPES = (BOOL, TEXT)

YES = frozenset({
    "yes", "y", "yep", "yeah", "yea", "yup", "ya", "sure", "of course", "absolutely",
    "definitely", "indeed", "certainly", "ok", "okay", "true", "correct", "right",
    "si", "sí", "oui", "ja", "sim", "da", "👍",
})
NO = frozenset({
    "no", "n", "nope", "nah", "nay", "not really", "not at all", "never", "no way", "false",
    "non", "nein", "nej", "não", "nao", "👎",
})
SKIP = frozenset({
    "skip", "pass", "next", "no", "nope", "none", "nothing", "nothing else", "no comment",
    "no thanks", "n/a", "na", "-", "passer", "omitir", "saltar",
})
_PUNCTUATION = re.compile(r"[\s.,!?;:]+")


def _normalise(text: Any) -> str:
    """The words of a typed answer; "" for anything but text (never an answer)."""
    return _PUNCTUATION.sub(" ", text).strip().casefold() if isinstance(text, str) else ""


def parse_bool(text: Any) -> bool | None:
    """True for "yes", "Yep!", "y", "yes, it was"...; False for "no", "nope", "not really"...;
    None when the answer is neither (the question is asked again)."""
    words = _normalise(text)
    if not words:
        return None
    for candidate in (words, words.split(" ")[0]):
        if candidate in YES:
            return True
        if candidate in NO:
            return False
    return None


def is_skip(text: Any) -> bool:
    """Whether the customer declines to answer a free-text question."""
    return _normalise(text) in SKIP


def stored_survey(tracker: Tracker) -> Survey | None:
    """The survey this conversation runs, as loaded by `action_ask_loop_answer`."""
    data = mapping_slot(tracker, SURVEY_SLOT)
    if data is None:
        return None
    try:
        return parse_model(Survey, data, "loop")
    except MalformedReply:
        wrong_type(SURVEY_SLOT, data, "a Loop survey")
        return None


def answerable(survey: Survey) -> list[Question]:
    return [q for q in survey.questions if q.type in SUPPORTED_TYPES]


def question_order(survey: Survey, stored: Any, rng: random.Random | None = None) -> list[str]:
    """The conversation's question order: the stored one while it fits the survey, else the
    survey's order, shuffled once when the survey asks for randomisation."""
    ids = [q.categoryId for q in answerable(survey)]
    if (isinstance(stored, list) and all(isinstance(item, str) for item in stored)
            and sorted(stored) == sorted(ids)):
        return list(stored)
    if survey.randomized:
        return (rng or random.Random()).sample(ids, len(ids))
    return ids


def answers_of(tracker: Tracker) -> dict[str, Any]:
    """The answers so far (categoryId -> yes/no, text, or None when skipped); any other
    shape counts as no answers yet, so the survey is asked again from its first question."""
    value = mapping_slot(tracker, ANSWERS_SLOT)
    if value is None:
        return {}
    if not all(answer is None or isinstance(answer, (bool, str)) for answer in value.values()):
        wrong_type(ANSWERS_SLOT, value, "survey answers")
        return {}
    return value


def current_question(survey: Survey, order: list[str], answers: dict[str, Any]
                     ) -> Question | None:
    """The first question in conversation order that has no answer yet."""
    for category_id in order:
        if category_id not in answers:
            return survey.question(category_id)
    return None


def unanswered_required(survey: Survey, answers: dict[str, Any]) -> list[str]:
    return [q.categoryId for q in answerable(survey)
            if q.is_required and answers.get(q.categoryId) is None]


class ActionAskLoopAnswer(IntegrationAction):
    """Ask the current survey question (loading the survey and its order on first use).

    If Loop cannot be reached the form ends with the shared error response, and "try again"
    restarts `loop_survey_form`, which carries on from the first unanswered question.
    """

    #: A failure records the survey form as pending, so "try again" restarts it.
    retry_targets = (FORM,)

    def name(self) -> str:
        return "action_ask_loop_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        events = await super().run(dispatcher, tracker, domain)
        failed = SlotSet(PENDING_ACTION_SLOT, self.name()) in events
        if failed:
            events = [e for e in events if e != SlotSet(PENDING_ACTION_SLOT, self.name())]
            return [*events, SlotSet(REQUESTED_SLOT, None), ActiveLoop(None),
                    SlotSet(PENDING_ACTION_SLOT, FORM)]
        if tracker.get_slot(PENDING_ACTION_SLOT) == FORM:
            events.append(SlotSet(PENDING_ACTION_SLOT, None))
        return events

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        events: EventList = []
        survey = stored_survey(tracker)
        if survey is None:
            survey = await client("loop", LoopClient).survey(await chosen_location(tracker))
            events.append(SlotSet(SURVEY_SLOT, dump_model(survey)))
        stored_order = text_list_slot(tracker, ORDER_SLOT)
        order = question_order(survey, stored_order)
        if order != stored_order:
            events.append(SlotSet(ORDER_SLOT, order))
        answers = answers_of(tracker)
        question = current_question(survey, order, answers)
        if question is None:
            return [*events, SlotSet(REQUESTED_SLOT, None)]
        language = text_slot(tracker, LANGUAGE_SLOT)
        fallback = settings().fallback_language
        if question.type == BOOL:
            response = "utter_loop_ask_bool"
        else:
            response = "utter_loop_ask_text" if question.is_required else \
                "utter_loop_ask_text_optional"
        dispatcher.utter_message(
            response=response,
            question=localized(question.text, language, fallback),
            placeholder=localized(question.placeholder, language, fallback),
            category_id=question.categoryId,
        )
        return events


class ValidateLoopSurveyForm(LocationChoice, TextSlotForm):
    """The location when the customer chooses it; then each answer, checked against the
    question it answers; the form ends when all are in."""

    text_slots = (LOCATION_SLOT, ANSWER_SLOT)

    def name(self) -> str:
        return "validate_loop_survey_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        survey = stored_survey(tracker)
        if survey is not None:
            order = question_order(survey, text_list_slot(tracker, ORDER_SLOT))
            if current_question(survey, order, answers_of(tracker)) is None:
                return []
        return await self.location_slots(domain_slots, tracker)

    async def validate_loop_answer(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        survey = stored_survey(tracker)
        if survey is None:
            return {ANSWER_SLOT: None}
        order = question_order(survey, text_list_slot(tracker, ORDER_SLOT))
        answers = answers_of(tracker)
        question = current_question(survey, order, answers)
        if question is None:
            return {ANSWER_SLOT: None}
        value: bool | str | None
        if question.type == BOOL:
            value = parse_bool(slot_value)
            if value is None:
                dispatcher.utter_message(response="utter_loop_invalid_bool")
                return {ANSWER_SLOT: None}
        elif is_skip(slot_value):
            if question.is_required:
                dispatcher.utter_message(response="utter_loop_answer_required")
                return {ANSWER_SLOT: None}
            value = None
        else:
            max_length = settings().max_text_length
            value = clean_text(slot_value, max_length)
            if value is None:
                dispatcher.utter_message(response="utter_invalid_text", min_length=1,
                                         max_length=max_length)
                return {ANSWER_SLOT: None}
        answers[question.categoryId] = value
        return {ANSWER_SLOT: None, ANSWERS_SLOT: answers, ORDER_SLOT: order}


async def submit_survey(payload: dict[str, Any]) -> dict[str, Any]:
    """Send the survey response saved in `payload` (at once, or later from the outbox),
    dated when the customer answered."""
    survey = parse_model(Survey, payload["survey"], "loop")
    receipt = await client("loop", LoopClient).submit_response(
        survey, payload["answers"], when=datetime.fromtimestamp(payload["answered_at"],
                                                                timezone.utc),
        location=await location_by_id(payload.get("location_id")),
        reference=payload.get("reference"))
    return {"id": receipt.id, "loopId": receipt.loopId, "loopUrl": receipt.loopUrl}


def confirm_survey(receipt: dict[str, Any], dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> EventList:
    """Thank the customer for a response Loop holds (at once, or when the outbox sent it),
    and say so when Loop opened a loop to follow it up."""
    dispatcher.utter_message(response="utter_loop_survey_thanks")
    if receipt.get("loopId"):
        dispatcher.utter_message(response="utter_loop_follow_up")
    return [
        SlotSet(RESPONSE_ID_SLOT, receipt.get("id")),
        SlotSet("loop_loop_id", receipt.get("loopId")),
        SlotSet("loop_loop_url", receipt.get("loopUrl")),
    ]


SURVEY_RESPONSE = declare(Submission(
    Kind("loop.submit_response", "loop", submit_survey, intent="loop_submission_update"),
    confirm_slot=RESPONSE_ID_SLOT, queued_response="utter_loop_survey_queued",
    failed_response="utter_loop_survey_not_sent", confirm=confirm_survey))


class ActionLoopSubmitSurvey(IntegrationAction):
    """Send the conversation's answers to Loop as one response.

    Runs after `loop_survey_form`; does nothing when the survey was not completed (the form
    was interrupted, or loading the survey failed and the customer was already told).
    With Loop down or busy, the response waits in the outbox and is sent when Loop is back.
    """

    error_responses = {RejectedInput: "utter_loop_survey_rejected"}

    def name(self) -> str:
        return "action_loop_submit_survey"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        survey = stored_survey(tracker)
        answers = answers_of(tracker)
        if survey is None or unanswered_required(survey, answers):
            logger.info("loop: survey not completed, nothing to submit")
            return []
        values = {key: value for key, value in answers.items() if value is not None}
        done = [SlotSet(ANSWERS_SLOT, None), SlotSet(SURVEY_SLOT, None)]
        if not values:
            dispatcher.utter_message(response="utter_loop_survey_thanks")
            return done
        reference = clean_line(text_slot(tracker, REFERENCE_SLOT), MAX_REFERENCE)
        if reference:
            done.append(SlotSet(REFERENCE_SLOT, None))
        identity = {"survey": survey.id, "answers": values, "reference": reference}
        payload = {**identity, "survey": dump_model(survey), "answered_at": time.time(),
                   "location_id": chosen_location_id(tracker)}
        # One response per completed survey, however often it is sent.
        receipt = await self.file_once(dispatcher, tracker, SURVEY_RESPONSE, payload, identity)
        if receipt is None:
            return done
        return [*confirm_survey(receipt, dispatcher, tracker), *done]

"""Cention actions: library answers, popular questions, and hand-off as an errand.

- `action_cention_answer` (meant as the fallback action) searches the external library with
  the customer's message (or the `cention_query` slot), answers with the best match and
  offers the next matches as buttons; no match offers a hand-off to the support team.
- `action_cention_pick_question` answers a suggestion the customer clicked.
- `action_cention_popular_questions` offers the library's top list.
- `cention_errand_form` + `action_cention_create_errand` hand the conversation to an agent
  as an errand and record which conversation owns it, so the agent's answer (delivered by the
  Cention connector) comes back into this conversation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction
from rasa_service_desk.actions.runtime import client, enable, integration
from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.actions.transcript import shared_files, transcript_text
from rasa_service_desk.actions.validation import (
    ContactSlotValidation,
    clean_email,
    clean_name,
    clean_text,
    validated_text,
)
from rasa_service_desk.clients.cention.client import CentionClient, NewErrand
from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.cention.models import LibraryQuestion
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.errors import IntegrationError

logger = logging.getLogger(__name__)

#: Importing this module enables Cention: its settings are read and checked now.
enable("cention")
shared_state()  # checked at start too: the callback connector needs the errand owners

QUERY_SLOT = "cention_query"
FAILED_QUERY_SLOT = "cention_failed_query"
QUESTION_ID_SLOT = "cention_question_id"
SUBJECT_SLOT = "cention_errand_subject"
ERRAND_ID_SLOT = "cention_errand_id"
PICK_INTENT = "cention_pick_question"
FORM_NAME = "cention_errand_form"
SUBJECT_MIN_LENGTH = 3
SUBJECT_MAX_LENGTH = 150
BUTTON_TITLE_LENGTH = 64



def cention() -> CentionClient:
    """The process's Cention client (its cache serves every conversation)."""
    return client("cention", CentionClient)


def cention_settings() -> CentionSettings:
    settings: CentionSettings = integration("cention").settings
    return settings


def errand_registry() -> ErrandRegistry:
    """Errand ownership in the shared state, where the callback connector finds it."""
    return ErrandRegistry(shared_state())


def pick_button(question: LibraryQuestion) -> dict[str, str]:
    """A button that asks for `question`'s answer without going through NLU."""
    title = question.title or question.question
    if len(title) > BUTTON_TITLE_LENGTH:
        title = title[: BUTTON_TITLE_LENGTH - 1].rstrip() + "…"
    entity = json.dumps({QUESTION_ID_SLOT: question.id})
    return {"title": title, "payload": f"/{PICK_INTENT}{entity}"}


def answer(dispatcher: CollectingDispatcher, question: LibraryQuestion) -> None:
    dispatcher.utter_message(
        response="utter_cention_answer", answer=question.answer, question=question.title
    )


class ActionCentionAnswer(IntegrationAction):
    """Answer from the library; the fallback action for questions the bot has no intent for."""

    def name(self) -> str:
        return "action_cention_answer"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        chosen = tracker.get_slot(QUERY_SLOT)
        events: EventList = [SlotSet(QUERY_SLOT, None)] if chosen else []
        if tracker.get_slot(FAILED_QUERY_SLOT):
            events.append(SlotSet(FAILED_QUERY_SLOT, None))
        phrase = self.question(tracker)
        # A button payload ("/intent{...}") is not a question.
        matches = [] if not phrase or phrase.startswith("/") else await cention().search(phrase)
        matches = [q for q in matches if q.answer]
        if not matches:
            dispatcher.utter_message(response="utter_cention_no_answer")
            return events
        answer(dispatcher, matches[0])
        others = matches[1 : 1 + cention_settings().max_suggestions]
        if others:
            dispatcher.utter_message(
                response="utter_cention_suggestions", buttons=[pick_button(q) for q in others]
            )
        return events

    @staticmethod
    def question(tracker: Tracker) -> str:
        """What to search: the designer's slot, the question a failed search was asked (when
        the customer said "try again"), or else the customer's latest message."""
        chosen = tracker.get_slot(QUERY_SLOT)
        if isinstance(chosen, str) and chosen.strip():
            return chosen.strip()
        failed = tracker.get_slot(FAILED_QUERY_SLOT)
        if tracker.latest_action_name == "action_retry_pending" and isinstance(failed, str):
            return failed.strip()
        return str(tracker.latest_message.get("text") or "").strip()

    def failure_events(self, exc: IntegrationError, tracker: Tracker) -> EventList:
        """Keep the question, so "try again" searches it rather than the words "try again"."""
        return [SlotSet(FAILED_QUERY_SLOT, self.question(tracker))]


class ActionCentionPickQuestion(IntegrationAction):
    """Answer the suggestion the customer picked (`cention_question_id`)."""

    def name(self) -> str:
        return "action_cention_pick_question"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        picked = next(tracker.get_latest_entity_values(QUESTION_ID_SLOT), None)
        picked = picked or tracker.get_slot(QUESTION_ID_SLOT)
        # The id comes from the customer's message: the client only returns questions
        # customers may see, so typing an internal question's id gets nothing.
        question = await cention().question(str(picked)) if picked else None
        if question is None or not question.answer:
            dispatcher.utter_message(response="utter_cention_question_unavailable")
        else:
            answer(dispatcher, question)
        return [SlotSet(QUESTION_ID_SLOT, None)]


class ActionCentionPopularQuestions(IntegrationAction):
    """Offer the library's top-list questions as buttons."""

    def name(self) -> str:
        return "action_cention_popular_questions"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        limit = max(1, cention_settings().max_suggestions)
        questions = [q for q in await cention().popular() if q.answer][:limit]
        if not questions:
            dispatcher.utter_message(response="utter_cention_no_popular_questions")
        else:
            dispatcher.utter_message(
                response="utter_cention_popular_questions",
                buttons=[pick_button(q) for q in questions],
            )
        return []


def errand_message_id(tracker: Tracker, subject: str) -> str:
    """The errand's `message_id`: the same when the customer retries, new for a new hand-off.

    It is derived from the conversation, the moment the errand form started and the subject,
    so "try again" after a timeout sends the same id (Cention can recognise the repeat) while
    a later hand-off in the same conversation gets a new one.
    """
    started = ""
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name") == FORM_NAME:
            started = str(event.get("timestamp", ""))
            break
    digest = hashlib.sha256(f"{tracker.sender_id}|{started}|{subject}".encode()).hexdigest()
    return f"rasa-{digest[:32]}"


def errand_body(tracker: Tracker) -> str:
    """The transcript, plus links to the files the customer shared, for the agent."""
    body = transcript_text(tracker)
    files = shared_files(tracker)
    if files:
        body += "\nFiles shared by the customer:\n" + "".join(
            f"- {item['name']}: {item['url']}\n" for item in files
        )
    return body


async def record_owner(errand_id: str, tracker: Tracker) -> None:
    await errand_registry().record(errand_id, tracker.sender_id,
                                   tracker.get_latest_input_channel())


class ActionCentionCreateErrand(IntegrationAction):
    """Hand the conversation to the support team as a Cention errand."""

    def name(self) -> str:
        return "action_cention_create_errand"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        name = clean_name(tracker.get_slot("customer_name"))
        email = clean_email(tracker.get_slot("customer_email"))
        subject = clean_text(tracker.get_slot(SUBJECT_SLOT), SUBJECT_MAX_LENGTH, SUBJECT_MIN_LENGTH)
        if not (name and email and subject):
            dispatcher.utter_message(response="utter_cention_errand_incomplete")
            return []
        message_id = errand_message_id(tracker, subject)
        errand_id = await cention().create_errand(NewErrand(
            message_id=message_id,
            name=name,
            email=email,
            subject=subject,
            body=errand_body(tracker),
            extradata={
                "conversation_id": tracker.sender_id,
                "channel": tracker.get_latest_input_channel(),
                "source": "rasa",
            },
        ))
        try:
            await record_owner(errand_id, tracker)
        except Exception:
            # The errand exists and its answer still reaches the customer by email; only the
            # copy into this chat is lost, so tell the customer the reference anyway.
            logger.error("cention errand %s: could not record its conversation", errand_id,
                         exc_info=True)
        logger.info("cention errand %s created for conversation %s", errand_id,
                    tracker.sender_id)
        dispatcher.utter_message(
            response="utter_cention_errand_created", errand_id=errand_id, email=email
        )
        return [SlotSet(ERRAND_ID_SLOT, errand_id), SlotSet(SUBJECT_SLOT, None)]


class ValidateCentionErrandForm(ContactSlotValidation, FormValidationAction):
    """Checks the errand form's answers before anything is sent to Cention."""

    def name(self) -> str:
        return "validate_cention_errand_form"

    async def validate_cention_errand_subject(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return validated_text(
            dispatcher, SUBJECT_SLOT, value, SUBJECT_MAX_LENGTH, SUBJECT_MIN_LENGTH
        )

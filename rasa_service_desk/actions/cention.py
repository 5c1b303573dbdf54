"""Cention actions: library answers, popular questions, and hand-off as an errand.

- `action_cention_answer` (meant as the fallback action) searches the external library with
  the customer's message (or the `cention_query` slot), answers with the best match and
  offers the next matches as buttons; no match offers a hand-off to the support team.
- `action_cention_pick_question` answers a suggestion the customer clicked.
- `action_cention_popular_questions` offers the library's top list.
- `cention_errand_form` + `action_cention_create_errand` hand the conversation to an agent
  as an errand and record which conversation owns it, so the agent's answer (delivered by the
  Cention connector) comes back into this conversation; optionally they also save the
  customer's contact card (`CENTION_CONTACT_CARD`).
- `action_cention_errand_status` ("any news on my request?") tells how an errand of this
  conversation is doing, from Cention's errand report.
- `action_cention_start_withdrawal` + `cention_withdraw_form` +
  `action_cention_withdraw_errand` ("never mind, it's solved") close an open errand of this
  conversation once the customer confirms.
- `action_cention_record_resolved` ("that helped") thanks the customer and, when the operator
  asks for it (`CENTION_RECORD_RESOLVED`), records the library answer in Cention as an
  errand that is already closed, so the contact centre's reports count it.

An errand number the customer gives is only ever looked at when this conversation created
that errand (the errand registry); any other number gets the reply of an unknown one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction, time_left
from rasa_service_desk.actions.delivery import ActionSubmissionUpdate, Submission, declare
from rasa_service_desk.actions.forms import TextSlotForm
from rasa_service_desk.actions.runtime import client, enable, integration
from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.actions.transcript import shared_files, transcript_text
from rasa_service_desk.actions.validation import (
    EMAIL_SLOT,
    NAME_SLOT,
    ContactSlotValidation,
    clean_email,
    clean_line,
    clean_name,
    clean_phone,
    text_slot,
    validated_text,
)
from rasa_service_desk.clients.cention.callback import CALLBACK_CHANNEL
from rasa_service_desk.clients.cention.client import CentionClient, NewErrand
from rasa_service_desk.clients.cention.errand_registry import ErrandOwner, ErrandRegistry
from rasa_service_desk.clients.cention.errands import (
    RECORD_SENDER_DOMAIN,
    ContactCard,
    ErrandAnswer,
    ErrandReport,
    FollowUpOptions,
    WithdrawalLog,
    follow_up_options,
    format_time,
)
from rasa_service_desk.clients.cention.models import LibraryQuestion
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.errors import IntegrationError
from rasa_service_desk.logs import conversation_fields, conversation_hash
from rasa_service_desk.outbox import Kind
from rasa_service_desk.timeouts import within

logger = logging.getLogger(__name__)

#: Importing this module enables Cention: its settings are read and checked now.
enable("cention")
shared_state()  # checked at start too: the callback connector needs the errand owners

QUERY_SLOT = "cention_query"
FAILED_QUERY_SLOT = "cention_failed_query"
QUESTION_ID_SLOT = "cention_question_id"
SUBJECT_SLOT = "cention_errand_subject"
ERRAND_ID_SLOT = "cention_errand_id"
AGENT_ANSWER_INTENT = "cention_agent_answer"
#: The slots an agent's answer fills from its entities (see domain/cention.yml).
ANSWER_SLOTS = ("cention_answer_errand_id", "cention_answer_text",
                "cention_attachment_names", "cention_answer_kind")
PICK_INTENT = "cention_pick_question"
FORM_NAME = "cention_errand_form"
SUBJECT_MIN_LENGTH = 3
SUBJECT_MAX_LENGTH = 150
BUTTON_TITLE_LENGTH = 64
#: The library question last answered in this conversation ("that helped" records it).
ANSWERED_SLOT = "cention_answered_question_id"
#: An errand number the customer gave, kept when the action failed so "try again" uses it.
ERRAND_NUMBER_SLOT = "cention_errand_number"
ERRAND_NUMBER_ENTITY = "cention_errand_number"
WITHDRAW_ERRAND_SLOT = "cention_withdraw_errand_id"
WITHDRAW_CONFIRMATION_SLOT = "cention_withdraw_confirmation"
WITHDRAW_FORM = "cention_withdraw_form"
#: The domain response whose text closes a withdrawn errand in Cention (not shown in chat).
WITHDRAWN_NOTE = "utter_cention_errand_withdrawn_note"
RETRY_ACTION = "action_retry_pending"
CUID_MAX_LENGTH = 100
STATUS_RESPONSES = {
    "waiting": "utter_cention_errand_status_waiting",
    "in_progress": "utter_cention_errand_status_in_progress",
    "answered": "utter_cention_errand_status_answered",
    "closed": "utter_cention_errand_status_closed",
    "withdrawn": "utter_cention_errand_status_withdrawn",
}



def cention() -> CentionClient:
    """The process's Cention client (its cache serves every conversation)."""
    return client("cention", CentionClient)


def cention_settings() -> CentionSettings:
    settings: CentionSettings = integration("cention").settings
    return settings


def errand_registry() -> ErrandRegistry:
    """Errand ownership in the shared state, where the callback connector finds it."""
    return ErrandRegistry(shared_state())


_options: list[FollowUpOptions] = []


def follow_ups() -> FollowUpOptions:
    """The operator's follow-up settings (agent names, closing user, contact card, ...)."""
    if not _options:
        loaded = integration("cention")
        _options.append(follow_up_options(loaded.settings, loaded.sandboxed))
    return _options[0]


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
            if tracker.get_slot(ANSWERED_SLOT):
                events.append(SlotSet(ANSWERED_SLOT, None))
            return events
        answer(dispatcher, matches[0])
        events.append(SlotSet(ANSWERED_SLOT, matches[0].id))
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
        chosen = text_slot(tracker, QUERY_SLOT)
        if chosen and chosen.strip():
            return chosen.strip()
        failed = text_slot(tracker, FAILED_QUERY_SLOT)
        if tracker.latest_action_name == "action_retry_pending" and failed is not None:
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
        picked = picked or text_slot(tracker, QUESTION_ID_SLOT)
        # The id comes from the customer's message: the client only returns questions
        # customers may see, so typing an internal question's id gets nothing.
        question = await cention().question(str(picked)) if picked else None
        if question is None or not question.answer:
            dispatcher.utter_message(response="utter_cention_question_unavailable")
            return [SlotSet(QUESTION_ID_SLOT, None)]
        answer(dispatcher, question)
        return [SlotSet(QUESTION_ID_SLOT, None), SlotSet(ANSWERED_SLOT, question.id)]


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


#: Seconds a contact card may take when the outbox files a queued errand.
CONTACT_CARD_SECONDS = 5.0


async def hand_off(payload: dict[str, Any]) -> dict[str, str]:
    """Create the errand saved in `payload` (at once, or later from the outbox). What
    follows once it exists, its owner and the contact card, is `errand_filed`'s."""
    errand_id = await cention().create_errand(NewErrand(
        message_id=payload["message_id"], name=payload["name"], email=payload["email"],
        subject=payload["subject"], body=payload["body"], extradata=payload["extradata"],
        cuid=payload.get("cuid") or "",
    ))
    sender_id = str(payload["sender_id"])
    logger.info("cention errand %s created (conv=%s)", errand_id, conversation_hash(sender_id),
                extra=conversation_fields(sender_id))
    return {"id": errand_id}


async def errand_filed(payload: dict[str, Any], errand: dict[str, Any]) -> None:
    """Record which conversation owns the errand just filed (where the callback connector
    looks when an agent answers) and save the customer's contact card, if asked to.

    Runs alongside the write of the submission's outcome (`Kind.remember`): the owner's
    write is issued before the first await, so it starts in the same turn as the outcome's
    and both reach the store in one round trip; the card's vendor call is outside the
    submission's budget, so a slow card can neither hold up the owner's record nor make a
    filed errand count as failed. The reply waits for the card (at most
    `CONTACT_CARD_SECONDS`)."""
    errand_id = str(errand["id"])
    card = payload.get("contact_card")
    saving = asyncio.ensure_future(save_contact_card(errand_id, card)) if isinstance(
        card, dict) else None
    try:
        try:
            await errand_registry().record(errand_id, str(payload["sender_id"]),
                                           payload.get("channel"))
        except Exception:
            # The errand exists and its answer still reaches the customer by email; only
            # the copy into this chat is lost, so tell the customer the reference anyway.
            logger.error("cention errand %s: could not record its conversation", errand_id,
                         exc_info=True)
        if saving is not None:
            await saving
    finally:
        if saving is not None and not saving.done():  # cancelled: the card goes with it
            saving.cancel()


async def save_contact_card(errand_id: str, card: dict[str, Any]) -> None:
    """Best effort, for at most `CONTACT_CARD_SECONDS` and never past the action's
    deadline: a failure is logged and never fails the errand."""
    budget = time_left()
    await best_effort(cention().save_contact_card(ContactCard(
        name=card["name"], emails=tuple(card["emails"]), phones=tuple(card["phones"]))),
        CONTACT_CARD_SECONDS if budget is None else min(budget, CONTACT_CARD_SECONDS),
        f"cention errand {errand_id}: contact card")


def confirm_errand(errand: dict[str, Any], dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> EventList:
    """Tell the customer the errand's number (at once, or when the outbox filed it)."""
    # The address from the conversation (kept after the hand-off), so that the outcome
    # recorded in the shared state holds ids only.
    dispatcher.utter_message(response="utter_cention_errand_created",
                             errand_id=errand.get("id"),
                             email=clean_email(text_slot(tracker, "customer_email")))
    return [SlotSet(ERRAND_ID_SLOT, errand.get("id"))]


ERRAND = declare(Submission(
    Kind("cention.create_errand", "cention", hand_off, intent="cention_submission_update",
         remember=errand_filed),
    confirm_slot=ERRAND_ID_SLOT, queued_response="utter_cention_errand_queued",
    failed_response="utter_cention_errand_not_filed", confirm=confirm_errand))


class ActionCentionCreateErrand(IntegrationAction):
    """Hand the conversation to the support team as a Cention errand; with Cention down,
    the errand waits in the outbox and the customer hears it will be passed on."""

    def name(self) -> str:
        return "action_cention_create_errand"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        name = clean_name(text_slot(tracker, "customer_name"))
        email = clean_email(text_slot(tracker, "customer_email"))
        subject = clean_line(text_slot(tracker, SUBJECT_SLOT), SUBJECT_MAX_LENGTH,
                             SUBJECT_MIN_LENGTH)
        if not (name and email and subject):
            dispatcher.utter_message(response="utter_cention_errand_incomplete")
            return []
        options = follow_ups()
        message_id = errand_message_id(tracker, subject)
        phone = clean_phone(text_slot(tracker, "customer_phone"))
        payload = {
            "message_id": message_id, "name": name, "email": email, "subject": subject,
            "body": errand_body(tracker),
            "extradata": {"conversation_id": tracker.sender_id,
                          "channel": tracker.get_latest_input_channel(), "source": "rasa"},
            "cuid": customer_cuid(tracker, options),
            "sender_id": tracker.sender_id, "channel": tracker.get_latest_input_channel(),
            "contact_card": ({"name": name, "emails": [email], "phones": [phone] if phone
                              else []} if options.contact_card else None),
        }
        # One errand per hand-off, however often it is asked for (the message id names the
        # hand-off: the form's start and the subject).
        errand = await self.file_once(
            dispatcher, tracker, ERRAND, payload,
            {"name": name, "email": email, "message_id": message_id})
        done = [SlotSet(SUBJECT_SLOT, None)]
        if errand is None:
            return done
        return [*confirm_errand(errand, dispatcher, tracker), *done]


class ActionCentionSubmissionUpdate(ActionSubmissionUpdate):
    """`action_cention_submission_update`: a queued errand was passed on (its number) or
    given up, announced when the outbox triggers `cention_submission_update`."""

    vendor = "cention"

    def name(self) -> str:
        return "action_cention_submission_update"


def customer_cuid(tracker: Tracker, options: FollowUpOptions) -> str:
    """The `cuid` for the customer's contact card: the slot the operator named, if set."""
    if not options.cuid_slot:
        return ""
    return clean_line(text_slot(tracker, options.cuid_slot), CUID_MAX_LENGTH) or ""


async def best_effort(work: Any, budget: float, what: str) -> Any:
    """Run `work` (a coroutine) within `budget` seconds; a failure or a timeout is logged and
    gives None, never an error for the customer."""
    if budget <= 0:
        work.close()
        logger.warning("%s: skipped, no time left before the action's deadline", what)
        return None
    try:
        return await within(work, budget)
    except asyncio.TimeoutError:
        logger.warning("%s: no result within %.1f s", what, budget)
    except IntegrationError as exc:
        logger.warning("%s: failed (%s, HTTP %s)", what, type(exc).__name__, exc.status)
    except Exception:
        logger.error("%s: failed unexpectedly", what, exc_info=True)
    return None


# -- follow-ups: status, withdrawal, resolved by the bot ---------------------------------------

#: Not followed by a unit of time ("2 days", "10 am").
_NOT_A_DURATION = r"(?!\s*(?:days?|hours?|hrs?|h|minutes?|mins?|weeks?|months?|years?|am|pm)\b)"
#: A number the customer calls an errand ("request 511055", "#2256-1", "ref: 33").
_REFERENCE = re.compile(
    r"(?:#|\b(?:errand|request|reference|ref|case|ticket|number|nr|no)\b\.?)\s*"
    r"(?:number|nr\.?|no\.?)?\s*[:#]?\s*(\d{1,18})(?:-\d{1,3})?(?![\d.,:/-])"
    + _NOT_A_DURATION, re.IGNORECASE)
#: Otherwise a number of 3 digits or more standing alone (not a time, date, phone or amount).
_NUMBER = re.compile(r"(?<![\w.,:/+-])(\d{3,18})(?:-\d{1,3})?(?![\w.,:/-])"
                     + _NOT_A_DURATION, re.IGNORECASE)


def errand_number_in(text: str) -> str | None:
    """The errand number in a customer's message, or None."""
    text = text.strip()
    if text.isdigit() and len(text) <= 18:
        return text.lstrip("0") or None
    for pattern in (_REFERENCE, _NUMBER):
        match = pattern.search(text)
        if match:
            return match.group(1).lstrip("0") or None
    return None


def requested_errand(tracker: Tracker) -> str | None:
    """The errand number the customer gave: the entity of a button or extractor, the number
    in their message, or (when "try again" re-runs the action) the one kept on failure."""
    if tracker.latest_action_name == RETRY_ACTION:
        kept = text_slot(tracker, ERRAND_NUMBER_SLOT)
        return kept or None
    entity = next(tracker.get_latest_entity_values(ERRAND_NUMBER_ENTITY), None)
    if entity is not None:
        return errand_number_in(str(entity))
    text = str(tracker.latest_message.get("text") or "")
    if text.startswith("/"):  # intent syntax: only its entities count
        return None
    return errand_number_in(text)


async def own_errand(errand_id: str, tracker: Tracker) -> ErrandOwner | None:
    """The registry's record of `errand_id` when this conversation created it, else None
    (whether the errand belongs to another conversation or does not exist at all)."""
    owner = await errand_registry().owner(errand_id)
    return owner if owner is not None and owner.sender_id == tracker.sender_id else None


def withdrawals() -> WithdrawalLog:
    return WithdrawalLog(shared_state())


def domain_text(domain: DomainDict, response: str, **values: str) -> str:
    """The text of `response`'s first variation in the domain, `{name}`s filled from `values`
    (for text that goes to Cention, not to the chat)."""
    variations = (domain.get("responses") or {}).get(response)
    first = variations[0] if isinstance(variations, list) and variations else None
    text = first.get("text") if isinstance(first, dict) else None
    if not isinstance(text, str):
        logger.warning("%s is not in the domain Rasa sent (enable_selective_domain?); "
                       "sending no text", response)
        return ""
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


class ErrandFollowUp(IntegrationAction):
    """Finds the errand a follow-up is about: the number the customer gave, else the errand
    created in this conversation; either way only an errand this conversation owns."""

    def failure_events(self, exc: IntegrationError, tracker: Tracker) -> EventList:
        """Keep the number the customer gave, so "try again" asks about the same errand."""
        return [SlotSet(ERRAND_NUMBER_SLOT, requested_errand(tracker))]

    @staticmethod
    def clear_number(tracker: Tracker) -> EventList:
        return [SlotSet(ERRAND_NUMBER_SLOT, None)] if tracker.get_slot(
            ERRAND_NUMBER_SLOT) else []

    async def errand(
        self, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> tuple[str, ErrandOwner, ErrandReport] | None:
        """The errand and its report, or None after telling the customer why not."""
        errand_id = requested_errand(tracker) or text_slot(tracker, ERRAND_ID_SLOT)
        if not errand_id:
            dispatcher.utter_message(response="utter_cention_no_errand")
            return None
        errand_id = str(errand_id)
        owner = await own_errand(errand_id, tracker)
        # Cention is asked only about this conversation's errands: another conversation's
        # errand and one that does not exist get the same reply.
        report = await cention().errand_report(errand_id) if owner is not None else None
        if owner is None or report is None:
            dispatcher.utter_message(response="utter_cention_errand_unknown",
                                     errand_id=errand_id)
            return None
        return errand_id, owner, report


class ActionCentionErrandStatus(ErrandFollowUp):
    """ "Any news on my request?": how the errand is doing and when it last moved."""

    def name(self) -> str:
        return "action_cention_errand_status"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        events = self.clear_number(tracker)
        found = await self.errand(dispatcher, tracker)
        if found is None:
            return events
        errand_id, owner, report = found
        options = follow_ups()
        state: str = report.state
        last = report.last_action_at or owner.created_at
        if state in ("answered", "closed"):
            withdrawn_at = await withdrawals().withdrawn_at(errand_id)
            if withdrawn_at is not None:
                state, last = "withdrawn", report.last_action_at or withdrawn_at
        values = {"errand_id": errand_id, "last_update": format_time(last, options.timezone)}
        if state == "in_progress" and options.show_agent_names and report.agent:
            dispatcher.utter_message(response="utter_cention_errand_status_in_progress_named",
                                     agent=report.agent, **values)
        else:
            dispatcher.utter_message(response=STATUS_RESPONSES[state], **values)
        return events


class ActionCentionStartWithdrawal(ErrandFollowUp):
    """ "Never mind, it's solved": check the errand can be withdrawn, then ask to confirm
    (`cention_withdraw_form`)."""

    def name(self) -> str:
        return "action_cention_start_withdrawal"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        events = self.clear_number(tracker)
        if follow_ups().closing_user is None:
            dispatcher.utter_message(response="utter_cention_withdraw_unavailable")
            return events
        found = await self.errand(dispatcher, tracker)
        if found is None:
            return events
        errand_id, _, report = found
        if report.state in ("answered", "closed"):
            dispatcher.utter_message(response="utter_cention_errand_already_closed",
                                     errand_id=errand_id)
            return events
        return [*events, SlotSet(WITHDRAW_ERRAND_SLOT, errand_id),
                SlotSet(WITHDRAW_CONFIRMATION_SLOT, None), FollowupAction(WITHDRAW_FORM)]


class ActionCentionWithdrawErrand(IntegrationAction):
    """Close the errand once the customer confirmed, as the operator's closing user, with the
    text of `utter_cention_errand_withdrawn_note`; or keep it open when they said no."""

    def name(self) -> str:
        return "action_cention_withdraw_errand"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        errand_id = text_slot(tracker, WITHDRAW_ERRAND_SLOT)
        confirmed = text_slot(tracker, WITHDRAW_CONFIRMATION_SLOT)
        done = [SlotSet(WITHDRAW_ERRAND_SLOT, None), SlotSet(WITHDRAW_CONFIRMATION_SLOT, None)]
        if not errand_id or confirmed not in ("yes", "no"):
            dispatcher.utter_message(response="utter_cention_no_errand")
            return done
        errand_id = str(errand_id)
        if confirmed == "no":
            dispatcher.utter_message(response="utter_cention_withdraw_cancelled",
                                     errand_id=errand_id)
            return done
        user = follow_ups().closing_user
        if user is None:
            dispatcher.utter_message(response="utter_cention_withdraw_unavailable")
            return done
        # The slot comes back from the client side of the conversation: check it again.
        report = await cention().errand_report(errand_id) if await own_errand(
            errand_id, tracker) else None
        if report is None:
            dispatcher.utter_message(response="utter_cention_errand_unknown",
                                     errand_id=errand_id)
            return done
        if report.state in ("answered", "closed"):
            dispatcher.utter_message(response="utter_cention_errand_already_closed",
                                     errand_id=errand_id)
            return done
        note = domain_text(domain, WITHDRAWN_NOTE, errand_id=errand_id)
        await cention().end_errand(errand_id, ErrandAnswer(user, subject=report.subject,
                                                          body=note))
        try:
            await withdrawals().record(errand_id, tracker.sender_id)
        except Exception:
            logger.error("cention errand %s: withdrawn, but not recorded as such", errand_id,
                         exc_info=True)
        logger.info("cention errand %s withdrawn by its customer (conv=%s)", errand_id,
                    conversation_hash(tracker.sender_id),
                    extra=conversation_fields(tracker.sender_id))
        dispatcher.utter_message(response="utter_cention_errand_withdrawn", errand_id=errand_id)
        return done


_YES = frozenset({"yes", "y", "yeah", "yep", "yup", "yea", "sure", "ok", "okay", "correct",
                  "confirm", "confirmed", "absolutely", "definitely", "right", "affirmative"})
_NO = frozenset({"no", "n", "nope", "nah", "not", "don't", "dont", "keep", "negative"})
_GO_AHEAD = frozenset({"close", "withdraw", "ahead", "solved"})


def yes_or_no(text: Any) -> str | None:
    """"yes" or "no" for a customer's answer to a yes/no question, None when it is neither:
    the first yes-word or no-word decides ("yes, it's not needed any more" is yes, "no,
    keep it" no); a sentence without either that asks to close ("please close it") is yes."""
    if not isinstance(text, str):
        return None
    words = re.findall(r"[a-z']+", text.casefold().replace("\u2019", "'"))
    for word in words:
        if word in _YES:
            return "yes"
        if word in _NO:
            return "no"
    return "yes" if any(word in _GO_AHEAD for word in words) else None


class ValidateCentionWithdrawForm(TextSlotForm):
    """Reads the customer's yes or no to withdrawing the errand."""

    text_slots = (WITHDRAW_CONFIRMATION_SLOT,)

    def name(self) -> str:
        return "validate_cention_withdraw_form"

    async def validate_cention_withdraw_confirmation(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:  # emptied when the withdrawal started: not an answer yet
            return {WITHDRAW_CONFIRMATION_SLOT: None}
        answer_ = yes_or_no(value)
        if answer_ is None:
            dispatcher.utter_message(response="utter_cention_withdraw_yes_or_no")
        return {WITHDRAW_CONFIRMATION_SLOT: answer_}


def resolved_message_id(tracker: Tracker, question_id: str) -> str:
    """The same for the same library answer in the same conversation: a repeated "that
    helped" records it once."""
    answered_at = ""
    for event in reversed(tracker.events):
        if event.get("event") == "slot" and event.get("name") == ANSWERED_SLOT:
            answered_at = str(event.get("timestamp", ""))
            break
    digest = hashlib.sha256(
        f"{tracker.sender_id}|{question_id}|{answered_at}".encode()).hexdigest()
    return f"rasa-resolved-{digest[:32]}"


class ActionCentionRecordResolved(IntegrationAction):
    """ "That helped": thank the customer; with `CENTION_RECORD_RESOLVED`, record the library
    answer that helped as an errand created closed (the `answer` object of `c3_new_errands`),
    so the contact centre's reports count what the bot solved. Recording never delays or
    fails the customer's reply: a problem is logged."""

    def name(self) -> str:
        return "action_cention_record_resolved"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        dispatcher.utter_message(response="utter_cention_glad_it_helped")
        question_id = text_slot(tracker, ANSWERED_SLOT)
        if not question_id:
            return []
        options = follow_ups()
        if options.record_resolved:
            if options.closing_user is None:
                logger.warning("cention: CENTION_RECORD_RESOLVED needs CENTION_CLOSING_USER_ID;"
                               " the resolved conversation is not recorded")
            else:
                errand_id = await best_effort(
                    self.record(tracker, str(question_id), options), time_left() or 0.0,
                    "cention resolved conversation")
                if errand_id:
                    logger.info("cention errand %s records a question the library answered "
                                "(conv=%s)", errand_id, conversation_hash(tracker.sender_id),
                                extra=conversation_fields(tracker.sender_id))
        return [SlotSet(ANSWERED_SLOT, None)]

    @staticmethod
    async def record(tracker: Tracker, question_id: str, options: FollowUpOptions) -> str | None:
        question = await cention().question(question_id)
        if question is None or options.closing_user is None:
            return None
        subject = clean_line(question.title or question.question, SUBJECT_MAX_LENGTH) or (
            question.id)
        sender = hashlib.sha256(tracker.sender_id.encode()).hexdigest()[:16]
        return await cention().create_errand(NewErrand(
            message_id=resolved_message_id(tracker, question_id),
            name=clean_name(text_slot(tracker, "customer_name")) or "",
            # Never the customer's address: the doc does not say whether Cention mails the
            # answer of an errand created closed.
            email=f"chat-{sender}@{RECORD_SENDER_DOMAIN}",
            subject=subject,
            body=errand_body(tracker),
            extradata={
                "conversation_id": tracker.sender_id,
                "channel": tracker.get_latest_input_channel(),
                "source": "rasa",
                "resolved_by": "library",
                "library_question_id": question.id,
            },
            answer=ErrandAnswer(options.closing_user, subject=subject, body=question.answer,
                                html_body=question.answer_html),
        ))


class ActionCentionAgentAnswer(Action):
    """Show an agent's answer (brought in by the callback connector) whatever the customer
    is doing: inside a form, the form then resumes and asks its question again.

    The answer arrives as a message with intent `cention_agent_answer` in Rasa's intent
    syntax. No form takes it as an answer (the project's forms fill their slots only from
    what the customer types), so the active form is rejected and this action runs; it hands
    back to the form with a `FollowupAction`, and the form, not called right after a
    customer message, asks its question again without validating anything.

    Only the connector brings real answers. Any channel lets a customer type
    `/cention_agent_answer{"cention_answer_text": ...}`, which Rasa parses as that intent with
    those entities: shown as an agent's answer, it would put words in the support team's
    mouth (and into the transcript an agent reads later). So an answer whose message did not
    come through the connector's channel is not shown: the answer slots are cleared and the
    customer hears `utter_cention_not_an_agent_answer`.
    """

    def name(self) -> str:
        return "action_cention_agent_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        events: EventList = []
        if tracker.get_latest_input_channel() == CALLBACK_CHANNEL:
            dispatcher.utter_message(response="utter_cention_agent_answer")
        else:
            logger.warning("%s: a %s message that did not come through the Cention "
                           "connector was not shown", self.name(), AGENT_ANSWER_INTENT,
                           extra=conversation_fields(tracker.sender_id))
            dispatcher.utter_message(response="utter_cention_not_an_agent_answer")
            events = [SlotSet(slot, None) for slot in ANSWER_SLOTS]
        form = (tracker.active_loop or {}).get("name")
        if isinstance(form, str) and form and form in (domain.get("forms") or {}):
            return [*events, FollowupAction(form)]
        return events


class ValidateCentionErrandForm(ContactSlotValidation, TextSlotForm):
    """Checks the errand form's answers before anything is sent to Cention."""

    text_slots = (NAME_SLOT, EMAIL_SLOT, SUBJECT_SLOT)

    def name(self) -> str:
        return "validate_cention_errand_form"

    async def validate_cention_errand_subject(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return validated_text(
            dispatcher, SUBJECT_SLOT, value, SUBJECT_MAX_LENGTH, SUBJECT_MIN_LENGTH,
            multiline=False,
        )

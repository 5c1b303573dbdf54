"""Loop feedback: a complaint or request from the conversation becomes a Loop ("loop").

`loop_feedback_form` asks what happened (`loop_description`) and, unless the conversation
already has an email address or phone number, how the team can reach the customer (an email
or a mobile number in one answer, or "skip" to stay anonymous). `action_loop_create_loop`
then opens the loop at the configured location with the configured loop type, the optional
`loop_title`, the customer's name/email/phone as far as known, and custom fields taken from
the slots named in `LOOP_CUSTOM_FIELDS` (slot -> custom field shortcode).

With `LOOP_LET_CUSTOMER_CHOOSE_LOCATION` on, the form first asks `loop_location` (see
`location`) and the loop is opened there. Each loop created is recorded in
`loop_created_loops` (its id and the contact it was created with), so that
`action_loop_status` can show this conversation's loops and no one else's.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction
from rasa_service_desk.actions.delivery import ActionSubmissionUpdate, Submission, declare
from rasa_service_desk.actions.forms import TextSlotForm
from rasa_service_desk.actions.loop.location import (
    LOCATION_SLOT,
    LocationChoice,
    chosen_location_id,
    location_by_id,
)
from rasa_service_desk.actions.loop.survey import is_skip, settings
from rasa_service_desk.actions.runtime import client, enable
from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.actions.validation import (
    bool_slot,
    clean_email,
    clean_line,
    clean_name,
    clean_phone,
    clean_text,
    email_or_phone,
    text_slot,
    typed_slot,
    validated_text,
    wrong_type,
)
from rasa_service_desk.clients.errors import RejectedInput
from rasa_service_desk.clients.loop.client import LoopClient, LoopUser
from rasa_service_desk.outbox import Kind

#: Importing this module enables Loop: its settings are read and checked now.
enable("loop")
shared_state()  # checked at start too: submissions are recorded there (exactly once)

DESCRIPTION_SLOT = "loop_description"
TITLE_SLOT = "loop_title"
SKIPPED_SLOT = "loop_contact_skipped"
EMAIL_SLOT = "customer_email"
PHONE_SLOT = "customer_phone"
NAME_SLOT = "customer_name"
CREATED_SLOT = "loop_created_loops"
LOOP_ID_SLOT = "loop_loop_id"
MIN_DESCRIPTION = 3
MAX_TITLE = 200
#: How many created loops a conversation remembers (the most recent ones).
MAX_RECORDED_LOOPS = 20


def custom_field_values(tracker: Tracker, mapping: dict[str, str]) -> dict[str, str]:
    """Custom field shortcode -> value for every mapped slot that has a value: text, or a
    number or yes/no written as text; a list or an object is no field value."""
    values = {}
    for slot, shortcode in mapping.items():
        value = tracker.slots.get(slot)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, (list, dict)):
            wrong_type(slot, value, "text or a number")
            continue
        values[shortcode] = value.strip() if isinstance(value, str) else str(value)
    return values


def recorded_loops(tracker: Tracker) -> list[dict[str, str]]:
    """The loops this conversation created, oldest first: `{"id", "email"?, "sms"?}`.
    Anything else in the slot is ignored."""
    value = typed_slot(tracker, CREATED_SLOT, list, "a list of loops")
    if value is None:
        return []
    records = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            records.append({key: item[key] for key in ("id", "email", "sms")
                            if isinstance(item.get(key), str) and item[key]})
    return records


async def create_loop(payload: dict[str, Any]) -> dict[str, Any]:
    """Open the loop saved in `payload` (at once, or later from the outbox), dated when the
    customer asked for it."""
    user = LoopUser(**payload["user"])
    created = await client("loop", LoopClient).create_loop(
        payload["description"], title=payload.get("title"), user=user,
        custom_fields=payload.get("custom_fields") or {},
        when=datetime.fromtimestamp(payload["asked_at"], timezone.utc),
        location=await location_by_id(payload.get("location_id")),
    )
    return {"id": created.id, "url": created.url}


async def find_loop(payload: dict[str, Any], since: float) -> dict[str, Any] | None:
    """The loop of `payload` if Loop already holds it (after an attempt whose outcome is
    unknown)."""
    user = LoopUser(**payload["user"])
    found = await filed_loop(user, payload["description"], since)
    return found


def confirm_loop(created: dict[str, Any], dispatcher: CollectingDispatcher,
                 tracker: Tracker) -> EventList:
    """Tell the customer their feedback was passed on (at once, or when the outbox opened
    the loop), and remember the loop for "how is my request doing"."""
    dispatcher.utter_message(response="utter_loop_created")
    # The contact from the conversation's slots (the loop was opened with them), so that the
    # outcome recorded in the shared state holds ids only.
    contact = {"email": clean_email(text_slot(tracker, EMAIL_SLOT)),
               "sms": clean_phone(text_slot(tracker, PHONE_SLOT))}
    record = {"id": created["id"], **{key: value for key, value in contact.items() if value}}
    recorded = [*recorded_loops(tracker), record][-MAX_RECORDED_LOOPS:]
    return [
        SlotSet(LOOP_ID_SLOT, created["id"]),
        SlotSet("loop_loop_url", created.get("url")),
        SlotSet(CREATED_SLOT, recorded),
    ]


NEW_LOOP = declare(Submission(
    Kind("loop.create_loop", "loop", create_loop, intent="loop_submission_update",
         reconcile=find_loop),
    confirm_slot=LOOP_ID_SLOT, queued_response="utter_loop_create_queued",
    failed_response="utter_loop_create_not_sent", confirm=confirm_loop))


class ActionLoopCreateLoop(IntegrationAction):
    """Open a loop from the conversation's slots and tell the customer it was passed on;
    with Loop down or busy, it waits in the outbox and is opened when Loop is back."""

    error_responses = {RejectedInput: "utter_loop_create_rejected"}

    def name(self) -> str:
        return "action_loop_create_loop"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        config = settings()
        description = clean_text(text_slot(tracker, DESCRIPTION_SLOT), config.max_text_length,
                                 MIN_DESCRIPTION)
        if description is None:
            dispatcher.utter_message(response="utter_loop_description_missing")
            return []
        user = LoopUser(
            name=clean_name(text_slot(tracker, NAME_SLOT)),
            email=clean_email(text_slot(tracker, EMAIL_SLOT)),
            sms=clean_phone(text_slot(tracker, PHONE_SLOT)),
        )
        title = clean_line(text_slot(tracker, TITLE_SLOT), MAX_TITLE)
        payload = {
            "description": description, "title": title,
            "user": {"name": user.name, "email": user.email, "sms": user.sms},
            "custom_fields": custom_field_values(tracker, config.custom_fields),
            "asked_at": time.time(), "location_id": chosen_location_id(tracker),
        }
        # One loop per piece of feedback, however often it is sent.
        created = await self.file_once(
            dispatcher, tracker, NEW_LOOP, payload,
            {"description": description, "title": title,
             "user": [user.name, user.email, user.sms]})
        done = [SlotSet(DESCRIPTION_SLOT, None), SlotSet(TITLE_SLOT, None)]
        if created is None:
            return done
        return [*confirm_loop(created, dispatcher, tracker), *done]


class ActionLoopSubmissionUpdate(ActionSubmissionUpdate):
    """`action_loop_submission_update`: a queued survey response or loop was sent (or given
    up), announced when the outbox triggers `loop_submission_update`."""

    vendor = "loop"

    def name(self) -> str:
        return "action_loop_submission_update"


#: Loop's clock and ours may differ by this much (seconds) when matching a loop's creation.
CLOCK_SKEW_SECONDS = 120.0


async def filed_loop(user: LoopUser, description: str, since: float) -> dict[str, Any] | None:
    """The loop an uncertain attempt may have created: one of this customer's loops (found
    by their email or mobile, the way Loop links a loop to its guest) with the same text,
    created since the attempt. None when there is none, or no contact to look it up by."""
    loop_client = client("loop", LoopClient)
    for contact in ({"email": user.email}, {"sms": user.sms}):
        if not any(contact.values()):
            continue
        for account in await loop_client.users(**contact):
            for loop in await loop_client.loops_for_customer(account.id):
                created = (loop.created_on or 0) / 1000
                if loop.description == description and created >= since - CLOCK_SKEW_SECONDS:
                    return {"id": loop.id, "url": None}
    return None


class ValidateLoopFeedbackForm(LocationChoice, TextSlotForm):
    """The location when the customer chooses it; the description; then one contact (email
    or mobile) unless known or declined."""

    text_slots = (LOCATION_SLOT, DESCRIPTION_SLOT, EMAIL_SLOT)

    def name(self) -> str:
        return "validate_loop_feedback_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # Known = already in its clean form: a contact the customer has just typed is in the
        # slot unvalidated (e.g. a phone number in `customer_email`), so it is still asked
        # for, which makes the SDK run `validate_customer_email` on it.
        # An answer extracted in this very turn is not known yet either: it must stay in the
        # list to be validated (and kept).
        email = text_slot(tracker, EMAIL_SLOT)
        just_answered = EMAIL_SLOT in tracker.slots_to_validate()
        known = (email is not None and clean_email(email) == email and not just_answered) or (
            clean_phone(text_slot(tracker, PHONE_SLOT)) is not None)
        slots = await self.location_slots(domain_slots, tracker)
        if known or bool_slot(tracker, SKIPPED_SLOT):
            return [slot for slot in slots if slot != EMAIL_SLOT]
        return slots

    async def validate_loop_description(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        return validated_text(dispatcher, DESCRIPTION_SLOT, slot_value,
                              settings().max_text_length, MIN_DESCRIPTION)

    async def validate_customer_email(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        """An email address or a mobile number in answer to the one contact question."""
        contact = email_or_phone(slot_value)
        if contact is not None:
            return contact
        if is_skip(slot_value):
            return {EMAIL_SLOT: None, SKIPPED_SLOT: True}
        dispatcher.utter_message(response="utter_loop_invalid_contact")
        return {EMAIL_SLOT: None}

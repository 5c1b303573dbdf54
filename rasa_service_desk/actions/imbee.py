"""Imbee: the customer asks for a live chat and gets an access link to an agent's chat.

`imbee_chat_form` asks one question, "your email address or mobile number?", and
`validate_imbee_chat_form` files the answer under the shared `customer_email` or
`customer_phone` slot (phone numbers in E.164). A contact the customer already gave in
another form is reused and the form asks nothing. `action_imbee_open_chat` then opens the
chat (see `clients.imbee.client`) and tells the customer the link, until when it works and how
many times it can be used. Asking again in the same conversation gives the same chat and link.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction
from rasa_service_desk.actions.forms import TextSlotForm
from rasa_service_desk.actions.runtime import client, enable, integration
from rasa_service_desk.actions.validation import (
    clean_email,
    clean_phone,
    email_or_phone,
    text_slot,
)
from rasa_service_desk.clients.errors import RejectedInput
from rasa_service_desk.clients.imbee.client import ImbeeClient
from rasa_service_desk.clients.imbee.settings import ImbeeSettings

#: Importing this module enables Imbee: its settings are read and checked now.
enable("imbee")

EMAIL_SLOT = "customer_email"
PHONE_SLOT = "customer_phone"


def _phone_region() -> str | None:
    settings: ImbeeSettings = integration("imbee").settings
    return settings.phone_region


class ActionImbeeOpenChat(IntegrationAction):
    """Open (or find again) the conversation's Imbee chat and give the customer its link."""

    error_responses = {RejectedInput: "utter_imbee_chat_rejected"}

    def name(self) -> str:
        return "action_imbee_open_chat"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        email = clean_email(text_slot(tracker, EMAIL_SLOT))
        phone = clean_phone(text_slot(tracker, PHONE_SLOT), _phone_region())
        if not email and not phone:
            dispatcher.utter_message(response="utter_imbee_contact_missing")
            return []
        imbee = client("imbee", ImbeeClient)
        access = await imbee.open_chat(tracker.sender_id, email=email, phone=phone)
        valid_until = access.valid_until.isoformat()
        dispatcher.utter_message(
            response="utter_imbee_chat_reused" if access.reused else "utter_imbee_chat_opened",
            url=access.url, valid_until=valid_until, uses=access.uses,
        )
        return [
            SlotSet("imbee_chat_url", access.url),
            SlotSet("imbee_conversation_id", access.conversation_id),
            SlotSet("imbee_link_valid_until", valid_until),
            SlotSet("imbee_link_uses", access.uses),
        ]


class ValidateImbeeChatForm(TextSlotForm):
    """One answer, email or mobile number; either one is enough to send the link."""

    text_slots = (EMAIL_SLOT,)

    def name(self) -> str:
        return "validate_imbee_chat_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        """Stop asking once a phone number is known.

        A known email fills the form's own slot, so Rasa ends the form by itself; a phone
        number needs the form stopped here. An answer being validated sits in the email slot,
        so it keeps the slot in the list and gets validated.
        """
        if text_slot(tracker, PHONE_SLOT) and not text_slot(tracker, EMAIL_SLOT):
            return []
        return domain_slots

    async def validate_customer_email(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        """Accept an email address or a mobile number typed in answer to the one question."""
        contact = email_or_phone(slot_value, _phone_region())
        if contact is not None:
            return contact
        text = slot_value if isinstance(slot_value, str) else ""
        if "@" in text:
            dispatcher.utter_message(response="utter_invalid_email")
        elif sum(ch.isdigit() for ch in text) >= 3:
            dispatcher.utter_message(response="utter_invalid_phone")
        else:
            dispatcher.utter_message(response="utter_imbee_invalid_contact")
        return {EMAIL_SLOT: None}

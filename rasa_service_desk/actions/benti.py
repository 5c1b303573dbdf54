"""Benti tickets from the conversation: the ticket form's validator and the action that
opens the ticket with the conversation transcript (and the customer's shared files) attached.
"""

from __future__ import annotations

import asyncio
import html
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction
from rasa_service_desk.actions.forms import TextSlotForm
from rasa_service_desk.actions.runtime import client, enable
from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.actions.transcript import shared_files, transcript_text
from rasa_service_desk.actions.validation import (
    EMAIL_SLOT,
    NAME_SLOT,
    ContactSlotValidation,
    text_slot,
    validated_text,
)
from rasa_service_desk.clients.benti import Attachment, BentiClient, NewTicket
from rasa_service_desk.clients.errors import ConfigurationError, IntegrationError, RejectedInput
from rasa_service_desk.clients.shared_files import SharedFileFetcher, SharedFileSettings

logger = logging.getLogger(__name__)

#: Importing this module enables Benti: its settings are read and checked now.
enable("benti")
shared_state()  # checked at start too: submissions are recorded there (exactly once)


def _shared_file_settings() -> SharedFileSettings:
    """`SHARED_FILE_*`, checked at start like the integration's own settings."""
    try:
        settings = SharedFileSettings.load()
    except ConfigurationError as exc:
        print(f"\nThe action server cannot start (shared files): {exc.message}\n",
              file=sys.stderr)
        raise SystemExit(2) from None
    if settings.allow_private_networks:
        logger.warning("SHARED_FILE_ALLOW_PRIVATE_NETWORKS=1: shared files may be fetched "
                       "from loopback and private addresses (tests and development only)")
    return settings


SHARED_FILES = _shared_file_settings()

FORM = "benti_ticket_form"
TITLE_SLOT = "benti_ticket_title"
DESCRIPTION_SLOT = "benti_ticket_description"
TICKET_ID_SLOT = "benti_ticket_id"
TITLE_MAX = 120
DESCRIPTION_MAX = 5000


def benti() -> BentiClient:
    """The process's Benti client (shared token, shared discovery)."""
    return client("benti", BentiClient)


def message_html(description: str) -> str:
    """The ticket body: Benti renders messages as HTML, so the customer's text is escaped
    (nothing they type can inject markup into the agent's screen) and keeps its lines."""
    return html.escape(description).replace("\n", "<br>\n")


def transcript_attachment(tracker: Tracker, limit: int) -> Attachment:
    """The conversation as a UTF-8 text file; if it is ever over the size limit, its most
    recent part is kept (that is where the reason for the ticket is)."""
    content = transcript_text(tracker).encode("utf-8")
    if len(content) > limit:
        content = content[-limit:].decode("utf-8", errors="ignore").encode("utf-8")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Attachment(name=f"conversation-{stamp}.txt", content=content)


async def shared_attachments(benti_client: BentiClient, tracker: Tracker) -> list[Attachment]:
    """Files the customer shared, downloaded concurrently from the hosts the operator allows
    (`SHARED_FILE_HOSTS`; see `clients.shared_files`). A file that is refused, too big or
    cannot be fetched is left out (with a log line) rather than failing the whole ticket."""
    files = shared_files(tracker)[:benti_client.settings.max_shared_files]
    if not files:
        return []
    fetcher = SharedFileFetcher(SHARED_FILES,
                                max_bytes=benti_client.settings.max_attachment_bytes,
                                timeout=benti_client.settings.timeout_seconds)
    if not fetcher.enabled:
        logger.info("benti: %d shared file(s) not attached: SHARED_FILE_HOSTS is empty, so "
                    "shared files are not fetched", len(files))
        return []

    async def fetch(position: int, item: dict[str, str]) -> Attachment | None:
        try:
            return Attachment(item["name"], await fetcher.fetch(item["url"]))
        except IntegrationError as exc:
            logger.warning("benti: shared file %d of %d not attached: %s",
                        position, len(files), exc.message)
            return None

    fetched = await asyncio.gather(*(fetch(i, f) for i, f in enumerate(files, start=1)))
    return [a for a in fetched if a is not None]


class ActionBentiCreateTicket(IntegrationAction):
    """Open a Benti ticket from the form's slots; on success set `benti_ticket_id`."""

    error_responses = {RejectedInput: "utter_benti_ticket_rejected"}

    def name(self) -> str:
        return "action_benti_create_ticket"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        name = text_slot(tracker, "customer_name")
        email = text_slot(tracker, "customer_email")
        title = text_slot(tracker, TITLE_SLOT)
        description = text_slot(tracker, DESCRIPTION_SLOT)
        if not (name and name.strip() and email and email.strip() and title and title.strip()
                and description and description.strip()):
            dispatcher.utter_message(response="utter_benti_ticket_incomplete")
            return []
        benti_client = benti()

        async def file_ticket() -> dict[str, str]:
            attachments = [
                transcript_attachment(tracker, benti_client.settings.max_attachment_bytes),
                *await shared_attachments(benti_client, tracker),
            ]
            ticket = await benti_client.create_ticket(NewTicket(
                title=title, message=message_html(description), customer_name=name,
                customer_email=email, attachments=attachments,
            ))
            return {"id": ticket.id, "reference": ticket.reference}

        # The same ticket asked for twice (a double click, a repeat) is filed once.
        ticket = await self.file_once(
            tracker, {"name": name, "email": email, "title": title, "description": description},
            file_ticket, confirm_slot=TICKET_ID_SLOT)
        dispatcher.utter_message(response="utter_benti_ticket_created",
                                 reference=ticket["reference"])
        # The ticket is filed: forget its title and text so a second ticket asks anew
        # (the customer's name and email are kept).
        return [SlotSet(TICKET_ID_SLOT, ticket["id"]), SlotSet(TITLE_SLOT, None),
                SlotSet(DESCRIPTION_SLOT, None)]


class ValidateBentiTicketForm(ContactSlotValidation, TextSlotForm):
    """Ask again for any answer Benti or an agent could not use."""

    text_slots = (NAME_SLOT, EMAIL_SLOT, TITLE_SLOT, DESCRIPTION_SLOT)

    def name(self) -> str:
        return "validate_benti_ticket_form"

    async def validate_benti_ticket_title(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return validated_text(dispatcher, TITLE_SLOT, value, TITLE_MAX, multiline=False)

    async def validate_benti_ticket_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return validated_text(dispatcher, DESCRIPTION_SLOT, value, DESCRIPTION_MAX)

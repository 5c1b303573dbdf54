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
from rasa_service_desk.actions.delivery import ActionSubmissionUpdate, Submission, declare
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
from rasa_service_desk.outbox import Kind

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


def transcript_attachment(transcript: str, limit: int, name: str | None = None) -> Attachment:
    """The conversation as a UTF-8 text file; if it is ever over the size limit, its most
    recent part is kept (that is where the reason for the ticket is)."""
    content = transcript.encode("utf-8")
    if len(content) > limit:
        content = content[-limit:].decode("utf-8", errors="ignore").encode("utf-8")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Attachment(name=name or f"conversation-{stamp}.txt", content=content)


async def shared_attachments(benti_client: BentiClient,
                             shared: list[dict[str, str]]) -> list[Attachment]:
    """Files the customer shared, downloaded concurrently from the hosts the operator allows
    (`SHARED_FILE_HOSTS`; see `clients.shared_files`). A file that is refused, too big or
    cannot be fetched is left out (with a log line) rather than failing the whole ticket."""
    files = shared[:benti_client.settings.max_shared_files]
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


async def file_ticket(payload: dict[str, Any]) -> dict[str, str]:
    """Open the ticket saved in `payload` (at once, or later from the outbox); the shared
    files are downloaded now."""
    benti_client = benti()
    limit = benti_client.settings.max_attachment_bytes
    attachments = [
        transcript_attachment(payload["transcript"], limit, payload.get("transcript_name")),
        *await shared_attachments(benti_client, list(payload.get("shared_files") or [])),
    ]
    ticket = await benti_client.create_ticket(NewTicket(
        title=payload["title"], message=message_html(payload["description"]),
        customer_name=payload["name"], customer_email=payload["email"],
        attachments=attachments,
    ))
    return {"id": ticket.id, "reference": ticket.reference}


def confirm_ticket(ticket: dict[str, Any], dispatcher: CollectingDispatcher,
                   tracker: Tracker) -> EventList:
    """Tell the customer the ticket's reference (at once, or when the outbox filed it)."""
    dispatcher.utter_message(response="utter_benti_ticket_created",
                             reference=ticket.get("reference"))
    return [SlotSet(TICKET_ID_SLOT, ticket.get("id"))]


TICKET = declare(Submission(
    Kind("benti.create_ticket", "benti", file_ticket, intent="benti_submission_update"),
    confirm_slot=TICKET_ID_SLOT, queued_response="utter_benti_ticket_queued",
    failed_response="utter_benti_ticket_not_filed", confirm=confirm_ticket))


class ActionBentiCreateTicket(IntegrationAction):
    """Open a Benti ticket from the form's slots; on success set `benti_ticket_id`. With
    Benti down, the ticket waits in the outbox and the customer hears it will be filed."""

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
        identity = {"name": name, "email": email, "title": title, "description": description}
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        payload = {**identity, "transcript": transcript_text(tracker),
                   "transcript_name": f"conversation-{stamp}.txt",
                   "shared_files": shared_files(tracker)}
        # The same ticket asked for twice (a double click, a repeat) is filed once.
        ticket = await self.file_once(dispatcher, tracker, TICKET, payload, identity)
        # Filed or queued: forget its title and text so a second ticket asks anew (the
        # customer's name and email are kept).
        done = [SlotSet(TITLE_SLOT, None), SlotSet(DESCRIPTION_SLOT, None)]
        if ticket is None:
            return done
        return [*confirm_ticket(ticket, dispatcher, tracker), *done]


class ActionBentiSubmissionUpdate(ActionSubmissionUpdate):
    """`action_benti_submission_update`: a queued ticket was filed (its reference) or given
    up, announced when the outbox triggers `benti_submission_update`."""

    vendor = "benti"

    def name(self) -> str:
        return "action_benti_submission_update"


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

"""A customer opens a Benti ticket through the real bot; the ticket carries the transcript.
Then Benti fails as the ticket is filed: by default the ticket waits in the outbox and is
filed when Benti is back; without the outbox (`OUTBOX_ENABLED=0`), "try again" files it
without retyping."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.bot import Conversation, RasaServer, is_response, slot_value
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e



def ticket_posts(sandbox: Sandbox) -> int:
    """How many times the simulator was asked to create a ticket."""
    return sum(n for route, n in sandbox.calls("benti").items()
               if route.startswith("POST") and route.endswith("/ticketing/v1/tickets"))


def ticket(sandbox: Sandbox, reference: str) -> dict[str, Any]:
    """The ticket the simulator stored under `reference`, with its attachments' previews."""
    state = sandbox.state("benti")
    [found] = [t for t in state["tickets"] if str(t["id"]) == reference]
    media = {m["id"]: m for m in state["media"]}
    return {**found, "files": [media[a] for a in found["attachments"]]}


def fill_ticket_form(chat: Conversation, title: str, description: str) -> list[str]:
    chat.expect("I'd like to open a support ticket", "utter_ask_benti_ticket_form_customer_name")
    chat.expect("Ada Lovelace", "utter_ask_benti_ticket_form_customer_email")
    chat.expect("ada at example dot com", "utter_invalid_email",
                "utter_ask_benti_ticket_form_customer_email")
    chat.expect("ada@example.com", "utter_ask_benti_ticket_title")
    chat.expect(title, "utter_ask_benti_ticket_description")
    return chat.say(description)


def test_ticket_is_opened_with_the_conversation_attached(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    chat.expect("hello", "utter_greet")
    replies = fill_ticket_form(chat, "Printer offline",
                               "The office printer shows error E42 since this morning.")
    assert len(replies) == 1
    reference = slot_value(replies[0], "utter_benti_ticket_created", "reference")

    stored = ticket(sandbox, reference)
    assert stored["title"] == "Printer offline"
    assert "error E42" in stored["message"]
    [transcript] = stored["files"]
    assert transcript["used"]
    assert "Customer: I'd like to open a support ticket" in transcript["preview"]
    assert "Customer: The office printer shows error E42" in transcript["preview"]
    assert "Bot: In a few words" in transcript["preview"]
    users = [u for u in sandbox.state("benti")["users"] if u["id"] == stored["creator"]]
    assert users and "ada@example.com" in str(users[0])

    slots = chat.slots()
    assert slots["benti_ticket_id"]
    assert slots["customer_email"] == "ada@example.com"
    assert slots["benti_ticket_title"] is None  # a second ticket asks anew
    chat.expect("thanks", "utter_you_are_welcome")


def test_a_ticket_during_a_benti_outage_is_queued_and_filed_later(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    title = f"Invoice late {chat.sender[-6:]}"
    sandbox.inject("benti", {"status": 503, "path": "/tickets", "method": "POST"})
    chat.expect("hello", "utter_greet")
    replies = fill_ticket_form(chat, title, "My April invoice never arrived.")
    assert len(replies) == 1 and is_response(replies[0], "utter_benti_ticket_queued"), replies
    slots = chat.slots()
    assert slots["pending_action"] is None  # nothing for the customer to try again
    assert slots["benti_ticket_title"] is None and slots["benti_ticket_description"] is None

    deadline = time.monotonic() + 30
    filed: list[dict[str, Any]] = []
    while not filed and time.monotonic() < deadline:
        filed = [t for t in sandbox.state("benti")["tickets"] if t["title"] == title]
        time.sleep(0.2)
    assert len(filed) == 1
    assert "April invoice" in filed[0]["message"]


def test_customer_retries_after_benti_fails_without_retyping(
    without_outbox: RasaServer, sandbox: Sandbox
) -> None:
    chat = without_outbox.conversation()
    before = len(sandbox.state("benti")["tickets"])
    # A 503 may come from a gateway after the ticket was filed: the client never repeats it.
    attempts = 1
    sandbox.inject("benti", {"status": 503, "path": "/tickets", "method": "POST"})
    calls_before = ticket_posts(sandbox)
    chat.expect("hello", "utter_greet")
    replies = fill_ticket_form(chat, "Invoice missing", "I did not get my March invoice.")
    assert len(replies) == 1 and is_response(replies[0], "utter_vendor_unavailable"), replies
    assert len(sandbox.state("benti")["tickets"]) == before
    assert ticket_posts(sandbox) == calls_before + attempts
    slots = chat.slots()
    assert slots["pending_action"] == "action_benti_create_ticket"
    assert slots["benti_ticket_title"] == "Invoice missing"

    _, created = chat.expect("try again", "utter_retrying", "utter_benti_ticket_created")
    stored = ticket(sandbox, slot_value(created, "utter_benti_ticket_created", "reference"))
    assert stored["title"] == "Invoice missing"
    assert "March invoice" in stored["message"]
    assert chat.slots()["pending_action"] is None
    chat.expect("try again", "utter_nothing_to_retry")

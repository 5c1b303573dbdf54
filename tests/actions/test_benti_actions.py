"""Benti tickets through the real action server (`python -m rasa_sdk`) over HTTP, against the
Benti simulator in another process: what the customer is told, which slots change, what
lands in Benti, and what the operator's log shows."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rasa_sdk import Tracker

from rasa_service_desk.actions.benti import message_html, transcript_attachment
from rasa_service_desk.clients.benti.settings import SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.support.rasa_payloads import (
    bot_event,
    responses,
    slot_events,
    user_event,
    webhook_payload,
)
from tests.support.servers import ActionServer, Sandbox, running_action_server

MIB = 1024 * 1024
CREATE = "action_benti_create_ticket"
VALIDATE = "validate_benti_ticket_form"
FORM = "benti_ticket_form"
SLOTS = {
    "customer_name": "Ada Lovelace",
    "customer_email": "ada.lovelace@example.com",
    "benti_ticket_title": "Printer on fire",
    "benti_ticket_description": "It smokes <b>every</b> time\nI print.",
}
PENDING_ONLY = {"pending_action": CREATE}


class FileHandler(BaseHTTPRequestHandler):
    """Files a customer might share: a small PDF, one too big for Benti, a dead link."""

    def do_GET(self) -> None:
        sizes = {"/receipt.pdf": 2048, "/video.mp4": 8 * MIB}
        size = sizes.get(self.path)
        if size is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        # the client stops reading once it sees the size: a broken pipe is expected
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(b"%" * size)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def file_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FileHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def impatient_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """An action server that gives Benti one second and two attempts (failure tests)."""
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
           "BENTI_TIMEOUT_SECONDS": "1", "BENTI_RETRY_ATTEMPTS": "2"}
    with running_action_server(env) as server:
        yield server


def conversation(metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        user_event("I need to open a ticket", "open_ticket"),
        bot_event("I'll open a support ticket for you. What's your name?"),
        user_event("Ada Lovelace", metadata=metadata),
        bot_event("In a few words, what is the ticket about?"),
        user_event("Printer on fire"),
    ]


def ticket_payload(metadata: dict[str, Any] | None = None,
                   **slots: Any) -> dict[str, Any]:
    return webhook_payload(CREATE, slots={**SLOTS, **slots},
                           events=conversation(metadata), text="It smokes every time I print.")


def count(calls: dict[str, int], method: str, path: str) -> int:
    return sum(n for key, n in calls.items()
               if key.startswith(f"{method} ") and key.endswith(path))


def test_benti_actions_are_served(action_server: ActionServer) -> None:
    assert {CREATE, VALIDATE} <= set(action_server.actions())


def test_ticket_with_transcript_and_shared_file_lands_in_benti(
    sandbox: Sandbox, action_server: ActionServer, file_host: str,
) -> None:
    sandbox.reset("benti")
    shared = {"attachments": [{"url": f"{file_host}/receipt.pdf", "name": "receipt.pdf"},
                              f"{file_host}/video.mp4", f"{file_host}/gone.png"]}

    reply = action_server.run(ticket_payload(metadata=shared))

    state = sandbox.state("benti")
    [ticket] = state["tickets"]
    assert responses(reply) == ["utter_benti_ticket_created"]
    assert reply["responses"][0]["reference"] == str(ticket["id"])
    assert slot_events(reply) == {"benti_ticket_id": ticket["full_uuid"],
                                  "benti_ticket_title": None,
                                  "benti_ticket_description": None}
    assert ticket["title"] == "Printer on fire"
    assert ticket["message"] == "It smokes &lt;b&gt;every&lt;/b&gt; time<br>\nI print."
    [user] = state["users"]
    assert (user["name"], user["address"]) == ("Ada Lovelace", "ada.lovelace@example.com")
    assert ticket["creator"] == user["id"]

    media = {m["id"]: m for m in state["media"]}
    attached = [media[i] for i in ticket["attachments"]]
    assert sorted(m["name"].rsplit(".", 1)[-1] for m in attached) == ["pdf", "txt"]
    transcript = next(m for m in attached if m["name"].endswith(".txt"))
    assert "Customer: I need to open a ticket" in transcript["preview"]
    assert "Bot: I'll open a support ticket for you. What's your name?" in transcript["preview"]
    assert "Customer: It smokes every time I print." in transcript["preview"]
    receipt = next(m for m in attached if m["name"] == "receipt.pdf")
    assert receipt["size"] == 2048

    log = action_server.process.output()
    assert "shared file 2 of 3 not attached" in log
    assert "shared file 3 of 3 not attached" in log
    assert "ada.lovelace@example.com" not in log


def test_missing_slots_are_reported_not_sent(
    sandbox: Sandbox, action_server: ActionServer,
) -> None:
    sandbox.reset("benti")
    reply = action_server.run(ticket_payload(benti_ticket_description=None))
    assert responses(reply) == ["utter_benti_ticket_incomplete"]
    assert reply["events"] == []
    assert sandbox.state("benti")["tickets"] == []


EXPIRED = {"Message": "Unauthorized: the access token has expired"}


@pytest.mark.parametrize(("fault", "response"), [
    ({"delay": 2.5}, "utter_vendor_unavailable"),
    ({"status": 500}, "utter_vendor_unavailable"),
    ({"status": 503, "times": 2}, "utter_vendor_unavailable"),
    ({"status": 429, "times": 2}, "utter_vendor_busy"),
    ({"malformed": True}, "utter_vendor_unavailable"),
    ({"status": 422, "body": {"error": {"code": 422, "message": "creator does not exist"}}},
     "utter_benti_ticket_rejected"),
    ({"status": 403, "body": {"Message": "Invalid API key"}}, "utter_integration_unavailable"),
    ({"status": 401, "body": EXPIRED, "times": 2}, "utter_integration_unavailable"),
], ids=["timeout", "500", "503", "429", "malformed", "rejected", "forbidden", "expired-twice"])
def test_vendor_failure_is_explained_keeps_the_slots_and_try_again_works(
    sandbox: Sandbox, impatient_server: ActionServer, fault: dict[str, Any], response: str,
) -> None:
    sandbox.reset("benti")
    sandbox.inject("benti", {**fault, "path": "/ticketing/v1/tickets"})

    failed = impatient_server.run(ticket_payload())

    assert responses(failed) == [response]
    assert slot_events(failed) == PENDING_ONLY  # every answer the customer gave is kept

    retried = impatient_server.run(ticket_payload(pending_action=CREATE))
    assert responses(retried) == ["utter_benti_ticket_created"]
    assert slot_events(retried)["pending_action"] is None
    assert "benti_ticket_id" in slot_events(retried)


def test_expired_token_is_renewed_without_the_customer_noticing(
    sandbox: Sandbox, impatient_server: ActionServer,
) -> None:
    impatient_server.run(ticket_payload())
    sandbox.reset("benti")
    impatient_server.run(ticket_payload())  # authenticates again: the sandbox forgot tokens
    sandbox.expire_tokens("benti")

    reply = impatient_server.run(ticket_payload())

    assert responses(reply) == ["utter_benti_ticket_created"]
    assert count(sandbox.calls("benti"), "POST", "/v1/auth") == 2


def test_twenty_concurrent_tickets_from_cold_start_one_auth_and_clean_log(
    sandbox: Sandbox,
) -> None:
    """A real deployment's configuration (credentials in the environment, SANDBOX=0)."""
    env = {"SANDBOX": "0", "SANDBOX_URL": sandbox.url,
           "BENTI_API_KEY": SANDBOX_API_KEY, "BENTI_API_SECRET": SANDBOX_API_SECRET,
           "BENTI_AUTH_URL": f"{sandbox.url}/benti"}
    sandbox.reset("benti")
    sandbox.latency("benti", 0.2)  # the first authentication is still running when all arrive
    try:
        with running_action_server(env) as server:
            payloads = [ticket_payload(customer_email=f"customer{n}@example.com")
                        for n in range(20)]
            with ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(server.run, payloads))
            log = server.process.output()
    finally:
        sandbox.latency("benti", 0.0)

    assert [responses(r) for r in replies] == [["utter_benti_ticket_created"]] * 20
    calls = sandbox.calls("benti")
    assert count(calls, "POST", "/v1/auth") == 1
    assert count(calls, "GET", "/v1/apis") == 0
    assert count(calls, "POST", "/ticketing/v1/tickets") == 20
    assert len(sandbox.state("benti")["tickets"]) == 20
    assert "benti: enabled, using the vendor API" in log  # really the non-sandbox path
    for secret in (SANDBOX_API_SECRET, SANDBOX_API_KEY, "Bearer ", "@example.com"):
        assert secret not in log


@pytest.mark.parametrize(("slot", "value", "expected", "response"), [
    ("customer_email", "ada at example", None, "utter_invalid_email"),
    ("customer_email", " Ada@Example.com ", "Ada@example.com", None),
    ("customer_name", "12345", None, "utter_invalid_name"),
    ("customer_name", "Ada Lovelace", "Ada Lovelace", None),
    ("benti_ticket_title", "x" * 121, None, "utter_invalid_text"),
    ("benti_ticket_title", "  Printer   on fire ", "Printer on fire", None),
    ("benti_ticket_description", "   ", None, "utter_invalid_text"),
    ("benti_ticket_description", "y" * 5001, None, "utter_invalid_text"),
    ("benti_ticket_description", "It smokes.\nEvery time.", "It smokes.\nEvery time.", None),
])
def test_form_answers_are_validated(
    action_server: ActionServer, slot: str, value: str, expected: str | None,
    response: str | None,
) -> None:
    payload = webhook_payload(VALIDATE, slots={slot: value}, text=value,
                              active_loop=FORM, requested_slot=slot)
    payload["tracker"]["events"].append(
        {"event": "slot", "timestamp": time.time(), "name": slot, "value": value})

    reply = action_server.run(payload)

    assert slot_events(reply)[slot] == expected
    assert responses(reply) == ([response] if response else [])
    if response == "utter_invalid_text":
        limit = 120 if slot == "benti_ticket_title" else 5000
        assert reply["responses"][0]["max_length"] == limit


def test_long_transcript_keeps_its_most_recent_part() -> None:
    events = [user_event(f"message number {n} " + "é" * 50) for n in range(200)]
    tracker = Tracker.from_dict(webhook_payload(CREATE, events=events)["tracker"])

    attachment = transcript_attachment(tracker, limit=2000)

    text = attachment.content.decode("utf-8")  # never cut inside a character
    assert len(attachment.content) <= 2000
    assert "message number 199" in text and "message number 0 " not in text
    assert attachment.name.startswith("conversation-") and attachment.name.endswith(".txt")


def test_description_cannot_inject_markup_into_the_agent_screen() -> None:
    assert message_html('<script>alert("x")</script>\nline two') == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>\nline two")

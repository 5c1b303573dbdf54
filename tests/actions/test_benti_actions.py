"""Benti tickets through the real action server (`python -m rasa_sdk`) over HTTP, against the
Benti simulator in another process: what the customer is told, which slots change, what
lands in Benti, what the operator's log shows, and what the action server fetches (only
shared files from the hosts the operator allows, never an internal service)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

import pytest
from rasa_sdk import Tracker

from rasa_service_desk.actions.benti import message_html, transcript_attachment
from rasa_service_desk.actions.transcript import transcript_text
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
    """Files a customer might share: a small PDF behind a signed URL, one too big for Benti,
    a dead link, and a redirect to wherever `?to=` says."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", unquote(query.removeprefix("to=")))
            self.end_headers()
            return
        sizes = {"/u/Receipt%20March.pdf": 2048, "/video.mp4": 8 * MIB}
        size = sizes.get(path)
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


class InternalHandler(BaseHTTPRequestHandler):
    """A service inside the network that must never be reached through a shared file."""

    hits: list[str] = []

    def do_GET(self) -> None:
        InternalHandler.hits.append(self.path)
        body = b'{"aws_secret_access_key": "internal-only"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def file_host() -> Iterator[str]:
    yield from serve(FileHandler)


@pytest.fixture(scope="module")
def internal() -> Iterator[str]:
    yield from serve(InternalHandler)


@pytest.fixture
def internal_hits(internal: str) -> list[str]:
    InternalHandler.hits.clear()
    return InternalHandler.hits


@pytest.fixture(scope="module")
def sharing_server(sandbox: Sandbox, file_host: str) -> Iterator[ActionServer]:
    """An action server whose operator allows the test file host (over http, on loopback:
    `SHARED_FILE_ALLOW_PRIVATE_NETWORKS=1` is for tests and development only)."""
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "SHARED_FILE_HOSTS": file_host,
           "SHARED_FILE_ALLOW_PRIVATE_NETWORKS": "1"}
    with running_action_server(env) as server:
        yield server


IMPATIENT = {"BENTI_TIMEOUT_SECONDS": "1", "BENTI_RETRY_ATTEMPTS": "2"}


@pytest.fixture(scope="module")
def impatient_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """An action server that gives Benti one second and two attempts (failure tests), with
    the outbox on (the default) looking for due tickets every 0.2 s and waiting at most 1 s
    between two attempts."""
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, **IMPATIENT,
           "OUTBOX_POLL_SECONDS": "0.2", "OUTBOX_MAX_BACKOFF_SECONDS": "1"}
    with running_action_server(env) as server:
        yield server


@pytest.fixture(scope="module")
def try_again_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """The impatient action server without the outbox (`OUTBOX_ENABLED=0`, still supported):
    a vendor outage is told to the customer, who says "try again"."""
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, **IMPATIENT, "OUTBOX_ENABLED": "0"}
    with running_action_server(env) as server:
        yield server


def wait_for_tickets(sandbox: Sandbox, title: str, timeout: float = 20.0) -> list[Any]:
    """The simulator's tickets titled `title`, once there is one (the outbox files it)."""
    deadline = time.monotonic() + timeout
    while True:
        tickets = [t for t in sandbox.state("benti")["tickets"] if t["title"] == title]
        if tickets or time.monotonic() > deadline:
            return tickets
        time.sleep(0.1)


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
    sandbox: Sandbox, sharing_server: ActionServer, file_host: str, internal: str,
    internal_hits: list[str],
) -> None:
    sandbox.reset("benti")
    signed = f"{file_host}/u/Receipt%20March.pdf?X-Amz-Signature=5ec2e7&X-Amz-Credential=AKIA"
    shared = {"attachments": [
        signed,  # a signed URL: the name comes from the path, never from the signature
        f"{file_host}/video.mp4",  # over Benti's limit
        f"{file_host}/gone.png",  # a dead link
        f"{internal}/latest/meta-data/",  # same address, other port: not on the list
        f"{file_host}/redirect?to={quote(internal + '/admin', safe='')}",  # off the list
    ]}

    reply = sharing_server.run(ticket_payload(metadata=shared))

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
    receipt = next(m for m in attached if m["name"].endswith(".pdf"))
    assert (receipt["name"], receipt["size"]) == ("Receipt March.pdf", 2048)
    assert internal_hits == []

    log = sharing_server.process.output()
    for position in range(2, 6):
        assert f"shared file {position} of 5 not attached" in log
    assert "not allowed by SHARED_FILE_HOSTS" in log
    assert "ada.lovelace@example.com" not in log
    assert "5ec2e7" not in log  # the signature of the signed URL


def test_an_internal_url_in_the_metadata_is_never_fetched(
    sandbox: Sandbox, action_server: ActionServer, internal: str, internal_hits: list[str],
) -> None:
    """Server-side request forgery through a REST-channel message: the default configuration
    (no SHARED_FILE_HOSTS) fetches no shared file at all."""
    sandbox.reset("benti")
    shared = {"attachments": [f"{internal}/latest/meta-data/iam/security-credentials/",
                              {"url": f"{internal}/admin", "name": "invoice.pdf"}]}

    reply = action_server.run(ticket_payload(metadata=shared))

    assert responses(reply) == ["utter_benti_ticket_created"]
    [ticket] = sandbox.state("benti")["tickets"]
    [transcript] = [m for m in sandbox.state("benti")["media"] if m["id"] in ticket["attachments"]]
    assert transcript["name"].startswith("conversation-")
    assert "internal-only" not in transcript["preview"]
    assert internal_hits == []
    assert "2 shared file(s) not attached: SHARED_FILE_HOSTS is empty" in \
        action_server.process.output()


def test_an_allowed_name_pointing_inside_the_network_is_refused(
    sandbox: Sandbox, internal: str, internal_hits: list[str],
) -> None:
    """The operator allows a host by name; DNS says it is 127.0.0.1: still refused, because
    the addresses are checked after resolution (private networks are not allowed here)."""
    port = internal.rsplit(":", 1)[1]
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "SHARED_FILE_HOSTS": "http://localhost"}
    sandbox.reset("benti")
    with running_action_server(env) as server:
        reply = server.run(ticket_payload(metadata={
            "attachments": [f"http://localhost:{port}/admin"]}))
        log = server.process.output()

    assert responses(reply) == ["utter_benti_ticket_created"]
    assert internal_hits == []
    assert "localhost resolves to a loopback or private address" in log


def test_missing_slots_are_reported_not_sent(
    sandbox: Sandbox, action_server: ActionServer,
) -> None:
    sandbox.reset("benti")
    reply = action_server.run(ticket_payload(benti_ticket_description=None))
    assert responses(reply) == ["utter_benti_ticket_incomplete"]
    assert reply["events"] == []
    assert sandbox.state("benti")["tickets"] == []


#: Inbenta's documented gateway answer for a wrong key or an expired or revoked token.
EXPLICIT_DENY = {"Message": "User is not authorized to access this resource with an explicit deny"}


@pytest.mark.parametrize(("fault", "response"), [
    ({"delay": 2.5}, "utter_vendor_unavailable"),
    ({"status": 500}, "utter_vendor_unavailable"),
    ({"status": 503}, "utter_vendor_unavailable"),  # never repeated: may have been filed
    ({"status": 429, "times": 2}, "utter_vendor_busy"),
    ({"malformed": True}, "utter_vendor_unavailable"),
    ({"status": 422, "body": {"error": {"code": 422, "message": "creator does not exist"}}},
     "utter_benti_ticket_rejected"),
    ({"status": 403, "body": EXPLICIT_DENY, "times": 2}, "utter_integration_unavailable"),
    ({"status": 401, "body": {"Message": "Unauthorized"}, "times": 2},
     "utter_integration_unavailable"),
], ids=["timeout", "500", "503", "429", "malformed", "rejected", "denied-twice",
        "unauthorized-twice"])
def test_vendor_failure_is_explained_keeps_the_slots_and_try_again_works(
    sandbox: Sandbox, try_again_server: ActionServer, fault: dict[str, Any], response: str,
) -> None:
    """Without the outbox (`OUTBOX_ENABLED=0`) every failure is told and "try again" files
    the ticket; with it, the rejections and refusals are still told this way."""
    sandbox.reset("benti")
    sandbox.inject("benti", {**fault, "path": "/ticketing/v1/tickets"})

    failed = try_again_server.run(ticket_payload())

    assert responses(failed) == [response]
    assert slot_events(failed) == PENDING_ONLY  # every answer the customer gave is kept

    retried = try_again_server.run(ticket_payload(pending_action=CREATE))
    assert responses(retried) == ["utter_benti_ticket_created"]
    assert slot_events(retried)["pending_action"] is None
    assert "benti_ticket_id" in slot_events(retried)


@pytest.mark.parametrize("fault", [
    {"status": 500},
    {"status": 503},  # never repeated at once: may have been filed
    {"status": 429, "times": 2},
    {"malformed": True},
], ids=["500", "503", "429", "malformed"])
def test_vendor_outage_queues_the_ticket_and_the_outbox_files_it(
    sandbox: Sandbox, impatient_server: ActionServer, fault: dict[str, Any],
) -> None:
    """The default: Benti down or busy, the customer hears the ticket will be filed, the
    form's texts are cleared like after a success (no "try again"), and the outbox files
    the ticket once Benti is back."""
    sandbox.reset("benti")
    title = f"Printer on fire ({fault})"
    sandbox.inject("benti", {**fault, "path": "/ticketing/v1/tickets"})

    queued = impatient_server.run(ticket_payload(benti_ticket_title=title))

    assert responses(queued) == ["utter_benti_ticket_queued"]
    assert slot_events(queued) == {"benti_ticket_title": None, "benti_ticket_description": None}
    tickets = wait_for_tickets(sandbox, title)
    assert len(tickets) == 1
    assert tickets[0]["message"] == message_html(SLOTS["benti_ticket_description"])
    assert len(tickets[0]["attachments"]) == 1  # the transcript, saved with the ticket


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


@pytest.mark.parametrize("fault", [
    {"status": 403, "body": EXPLICIT_DENY},
    {"status": 401, "body": {"Message": "Unauthorized"}},
], ids=["403-explicit-deny", "401-unauthorized"])
def test_refused_token_is_renewed_without_the_customer_noticing(
    sandbox: Sandbox, impatient_server: ActionServer, fault: dict[str, Any],
) -> None:
    impatient_server.run(ticket_payload())  # a token is held
    sandbox.reset("benti")
    sandbox.inject("benti", {**fault, "path": "/ticketing/v1/tickets"})

    reply = impatient_server.run(ticket_payload())

    assert responses(reply) == ["utter_benti_ticket_created"]
    assert len(sandbox.state("benti")["tickets"]) == 1


def test_twenty_customers_while_benti_refuses_the_secret(sandbox: Sandbox) -> None:
    """A rotated secret: every customer hears the service is unavailable (not that their
    ticket was rejected), Benti gets one authentication attempt (not one or more per
    customer), and the log says which settings to check without showing them."""
    wrong = "rotated-away-secret-value"
    env = {"SANDBOX": "0", "SANDBOX_URL": sandbox.url,
           "BENTI_API_KEY": SANDBOX_API_KEY, "BENTI_API_SECRET": wrong,
           "BENTI_AUTH_URL": f"{sandbox.url}/benti"}
    sandbox.reset("benti")
    sandbox.latency("benti", 0.2)  # the failing authentication is running when all arrive
    try:
        with running_action_server(env) as server:
            payloads = [ticket_payload(customer_email=f"customer{n}@example.com")
                        for n in range(20)]
            with ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(server.run, payloads))
            time.sleep(0.5)  # anything still running after the answers would show now
            log = server.process.output()
    finally:
        sandbox.latency("benti", 0.0)

    assert [responses(r) for r in replies] == [["utter_integration_unavailable"]] * 20
    assert [slot_events(r) for r in replies] == [PENDING_ONLY] * 20
    calls = sandbox.calls("benti")
    assert count(calls, "POST", "/v1/auth") <= 2  # one in practice (issue 15 saw 40)
    assert sum(n for key, n in calls.items() if "/ticketing/" in key) == 0
    assert "check BENTI_API_KEY and BENTI_API_SECRET" in log
    assert wrong not in log


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

    attachment = transcript_attachment(transcript_text(tracker), limit=2000)

    text = attachment.content.decode("utf-8")  # never cut inside a character
    assert len(attachment.content) <= 2000
    assert "message number 199" in text and "message number 0 " not in text
    assert attachment.name.startswith("conversation-") and attachment.name.endswith(".txt")
    # a queued ticket keeps the name it was given when the customer asked for it
    assert transcript_attachment("hello", 2000, "conversation-saved.txt").name == (
        "conversation-saved.txt")


def test_description_cannot_inject_markup_into_the_agent_screen() -> None:
    assert message_html('<script>alert("x")</script>\nline two') == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>\nline two")

"""Cention library answers and errands through the real action server (`python -m rasa_sdk`)
over HTTP, against the Cention simulator in another process: what the customer is told, which
slots change, what lands in Cention, and what the operator's log shows."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN
from rasa_service_desk.state import open_store
from tests.support.rasa_payloads import (
    bot_event,
    load_domain,
    responses,
    slot_events,
    user_event,
    webhook_payload,
)
from tests.support.servers import ActionServer, Sandbox, running_action_server

ANSWER = "action_cention_answer"
PICK = "action_cention_pick_question"
POPULAR = "action_cention_popular_questions"
CREATE = "action_cention_create_errand"
VALIDATE = "validate_cention_errand_form"
FORM = "cention_errand_form"
SEARCH_ROUTE = "GET /cention/s/{workspace}/capi/json/c3_library_questions"
EMAIL = "ann.customer@example.com"
SLOTS = {"customer_name": "Ann Customer", "customer_email": EMAIL,
         "cention_errand_subject": "Parcel never arrived"}


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cention") / "errands.sqlite3"


def server_env(sandbox: Sandbox, registry_path: Path) -> dict[str, str]:
    return {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "CENTION_TIMEOUT_SECONDS": "1",
            "CENTION_RETRY_ATTEMPTS": "1", "STATE_URL": f"sqlite:///{registry_path}",
            "CENTION_MAX_SUGGESTIONS": "2"}


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, registry_path: Path) -> Iterator[ActionServer]:
    """Cention gets one second and one attempt, so failures show at once; the outbox (on,
    the default) looks for due errands every 0.2 s and waits at most 1 s between attempts."""
    env = {**server_env(sandbox, registry_path), "OUTBOX_POLL_SECONDS": "0.2",
           "OUTBOX_MAX_BACKOFF_SECONDS": "1"}
    with running_action_server(env) as running:
        yield running


@pytest.fixture(scope="module")
def try_again_server(sandbox: Sandbox, registry_path: Path) -> Iterator[ActionServer]:
    """The same without the outbox (`OUTBOX_ENABLED=0`, still supported): a Cention outage
    is told to the customer, who says "try again"."""
    env = {**server_env(sandbox, registry_path), "OUTBOX_ENABLED": "0"}
    with running_action_server(env) as running:
        yield running


def messages(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return list(reply.get("responses", []))


def shown_text(reply: dict[str, Any]) -> str:
    """Everything a customer could see from this reply."""
    return json.dumps(messages(reply), ensure_ascii=False)


# -- library answers -------------------------------------------------------------------
def test_fallback_answers_from_the_library_in_clean_text(server: ActionServer) -> None:
    reply = server.run(webhook_payload(ANSWER, text="How do I reset my password?"))
    assert responses(reply) == ["utter_cention_answer", "utter_cention_suggestions"]
    answer, suggestions = messages(reply)
    assert answer["answer"] == ("Open the password reset page "
                                "(https://example.com/account/reset) and enter your email address.")
    assert answer["question"] == "How do I reset my password?"
    assert [b["title"] for b in suggestions["buttons"]] == ["Can I change my password in the app?"]
    payload = suggestions["buttons"][0]["payload"]
    assert payload.startswith("/cention_pick_question{")
    assert json.loads(payload[len("/cention_pick_question"):]) == {"cention_question_id": "7"}


def test_designer_chosen_slot_is_searched_and_then_cleared(server: ActionServer) -> None:
    reply = server.run(webhook_payload(ANSWER, text="hmm", slots={"cention_query": "my order"}))
    assert responses(reply) == ["utter_cention_answer"]
    assert "My orders" in messages(reply)[0]["answer"]
    assert slot_events(reply) == {"cention_query": None, "cention_answered_question_id": "6"}


def test_internal_answers_never_reach_the_customer(server: ActionServer) -> None:
    for question in ("admin console master key", "escalate to second line", "help me!",
                     "password reset for a locked account"):
        reply = server.run(webhook_payload(ANSWER, text=question))
        assert "INTERNAL" not in shown_text(reply), question
        assert "master key" not in shown_text(reply)
    reply = server.run(webhook_payload(ANSWER, text="admin console master key"))
    assert responses(reply) == ["utter_cention_no_answer"]
    # Typing an internal question's id into a pick payload gets nothing either.
    picked = server.run(webhook_payload(
        PICK, text='/cention_pick_question{"cention_question_id":"1"}',
        intent="cention_pick_question",
        entities=[{"entity": "cention_question_id", "value": "1"}]))
    assert responses(picked) == ["utter_cention_question_unavailable"]
    assert "INTERNAL" not in shown_text(picked)
    popular = server.run(webhook_payload(POPULAR))
    assert "agents only" not in shown_text(popular)


def test_no_match_offers_a_hand_off(server: ActionServer) -> None:
    reply = server.run(webhook_payload(ANSWER, text="banana smoothie recipe"))
    assert responses(reply) == ["utter_cention_no_answer"]
    assert slot_events(reply) == {}


def test_picked_suggestion_is_answered(server: ActionServer) -> None:
    reply = server.run(webhook_payload(
        PICK, text='/cention_pick_question{"cention_question_id":"7"}',
        intent="cention_pick_question", slots={"cention_question_id": "7"},
        entities=[{"entity": "cention_question_id", "value": "7"}]))
    assert responses(reply) == ["utter_cention_answer"]
    assert messages(reply)[0]["answer"] == (
        "Yes: open Settings → Security and choose Change password.")
    assert slot_events(reply) == {"cention_question_id": None,
                                  "cention_answered_question_id": "7"}


def test_popular_questions_are_offered_as_buttons(server: ActionServer) -> None:
    reply = server.run(webhook_payload(POPULAR))
    assert responses(reply) == ["utter_cention_popular_questions"]
    assert [b["title"] for b in messages(reply)[0]["buttons"]] == [
        "How do I reset my password?", "Where is my order?"]


def test_repeated_questions_are_answered_from_the_cache(
    server: ActionServer, sandbox: Sandbox,
) -> None:
    before = sandbox.calls("cention").get(SEARCH_ROUTE, 0)
    first = server.run(webhook_payload(ANSWER, text="What are your opening hours?"))
    again = server.run(webhook_payload(ANSWER, text="what are your OPENING hours"))
    assert responses(first) == responses(again) == ["utter_cention_answer"]
    assert messages(first)[0]["answer"] == messages(again)[0]["answer"]
    assert sandbox.calls("cention").get(SEARCH_ROUTE, 0) == before + 1


@pytest.mark.parametrize(("fault", "response"), [
    ({"status": 503}, "utter_vendor_unavailable"),
    ({"status": 429}, "utter_vendor_busy"),
    ({"malformed": True}, "utter_vendor_unavailable"),
    ({"delay": 2.0}, "utter_vendor_unavailable"),
])
def test_library_failures_keep_the_question_for_a_retry(
    server: ActionServer, sandbox: Sandbox, fault: dict[str, Any], response: str,
) -> None:
    sandbox.inject("cention", {**fault, "path": "c3_library_questions"})
    query = f"delivery {uuid.uuid4().hex[:8]}"
    reply = server.run(webhook_payload(ANSWER, text="x", slots={"cention_query": query}))
    assert responses(reply) == [response]
    # cention_query is kept, and the searched question is remembered for "try again"
    assert slot_events(reply) == {"pending_action": ANSWER, "cention_failed_query": query}


def test_try_again_searches_the_question_that_failed(
    server: ActionServer, sandbox: Sandbox
) -> None:
    sandbox.inject("cention", {"status": 503, "path": "c3_library_questions"})  # one attempt
    failed = server.run(webhook_payload(ANSWER, text="where is my order"))
    assert responses(failed) == ["utter_vendor_unavailable"]
    remembered = slot_events(failed)["cention_failed_query"]
    assert remembered == "where is my order"

    retry = webhook_payload(ANSWER, text="try again", slots={
        "cention_failed_query": remembered, "pending_action": ANSWER})
    retry["tracker"]["latest_action_name"] = "action_retry_pending"
    reply = server.run(retry)
    assert responses(reply)[0] == "utter_cention_answer"
    assert slot_events(reply)["cention_failed_query"] is None

    # A new question (not a retry) is searched as typed, not the remembered one.
    fresh = webhook_payload(ANSWER, text="opening hours", slots={
        "cention_failed_query": "where is my order"})
    assert "cention_failed_query" in slot_events(server.run(fresh))


# -- errand form -----------------------------------------------------------------------
def validate(server: ActionServer, slot: str, value: str) -> dict[str, Any]:
    payload = webhook_payload(VALIDATE, text=value, active_loop=FORM, requested_slot=slot,
                              slots={slot: value})
    payload["tracker"]["events"].append({"event": "slot", "timestamp": time.time(),
                                         "name": slot, "value": value})
    return server.run(payload)


@pytest.mark.parametrize(("slot", "value", "response"), [
    ("customer_name", "12345", "utter_invalid_name"),
    ("customer_email", "ann at example", "utter_invalid_email"),
    ("cention_errand_subject", "  ", "utter_invalid_text"),
    ("cention_errand_subject", "x" * 151, "utter_invalid_text"),
])
def test_invalid_answers_are_asked_again(
    server: ActionServer, slot: str, value: str, response: str,
) -> None:
    reply = validate(server, slot, value)
    assert responses(reply) == [response]
    assert slot_events(reply) == {slot: None}


def test_valid_answers_are_cleaned(server: ActionServer) -> None:
    assert slot_events(validate(server, "customer_email", " Ann.Customer@Example.COM ")) == {
        "customer_email": "Ann.Customer@example.com"}
    assert slot_events(validate(server, "cention_errand_subject", "  Parcel   lost ")) == {
        "cention_errand_subject": "Parcel lost"}


# -- errands ---------------------------------------------------------------------------
def errand_payload(sender: str, **changes: Any) -> dict[str, Any]:
    history = [
        user_event("my parcel never arrived", "nlu_fallback"),
        bot_event("I couldn't find an answer to that in our help library."),
        user_event("yes, contact support", "cention_request_errand"),
        {"event": "active_loop", "timestamp": 1700000000.5, "name": FORM},
    ]
    return webhook_payload(CREATE, slots={**SLOTS, **changes}, events=history, text="Parcel",
                           sender_id=sender)


class Receiver(BaseHTTPRequestHandler):
    """Stands in for the Cention callback endpoint: keeps what it receives."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_errand_hands_the_conversation_to_an_agent(
    server: ActionServer, sandbox: Sandbox, registry_path: Path,
) -> None:
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    reply = server.run(errand_payload(sender))
    assert responses(reply) == ["utter_cention_errand_created"]
    errand_id = messages(reply)[0]["errand_id"]
    assert messages(reply)[0]["email"] == EMAIL
    assert slot_events(reply) == {"cention_errand_id": errand_id,
                                  "cention_errand_subject": None}

    [errand] = [e for e in sandbox.state("cention")["errands"] if e["id"] == errand_id]
    msg = errand["attributes"]["msg"]
    assert (msg["name"], msg["from"], msg["subject"]) == ("Ann Customer", EMAIL,
                                                          "Parcel never arrived")
    assert f"Conversation {sender}" in msg["body"]
    assert "Customer: my parcel never arrived" in msg["body"]
    assert "Bot: I couldn't find an answer" in msg["body"]
    assert errand["extradata"]["conversation_id"] == sender
    assert errand["extradata"]["message_id"] == msg["message_id"]

    owner = asyncio.run(ErrandRegistry(open_store(f"sqlite:///{registry_path}")).owner(errand_id))
    assert owner is not None and owner.sender_id == sender and owner.channel == "rest"
    log = server.process.output()
    assert EMAIL not in log and SANDBOX_ERRAND_TOKEN not in log

    # Retrying the same hand-off sends the same message id: no second errand.
    again = server.run(errand_payload(sender))
    assert messages(again)[0]["errand_id"] == errand_id

    # The agent's answer is posted for this errand, which the registry maps to this chat.
    http = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        result = requests.post(f"{sandbox.url}/cention/_sandbox/answer", json={
            "errand_id": errand_id, "body": "It ships today.", "api_secret": "s3cret",
            "callback_url": f"http://127.0.0.1:{http.server_address[1]}/webhook"},
            timeout=10).json()
    finally:
        http.shutdown()
    assert result["status"] == 200
    delivered = Receiver.received[-1]
    answered = delivered["data"]["relationships"]["errand"]["data"]["id"]
    registry = ErrandRegistry(open_store(f"sqlite:///{registry_path}"))
    assert asyncio.run(registry.owner(answered)).sender_id == sender  # type: ignore[union-attr]


def test_errand_needs_the_form_first(server: ActionServer) -> None:
    reply = server.run(errand_payload("conv-incomplete", customer_email=None))
    assert responses(reply) == ["utter_cention_errand_incomplete"]
    assert slot_events(reply) == {}


@pytest.mark.parametrize(("fault", "response"), [
    ({"status": 503}, "utter_vendor_unavailable"),
    ({"status": 500}, "utter_vendor_unavailable"),
    ({"status": 429}, "utter_vendor_busy"),
    ({"status": 422, "body": {"errors": [{"status": "422", "title": "Invalid"}]}},
     "utter_vendor_rejected"),
    ({"status": 401}, "utter_integration_unavailable"),
    ({"malformed": True}, "utter_vendor_unavailable"),
    ({"delay": 2.0}, "utter_vendor_unavailable"),
])
def test_errand_failures_keep_every_slot(
    try_again_server: ActionServer, sandbox: Sandbox, fault: dict[str, Any], response: str,
) -> None:
    """Without the outbox every failure is told and "try again" is offered; with it, the
    rejections and refusals still are."""
    sandbox.inject("cention", {**fault, "path": "c3_new_errands"})
    reply = try_again_server.run(errand_payload(f"conv-{uuid.uuid4().hex[:8]}"))
    assert responses(reply) == [response]
    assert slot_events(reply) == {"pending_action": CREATE}


def errands_about(sandbox: Sandbox, subject: str, timeout: float = 20.0) -> list[Any]:
    """The simulator's errands with `subject`, once there is one (the outbox files it)."""
    deadline = time.monotonic() + timeout
    while True:
        errands = [e for e in sandbox.state("cention")["errands"]
                   if e["attributes"]["msg"]["subject"] == subject]
        if errands or time.monotonic() > deadline:
            return errands
        time.sleep(0.1)


@pytest.mark.parametrize("fault", [
    {"status": 503}, {"status": 500}, {"status": 429}, {"malformed": True}, {"delay": 2.0},
], ids=["503", "500", "429", "malformed", "timeout"])
def test_errand_outage_queues_the_hand_off_and_the_outbox_passes_it_on(
    server: ActionServer, sandbox: Sandbox, fault: dict[str, Any], registry_path: Path,
) -> None:
    """The default: Cention down or busy, the customer hears the errand will be passed on,
    the subject is cleared like after a hand-off (no "try again"), and the outbox creates
    the errand, once (its message id), for this conversation, when Cention is back, and
    records the conversation as its owner, so that the agent's answer finds the chat."""
    sender = f"conv-{uuid.uuid4().hex[:8]}"
    subject = f"Parcel never arrived ({sender})"
    sandbox.inject("cention", {**fault, "path": "c3_new_errands"})

    reply = server.run(errand_payload(sender, cention_errand_subject=subject))

    assert responses(reply) == ["utter_cention_errand_queued"]
    assert slot_events(reply) == {"cention_errand_subject": None}
    [errand] = errands_about(sandbox, subject)
    assert errand["extradata"]["conversation_id"] == sender
    registry = ErrandRegistry(open_store(f"sqlite:///{registry_path}"))
    deadline = time.monotonic() + 10
    while (owner := asyncio.run(registry.owner(errand["id"]))) is None:
        assert time.monotonic() < deadline, "the filed errand's owner was never recorded"
        time.sleep(0.1)
    assert (owner.sender_id, owner.channel) == (sender, "rest")


# -- domain ----------------------------------------------------------------------------
def test_domain_declares_everything_the_actions_use(server: ActionServer) -> None:
    domain = load_domain()
    package = Path(__file__).resolve().parents[2] / "rasa_service_desk"
    source = (package / "actions" / "cention.py").read_text()
    uttered = set(re.findall(r'"(utter_[a-z_]+)"', source))
    assert uttered and uttered <= set(domain["responses"])
    assert {ANSWER, PICK, POPULAR, CREATE, VALIDATE} <= set(domain["actions"])
    assert {ANSWER, PICK, POPULAR, CREATE, VALIDATE} <= set(server.actions())
    assert domain["forms"][FORM]["required_slots"] == [
        "customer_name", "customer_email", "cention_errand_subject"]
    assert "cention_pick_question" in domain["intents"]
    assert "cention_question_id" in domain["entities"]
    assert "{answer}" in domain["responses"]["utter_cention_answer"][0]["text"]

"""Imbee through the real action server (`python -m rasa_sdk`) against the simulator.

Covers the form's one question, the whole chat flow, reuse on a second request, every failure
the customer could meet (with the slots kept), and that the log shows no secret or contact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from rasa_service_desk.clients.imbee.settings import (
    SANDBOX_AUTH_TOKEN,
    SANDBOX_CORPORATE_TOKEN,
    SANDBOX_USER_ID_SALT,
)
from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer, Sandbox, running_action_server

EMAIL = "ana.lopez@example.com"
PHONE = "+34612345678"
FORM = "imbee_chat_form"
OPEN = "action_imbee_open_chat"
CHAT_SLOTS = {"imbee_chat_url", "imbee_conversation_id", "imbee_link_valid_until",
              "imbee_link_uses"}


@pytest.fixture(scope="module")
def strict_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """An action server that gives up fast (short timeout, one attempt) and reads national
    numbers as Spanish, for the failure and region tests."""
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "IMBEE_TIMEOUT_SECONDS": "0.5",
           "IMBEE_RETRY_ATTEMPTS": "1", "IMBEE_DEFAULT_REGION": "ES",
           "IMBEE_MAX_RETRIES": "4", "IMBEE_VALIDITY_DAYS": "2"}
    with running_action_server(env) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_simulator(sandbox: Sandbox) -> None:
    sandbox.reset("imbee")


def answer(server: ActionServer, text: str, slots: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the form's validator as Rasa does after the customer answered its question."""
    payload = webhook_payload(f"validate_{FORM}", slots=slots, text=text, active_loop=FORM,
                              requested_slot="customer_email")
    payload["tracker"]["events"].append(
        {"event": "slot", "timestamp": None, "name": "customer_email", "value": text})
    payload["tracker"]["slots"]["customer_email"] = text
    return server.run(payload)


def open_chat(server: ActionServer, sender: str, **slots: Any) -> dict[str, Any]:
    return server.run(webhook_payload(OPEN, slots=slots, sender_id=sender))


def message(reply: dict[str, Any]) -> dict[str, Any]:
    [first] = reply["responses"]
    return dict(first)


# -- the form ---------------------------------------------------------------------------
def test_an_email_answer_fills_customer_email_and_ends_the_form(
    action_server: ActionServer,
) -> None:
    reply = answer(action_server, "  Ana.Lopez@Example.com ")
    # the form's only slot is filled: Rasa ends the form itself
    assert slot_events(reply) == {"customer_email": "Ana.Lopez@example.com"}
    assert responses(reply) == []


def test_a_mobile_number_answer_fills_customer_phone_in_e164(
    action_server: ActionServer,
) -> None:
    slots = slot_events(answer(action_server, "+34 612 34 56 78"))
    assert slots == {"customer_email": None, "customer_phone": PHONE, "requested_slot": None}


def test_a_national_number_uses_the_configured_region(strict_server: ActionServer) -> None:
    slots = slot_events(answer(strict_server, "612 34 56 78"))
    assert slots["customer_phone"] == PHONE


@pytest.mark.parametrize(("text", "response"), [
    ("ana.lopez@", "utter_invalid_email"),
    ("12345", "utter_invalid_phone"),
    ("612 34 56 78", "utter_invalid_phone"),  # no region configured: country code needed
    ("I'd rather not say", "utter_imbee_invalid_contact"),
])
def test_an_unusable_answer_is_asked_again_with_the_right_response(
    action_server: ActionServer, text: str, response: str
) -> None:
    reply = answer(action_server, text)
    assert responses(reply) == [response]
    slots = slot_events(reply)
    assert slots["customer_email"] is None
    assert "customer_phone" not in slots
    assert "requested_slot" not in slots  # Rasa asks the same question again


@pytest.mark.parametrize(("known", "events"), [
    ({"customer_phone": PHONE}, {"requested_slot": None}),  # the validator ends the form
    ({"customer_email": EMAIL}, {}),  # the form's slot is filled: Rasa ends it
])
def test_a_contact_known_from_another_form_skips_the_question(
    action_server: ActionServer, known: dict[str, Any], events: dict[str, Any]
) -> None:
    payload = webhook_payload(f"validate_{FORM}", slots=known, active_loop=FORM)
    reply = action_server.run(payload)
    assert responses(reply) == []
    assert slot_events(reply) == events


# -- the chat -------------------------------------------------------------------------
def test_full_flow_gives_a_working_link_and_reuses_it_when_asked_again(
    action_server: ActionServer, sandbox: Sandbox
) -> None:
    sender = uuid.uuid4().hex
    reply = open_chat(action_server, sender, customer_email=EMAIL)
    first = message(reply)
    assert first["response"] == "utter_imbee_chat_opened"
    slots = slot_events(reply)
    assert set(slots) == CHAT_SLOTS
    assert first["url"] == slots["imbee_chat_url"]
    assert first["valid_until"] == slots["imbee_link_valid_until"]
    assert first["uses"] == slots["imbee_link_uses"] == 10

    state = sandbox.state("imbee")
    [token] = state["tokens"]
    assert (token["url"], token["mail"], token["celullar"]) == (first["url"], EMAIL, None)
    assert state["chats"][0]["conversation_id"] == slots["imbee_conversation_id"]
    assert requests.get(first["url"], timeout=5).status_code == 200  # the customer's link works

    again = open_chat(action_server, sender, customer_email=EMAIL, **slots)
    second = message(again)
    assert second["response"] == "utter_imbee_chat_reused"
    assert second["url"] == first["url"]
    assert slot_events(again)["imbee_conversation_id"] == slots["imbee_conversation_id"]
    state = sandbox.state("imbee")
    assert [len(state[k]) for k in ("users", "chats", "tokens")] == [1, 1, 1]
    assert sender not in str(state)  # Imbee never sees the conversation id itself


def test_a_phone_only_customer_gets_the_link_by_sms(
    strict_server: ActionServer, sandbox: Sandbox
) -> None:
    reply = open_chat(strict_server, uuid.uuid4().hex, customer_phone=PHONE)
    assert message(reply)["response"] == "utter_imbee_chat_opened"
    assert message(reply)["uses"] == 4  # IMBEE_MAX_RETRIES of that server
    [token] = sandbox.state("imbee")["tokens"]
    assert (token["mail"], token["celullar"]) == (None, PHONE)


def test_two_conversations_get_two_chats(action_server: ActionServer, sandbox: Sandbox) -> None:
    first = open_chat(action_server, uuid.uuid4().hex, customer_email=EMAIL)
    second = open_chat(action_server, uuid.uuid4().hex, customer_email=EMAIL)
    assert message(first)["url"] != message(second)["url"]
    assert len(sandbox.state("imbee")["chats"]) == 2


@pytest.mark.parametrize("slots", [{}, {"customer_phone": "not a number"},
                                   {"customer_email": "nobody@"}])
def test_without_a_usable_contact_nothing_is_created(
    action_server: ActionServer, sandbox: Sandbox, slots: dict[str, Any]
) -> None:
    reply = open_chat(action_server, uuid.uuid4().hex, **slots)
    assert responses(reply) == ["utter_imbee_contact_missing"]
    assert reply["events"] == []
    assert sandbox.calls("imbee") == {}


# -- failures -------------------------------------------------------------------------
FAILURES = [
    pytest.param({"status": 200, "path": "/token/new", "body": {"message": "celullar not valid"}},
                 "utter_imbee_chat_rejected", id="code-1-on-token"),
    pytest.param({"status": 200, "path": "/third_parties/user/new"},
                 "utter_vendor_unavailable", id="code-1-on-user"),
    pytest.param({"status": 200, "path": "/chat/create"},
                 "utter_vendor_unavailable", id="code-1-on-chat"),
    pytest.param({"status": 500, "path": "/chat/create"}, "utter_vendor_unavailable",
                 id="http-500"),
    pytest.param({"status": 503}, "utter_vendor_unavailable", id="http-503"),
    pytest.param({"status": 429}, "utter_vendor_busy", id="http-429"),
    pytest.param({"status": 401}, "utter_integration_unavailable", id="http-401"),
    pytest.param({"status": 400, "path": "/token/new"}, "utter_imbee_chat_rejected",
                 id="http-400-on-token"),
    pytest.param({"status": 400, "path": "/chat/create"}, "utter_vendor_unavailable",
                 id="http-400-on-chat"),
    pytest.param({"malformed": True, "path": "/token/new"}, "utter_vendor_unavailable",
                 id="malformed"),
    pytest.param({"delay": 1.5, "path": "/chat/create"}, "utter_vendor_unavailable",
                 id="timeout"),
]


@pytest.mark.parametrize(("fault", "response"), FAILURES)
def test_every_failure_gets_its_response_keeps_the_slots_and_can_be_retried(
    strict_server: ActionServer, sandbox: Sandbox, fault: dict[str, Any], response: str
) -> None:
    sender = uuid.uuid4().hex
    slots = {"customer_email": EMAIL, "customer_phone": PHONE}
    sandbox.inject("imbee", fault)
    reply = open_chat(strict_server, sender, **slots)
    assert responses(reply) == [response]
    assert slot_events(reply) == {"pending_action": OPEN}  # nothing else touched

    retried = open_chat(strict_server, sender, **slots, pending_action=OPEN)
    assert responses(retried) == ["utter_imbee_chat_opened"]
    assert slot_events(retried)["pending_action"] is None
    assert len(sandbox.state("imbee")["chats"]) == 1


def test_a_transient_server_error_is_retried_without_the_customer_noticing(
    action_server: ActionServer, sandbox: Sandbox
) -> None:
    sandbox.inject("imbee", {"status": 502, "path": "/chat/create"})
    reply = open_chat(action_server, uuid.uuid4().hex, customer_email=EMAIL)
    assert responses(reply) == ["utter_imbee_chat_opened"]
    assert sandbox.calls("imbee")["POST /imbee/chat/create"] == 2
    assert len(sandbox.state("imbee")["chats"]) == 1


# -- logs -----------------------------------------------------------------------------
def test_the_logs_show_no_secret_link_or_contact(
    strict_server: ActionServer, sandbox: Sandbox
) -> None:
    sender = uuid.uuid4().hex
    sandbox.inject("imbee", {"status": 200, "path": "/token/new",
                             "body": {"message": "Refused for the log test"}})
    open_chat(strict_server, sender, customer_email=EMAIL, customer_phone=PHONE)
    reply = open_chat(strict_server, sender, customer_email=EMAIL, customer_phone=PHONE)
    link = message(reply)["url"]
    state = sandbox.state("imbee")
    output = strict_server.process.output()
    # The vendor's refusal is logged for operators as a summary (the API-error vocabulary
    # only: a vendor message may echo what was sent, so it is never logged word for word).
    assert "refused the request" in output and "Refused for the" in output
    leaks = [SANDBOX_AUTH_TOKEN, SANDBOX_CORPORATE_TOKEN, SANDBOX_USER_ID_SALT, link,
             link.rsplit("/", 1)[1], EMAIL, PHONE, "612345678"]
    leaks += [user[key] for user in state["users"] for key in ("apikey", "password")]
    assert [leak for leak in leaks if leak in output] == []

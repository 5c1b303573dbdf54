"""Cention errand follow-ups through the real action server (`python -m rasa_sdk`) over HTTP,
against the Cention simulator in another process: "any news on my request?", withdrawing an
errand, contact cards and conversations the bot resolved.

What the customer is told, which slots change, what lands in Cention, and the rule that a
conversation only ever learns about (or closes) the errands it created itself.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.compat import field_names
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

CREATE = "action_cention_create_errand"
STATUS = "action_cention_errand_status"
START = "action_cention_start_withdrawal"
WITHDRAW = "action_cention_withdraw_errand"
VALIDATE = "validate_cention_withdraw_form"
RESOLVED = "action_cention_record_resolved"
ANSWER = "action_cention_answer"
FORM = "cention_errand_form"
WITHDRAW_FORM = "cention_withdraw_form"
REPORT_ROUTE = "GET /cention/s/{workspace}/capi/json/c3_errand_reports/{id}"
END_ROUTE = "POST /cention/s/{workspace}/capi/json/c3_end_errands"
NEW_ROUTE = "POST /cention/s/{workspace}/capi/json/c3_new_errands"
CARD_ROUTE = "POST /cention/s/{workspace}/capi/json/c3_contact_cards"
EMAIL = "ann.customer@example.com"
CONTACT = {"customer_name": "Ann Customer", "customer_email": EMAIL}
#: A time as the replies show it: 2024-05-02 14:05 UTC.
SHOWN_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$")
#: The follow-up settings that the lead adds to `CentionSettings`; until then the actions use
#: their defaults and the tests of other values are skipped.
OPERATOR_SETTINGS = {"show_agent_names", "closing_user_id", "contact_card",
                     "contact_card_cuid_slot", "record_resolved"}
needs_operator_settings = pytest.mark.skipif(
    not OPERATOR_SETTINGS.issubset(field_names(CentionSettings)),
    reason="CentionSettings does not declare the follow-up settings yet")


@pytest.fixture(scope="module")
def state_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('cention-followups') / 'state.sqlite3'}"


def server_env(sandbox: Sandbox, state_url: str, **extra: str) -> dict[str, str]:
    """Cention gets one second and one attempt, so failures show at once."""
    return {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "CENTION_TIMEOUT_SECONDS": "1",
            "CENTION_RETRY_ATTEMPTS": "1", "STATE_URL": state_url, **extra}


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, state_url: str) -> Iterator[ActionServer]:
    with running_action_server(server_env(sandbox, state_url)) as running:
        yield running


def messages(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return list(reply.get("responses", []))


def call(server: ActionServer, action: str, sender: str, text: str = "any news?",
         slots: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return server.run(webhook_payload(action, sender_id=sender, text=text,
                                      slots={**CONTACT, **(slots or {})}, **changes))


def new_sender() -> str:
    return f"conv-{uuid.uuid4().hex[:10]}"


def create_errand(server: ActionServer, sender: str, subject: str = "Parcel never arrived",
                  **slots: Any) -> str:
    history = [user_event("I want to talk to support", "cention_request_errand"),
               {"event": "active_loop", "timestamp": time.time(), "name": FORM}]
    reply = server.run(webhook_payload(CREATE, sender_id=sender, events=history, text=subject,
                                       slots={**CONTACT, "cention_errand_subject": subject,
                                              **slots}))
    assert responses(reply) == ["utter_cention_errand_created"], reply
    return str(messages(reply)[0]["errand_id"])


def sandbox_errand(sandbox: Sandbox, errand_id: str) -> dict[str, Any]:
    return next(e for e in sandbox.state("cention")["errands"] if e["id"] == errand_id)


def report_calls(sandbox: Sandbox) -> int:
    return sandbox.calls("cention").get(REPORT_ROUTE, 0)


def agent_answers(sandbox: Sandbox, errand_id: str) -> None:
    """An agent answers in Cention (the callback goes nowhere: only the errand matters)."""
    requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": "It ships today.",
        "callback_url": "http://127.0.0.1:9/webhooks/cention/webhook"}, timeout=30)


# -- "any news on my request?" ---------------------------------------------------------------
def test_status_follows_the_errand_of_this_conversation(
    server: ActionServer, sandbox: Sandbox,
) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    slots = {"cention_errand_id": errand_id}

    waiting = call(server, STATUS, sender, "any news on my request?", slots)
    assert responses(waiting) == ["utter_cention_errand_status_waiting"]
    shown = messages(waiting)[0]
    assert shown["errand_id"] == errand_id and SHOWN_TIME.match(shown["last_update"])
    assert slot_events(waiting) == {}

    requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/open",
                  json={"errand_id": errand_id, "agent": "Grace Agent"}, timeout=10)
    working = call(server, STATUS, sender, "is someone working on it?", slots)
    assert responses(working) == ["utter_cention_errand_status_in_progress"]
    assert "Grace" not in str(messages(working))  # no agent names by default
    assert "<img" not in str(messages(working))

    agent_answers(sandbox, errand_id)
    answered = call(server, STATUS, sender, "any update?", slots)
    assert responses(answered) == ["utter_cention_errand_status_answered"]
    # Reading the report does not hide the change from other integrations' dirty list.
    assert sandbox_errand(sandbox, errand_id)["dirty"] is True


def test_status_of_an_errand_number_the_customer_gives(
    server: ActionServer, sandbox: Sandbox,
) -> None:
    sender = new_sender()
    first = create_errand(server, sender, "Parcel never arrived")
    second = create_errand(server, sender, "Wrong invoice")
    # The slot holds the latest errand; the number in the message picks the earlier one.
    reply = call(server, STATUS, sender, f"what's the status of request #{first}-1",
                 {"cention_errand_id": second})
    assert responses(reply) == ["utter_cention_errand_status_waiting"]
    assert messages(reply)[0]["errand_id"] == first
    # A button (or an entity extractor) may give it as an entity.
    button = call(server, STATUS, sender, f'/cention_errand_status{{"cention_errand_number":'
                  f'"{second}"}}', entities=[{"entity": "cention_errand_number",
                                               "value": second}])
    assert messages(button)[0]["errand_id"] == second


def test_another_conversations_errand_reveals_nothing(
    server: ActionServer, sandbox: Sandbox,
) -> None:
    owner = new_sender()
    errand_id = create_errand(server, owner)
    stranger = new_sender()
    before = report_calls(sandbox)

    theirs = call(server, STATUS, stranger, f"status of request {errand_id}")
    missing = call(server, STATUS, stranger, "status of request 99999999")
    assert responses(theirs) == responses(missing) == ["utter_cention_errand_unknown"]
    # The same reply, and Cention was not even asked about the other conversation's errand.
    assert {k: v for k, v in messages(theirs)[0].items() if k != "errand_id"} == {
        k: v for k, v in messages(missing)[0].items() if k != "errand_id"}
    assert report_calls(sandbox) == before
    # A slot set by hand (a tracker can be edited) is checked the same way.
    forged = call(server, STATUS, stranger, "any news?", {"cention_errand_id": errand_id})
    assert responses(forged) == ["utter_cention_errand_unknown"]
    assert report_calls(sandbox) == before


def test_status_without_an_errand_says_so(server: ActionServer) -> None:
    reply = call(server, STATUS, new_sender(), "any news on my request?")
    assert responses(reply) == ["utter_cention_no_errand"]
    assert slot_events(reply) == {}


@pytest.mark.parametrize(("fault", "response"), [
    ({"status": 503}, "utter_vendor_unavailable"),
    ({"status": 429}, "utter_vendor_busy"),
    ({"status": 403}, "utter_integration_unavailable"),
    ({"malformed": True}, "utter_vendor_unavailable"),
    ({"delay": 2.0}, "utter_vendor_unavailable"),
])
def test_status_failures_keep_the_number_for_try_again(
    server: ActionServer, sandbox: Sandbox, fault: dict[str, Any], response: str,
) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    other = create_errand(server, sender, "Another question")
    sandbox.inject("cention", {**fault, "path": "c3_errand_reports"})
    failed = call(server, STATUS, sender, f"any news on request {errand_id}?",
                  {"cention_errand_id": other})
    assert responses(failed) == [response]
    assert slot_events(failed) == {"pending_action": STATUS, "cention_errand_number": errand_id}

    retry = webhook_payload(STATUS, sender_id=sender, text="try again", slots={
        **CONTACT, "cention_errand_id": other, "pending_action": STATUS,
        "cention_errand_number": errand_id})
    retry["tracker"]["latest_action_name"] = "action_retry_pending"
    again = server.run(retry)
    assert responses(again) == ["utter_cention_errand_status_waiting"]
    assert messages(again)[0]["errand_id"] == errand_id  # not the slot's latest errand
    assert slot_events(again) == {"pending_action": None, "cention_errand_number": None}


# -- "never mind, it's solved" -----------------------------------------------------------
def validate(server: ActionServer, sender: str, text: str) -> dict[str, Any]:
    slot = "cention_withdraw_confirmation"
    payload = webhook_payload(VALIDATE, sender_id=sender, text=text, active_loop=WITHDRAW_FORM,
                              requested_slot=slot)
    return server.run(payload)


@pytest.mark.parametrize(("text", "value"), [
    ("yes", "yes"), ("Yes, close it", "yes"), ("sure", "yes"), ("please close it", "yes"),
    ("no", "no"), ("No, keep it open", "no"), ("not yet", "no"), ("don't close it", "no"),
])
def test_confirmation_reads_yes_or_no(server: ActionServer, text: str, value: str) -> None:
    reply = validate(server, new_sender(), text)
    assert slot_events(reply) == {"cention_withdraw_confirmation": value}
    assert responses(reply) == []


def test_confirmation_that_is_neither_is_asked_again(server: ActionServer) -> None:
    reply = validate(server, new_sender(), "what's the weather like")
    assert responses(reply) == ["utter_cention_withdraw_yes_or_no"]
    assert slot_events(reply) == {"cention_withdraw_confirmation": None}
    # An agent's answer injected by the connector is never taken as the customer's yes.
    injected = validate(server, new_sender(), '/cention_agent_answer{"cention_answer_text":"yes"}')
    assert slot_events(injected) == {}


def test_form_starts_without_taking_the_emptied_slot_as_an_answer(server: ActionServer) -> None:
    """The start action empties the confirmation (a failed withdrawal may have left a "yes");
    the validator, called as the form activates, asks nothing about that."""
    payload = webhook_payload(VALIDATE, sender_id=new_sender(), text="never mind",
                              active_loop=WITHDRAW_FORM,
                              slots={"cention_withdraw_confirmation": None})
    payload["tracker"]["events"].append({"event": "slot", "timestamp": time.time(),
                                         "name": "cention_withdraw_confirmation", "value": None})
    reply = server.run(payload)
    assert responses(reply) == []
    assert slot_events(reply) == {"cention_withdraw_confirmation": None}


def test_withdrawing_an_open_errand_after_confirmation(
    server: ActionServer, sandbox: Sandbox,
) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    slots = {"cention_errand_id": errand_id}

    started = call(server, START, sender, "never mind, it's solved", slots)
    assert responses(started) == []
    events = started["events"]
    assert {"event": "followup", "name": WITHDRAW_FORM} in [
        {k: e.get(k) for k in ("event", "name")} for e in events]
    assert slot_events(started) == {"cention_withdraw_errand_id": errand_id,
                                    "cention_withdraw_confirmation": None}
    assert sandbox_errand(sandbox, errand_id).get("closed") is False

    done = call(server, WITHDRAW, sender, "yes", {
        **slots, "cention_withdraw_errand_id": errand_id,
        "cention_withdraw_confirmation": "yes"})
    assert responses(done) == ["utter_cention_errand_withdrawn"]
    assert messages(done)[0]["errand_id"] == errand_id
    assert slot_events(done) == {"cention_withdraw_errand_id": None,
                                 "cention_withdraw_confirmation": None}

    errand = sandbox_errand(sandbox, errand_id)
    note = load_domain()["responses"]["utter_cention_errand_withdrawn_note"][0]["text"]
    assert errand["closed"] is True
    assert errand["closing_answer"] == {"user_type": "cention", "user_id": "1",
                                        "subject": "Parcel never arrived", "body": note,
                                        "html_body": ""}

    status = call(server, STATUS, sender, "any news on my request?", slots)
    assert responses(status) == ["utter_cention_errand_status_withdrawn"]
    again = call(server, START, sender, "close my request", slots)
    assert responses(again) == ["utter_cention_errand_already_closed"]
    assert slot_events(again) == {}


def test_saying_no_keeps_the_errand_open(server: ActionServer, sandbox: Sandbox) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    before = sandbox.calls("cention").get(END_ROUTE, 0)
    kept = call(server, WITHDRAW, sender, "no", {"cention_withdraw_errand_id": errand_id,
                                                "cention_withdraw_confirmation": "no"})
    assert responses(kept) == ["utter_cention_withdraw_cancelled"]
    assert slot_events(kept) == {"cention_withdraw_errand_id": None,
                                 "cention_withdraw_confirmation": None}
    assert sandbox.calls("cention").get(END_ROUTE, 0) == before
    assert sandbox_errand(sandbox, errand_id)["closed"] is False


def test_an_answered_errand_is_not_withdrawn(server: ActionServer, sandbox: Sandbox) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    agent_answers(sandbox, errand_id)
    reply = call(server, START, sender, "never mind", {"cention_errand_id": errand_id})
    assert responses(reply) == ["utter_cention_errand_already_closed"]
    # Answered between the question and the customer's yes: not closed again.
    late = call(server, WITHDRAW, sender, "yes", {"cention_withdraw_errand_id": errand_id,
                                                 "cention_withdraw_confirmation": "yes"})
    assert responses(late) == ["utter_cention_errand_already_closed"]


def test_another_conversations_errand_cannot_be_withdrawn(
    server: ActionServer, sandbox: Sandbox,
) -> None:
    errand_id = create_errand(server, new_sender())
    stranger = new_sender()
    started = call(server, START, stranger, f"withdraw request {errand_id}")
    assert responses(started) == ["utter_cention_errand_unknown"]
    assert slot_events(started) == {}
    # Even with the form's slots set by hand.
    forced = call(server, WITHDRAW, stranger, "yes", {"cention_withdraw_errand_id": errand_id,
                                                     "cention_withdraw_confirmation": "yes"})
    assert responses(forced) == ["utter_cention_errand_unknown"]
    assert sandbox_errand(sandbox, errand_id)["closed"] is False


def test_withdrawing_without_an_errand(server: ActionServer) -> None:
    reply = call(server, START, new_sender(), "never mind, it's solved")
    assert responses(reply) == ["utter_cention_no_errand"]


@pytest.mark.parametrize(("fault", "response"), [
    ({"status": 503}, "utter_vendor_unavailable"),
    ({"status": 500}, "utter_vendor_unavailable"),
    ({"status": 422, "body": {"errors": [{"status": "422", "title": "Invalid"}]}},
     "utter_vendor_rejected"),
    ({"delay": 2.0}, "utter_vendor_unavailable"),
])
def test_withdrawal_failures_keep_every_slot(
    server: ActionServer, sandbox: Sandbox, fault: dict[str, Any], response: str,
) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    sandbox.inject("cention", {**fault, "path": "c3_end_errands"})
    slots = {"cention_withdraw_errand_id": errand_id, "cention_withdraw_confirmation": "yes"}
    failed = call(server, WITHDRAW, sender, "yes", slots)
    assert responses(failed) == [response]
    assert slot_events(failed) == {"pending_action": WITHDRAW}
    if "delay" not in fault:
        assert sandbox_errand(sandbox, errand_id)["closed"] is False
        retry = webhook_payload(WITHDRAW, sender_id=sender, text="try again",
                                slots={**slots, "pending_action": WITHDRAW})
        retry["tracker"]["latest_action_name"] = "action_retry_pending"
        assert responses(server.run(retry)) == ["utter_cention_errand_withdrawn"]


def test_vendor_down_when_starting_a_withdrawal(server: ActionServer, sandbox: Sandbox) -> None:
    sender = new_sender()
    errand_id = create_errand(server, sender)
    sandbox.inject("cention", {"status": 503, "path": "c3_errand_reports"})
    reply = call(server, START, sender, "never mind", {"cention_errand_id": errand_id})
    assert responses(reply) == ["utter_vendor_unavailable"]
    assert slot_events(reply) == {"pending_action": START, "cention_errand_number": None}


# -- "that helped" -------------------------------------------------------------------------
def test_that_helped_thanks_the_customer(server: ActionServer, sandbox: Sandbox) -> None:
    sender = new_sender()
    answered = call(server, ANSWER, sender, "What are your opening hours?")
    assert responses(answered) == ["utter_cention_answer"]
    question_id = slot_events(answered)["cention_answered_question_id"]
    before = sandbox.calls("cention").get(NEW_ROUTE, 0)
    reply = call(server, RESOLVED, sender, "that helped",
                 {"cention_answered_question_id": question_id})
    assert responses(reply) == ["utter_cention_glad_it_helped"]
    assert slot_events(reply) == {"cention_answered_question_id": None}
    # Recording is off by default: nothing is sent to Cention.
    assert sandbox.calls("cention").get(NEW_ROUTE, 0) == before
    nothing = call(server, RESOLVED, new_sender(), "that helped")
    assert responses(nothing) == ["utter_cention_glad_it_helped"]
    assert slot_events(nothing) == {}


def test_a_search_without_an_answer_forgets_the_last_answer(server: ActionServer) -> None:
    reply = call(server, ANSWER, new_sender(), "banana smoothie recipe",
                 {"cention_answered_question_id": "8"})
    assert responses(reply) == ["utter_cention_no_answer"]
    assert slot_events(reply) == {"cention_answered_question_id": None}


# -- the operator's settings ---------------------------------------------------------------
@pytest.fixture(scope="module")
def configured(sandbox: Sandbox, state_url: str) -> Iterator[ActionServer]:
    env = server_env(sandbox, state_url, CENTION_SHOW_AGENT_NAMES="true",
                     CENTION_CLOSING_USER_ID="2", CENTION_CONTACT_CARD="true",
                     CENTION_CONTACT_CARD_CUID_SLOT="customer_number",
                     CENTION_RECORD_RESOLVED="true", ACTION_DEADLINE_SECONDS="4")
    with running_action_server(env) as running:
        yield running


@needs_operator_settings
def test_agent_names_are_shown_when_the_operator_allows_it(
    configured: ActionServer, sandbox: Sandbox,
) -> None:
    sender = new_sender()
    errand_id = create_errand(configured, sender)
    requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/open",
                  json={"errand_id": errand_id, "agent": "Grace Agent"}, timeout=10)
    reply = call(configured, STATUS, sender, "any news?", {"cention_errand_id": errand_id})
    assert responses(reply) == ["utter_cention_errand_status_in_progress_named"]
    assert messages(reply)[0]["agent"] == "Grace Agent"


@needs_operator_settings
def test_errand_saves_the_contact_card_and_the_cuid(
    configured: ActionServer, sandbox: Sandbox,
) -> None:
    email = f"card-{uuid.uuid4().hex[:6]}@example.com"
    sender = new_sender()
    errand_id = create_errand(configured, sender, customer_email=email,
                              customer_phone="+46701234567", customer_number="5462-13-6485")
    assert sandbox_errand(sandbox, errand_id)["cuid"] == "5462-13-6485"
    [card] = [c for c in sandbox.state("cention")["contact_cards"]
              if email in c["contacts"].get("email", [])]
    assert card["contacts"] == {"name": "Ann Customer", "email": [email],
                                "voice": ["+46701234567"]}
    # A second errand of the same customer adds nothing to the card (append, no duplicate).
    create_errand(configured, sender, "Another question", customer_email=email)
    cards = [c for c in sandbox.state("cention")["contact_cards"]
             if email in c["contacts"].get("email", [])]
    assert cards == [card]


@needs_operator_settings
@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 403}, {"delay": 2.0}])
def test_contact_card_failure_never_fails_the_errand(
    configured: ActionServer, sandbox: Sandbox, fault: dict[str, Any],
) -> None:
    sandbox.inject("cention", {**fault, "path": "c3_contact_cards"})
    before = sandbox.calls("cention").get(CARD_ROUTE, 0)
    errand_id = create_errand(configured, new_sender())
    assert sandbox_errand(sandbox, errand_id)["closed"] is False
    assert sandbox.calls("cention").get(CARD_ROUTE, 0) == before + 1
    assert "contact card" in configured.process.output()


@needs_operator_settings
def test_a_slow_contact_card_neither_queues_the_errand_nor_loses_its_owner(
    sandbox: Sandbox, state_url: str,
) -> None:
    """The card is saved after the errand exists, for at most 5 s and outside the share of
    the deadline kept for filing: a card that never answers still gives the customer the
    errand's number, and the agent's answer still finds the chat."""
    env = server_env(sandbox, state_url, CENTION_CONTACT_CARD="true",
                     CENTION_TIMEOUT_SECONDS="10", ACTION_DEADLINE_SECONDS="8")
    with running_action_server(env) as slow_card:
        sandbox.inject("cention", {"delay": 9.0, "path": "c3_contact_cards"})
        before = sandbox.calls("cention").get(CARD_ROUTE, 0)
        sender = new_sender()
        errand_id = create_errand(slow_card, sender)
        assert sandbox.calls("cention").get(CARD_ROUTE, 0) == before + 1
        assert "contact card: no result within 5.0 s" in slow_card.process.output()
    owner = asyncio.run(ErrandRegistry(open_store(state_url)).owner(errand_id))
    assert owner is not None and owner.sender_id == sender
    assert sandbox_errand(sandbox, errand_id)["closed"] is False


@needs_operator_settings
def test_resolved_conversation_is_recorded_as_a_closed_errand(
    configured: ActionServer, sandbox: Sandbox,
) -> None:
    sender = new_sender()
    history = [user_event("What are your opening hours?", "ask_question"),
               bot_event("Monday to Friday, 9:00-17:00."),
               {"event": "slot", "timestamp": time.time(),
                "name": "cention_answered_question_id", "value": "8"}]
    payload = webhook_payload(RESOLVED, sender_id=sender, text="that helped", events=history,
                              slots={**CONTACT, "cention_answered_question_id": "8"})
    reply = configured.run(payload)
    assert responses(reply) == ["utter_cention_glad_it_helped"]
    [errand] = [e for e in sandbox.state("cention")["errands"]
                if (e["extradata"] or {}).get("conversation_id") == sender]
    msg = errand["attributes"]["msg"]
    assert msg["subject"] == "What are your opening hours?"
    assert msg["from"].endswith("@chat.invalid") and EMAIL not in str(errand)
    assert "Customer: What are your opening hours?" in msg["body"]
    assert errand["closed"] is True and errand["answered"] is True
    assert errand["closing_answer"]["user_id"] == "2"
    assert "9:00" in errand["closing_answer"]["body"]
    assert errand["extradata"]["resolved_by"] == "library"
    # Saying it twice records it once (same message id).
    configured.run(payload)
    assert len([e for e in sandbox.state("cention")["errands"]
                if (e["extradata"] or {}).get("conversation_id") == sender]) == 1


@needs_operator_settings
def test_recording_failure_still_thanks_the_customer(
    configured: ActionServer, sandbox: Sandbox,
) -> None:
    sandbox.inject("cention", {"status": 503, "path": "c3_new_errands"})
    reply = call(configured, RESOLVED, new_sender(), "that helped",
                 {"cention_answered_question_id": "8"})
    assert responses(reply) == ["utter_cention_glad_it_helped"]
    assert slot_events(reply) == {"cention_answered_question_id": None}


# -- the domain ------------------------------------------------------------------------------
def test_domain_declares_the_follow_ups(server: ActionServer) -> None:
    domain = load_domain()
    actions = {STATUS, START, WITHDRAW, VALIDATE, RESOLVED}
    assert actions <= set(domain["actions"]) and actions <= set(server.actions())
    assert {"cention_errand_status", "cention_withdraw_errand", "cention_resolved"} <= set(
        domain["intents"])
    assert domain["forms"][WITHDRAW_FORM]["required_slots"] == ["cention_withdraw_confirmation"]
    for slot in ("cention_answered_question_id", "cention_errand_number",
                 "cention_withdraw_errand_id", "cention_withdraw_confirmation"):
        assert domain["slots"][slot]["mappings"] == [{"type": "custom"}], slot
    ask = domain["responses"]["utter_ask_cention_withdraw_confirmation"][0]
    assert [b["payload"] for b in ask["buttons"]] == ["yes", "no"]

"""The outbox through the real action server, the simulators and a fake Rasa: a submission
that meets a vendor outage is saved, the customer hears so, the worker files it once when
the vendor is back, Rasa is asked once to run the vendor's update intent, and the update
action shows the reference to that conversation only."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rasa_service_desk.outbox import NOTICES, notice_key
from rasa_service_desk.outbox.records import RECORDS
from tests.outbox.cases import (
    BENTI,
    CASES,
    CENTION,
    NEW_LOOP,
    Case,
    benti_tickets,
    id_of,
    loop_loops,
    marker_for,
    reference_of,
    submit,
    update,
)
from tests.outbox.conftest import (
    RASA_TOKEN,
    FakeRasa,
    all_entries,
    entries_of,
    held_messages,
    outbox_env,
    stored,
    wait_for,
)
from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer, Sandbox, running_action_server


@pytest.fixture(scope="module")
def state_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('outbox') / 'state.sqlite3'}"


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> Iterator[ActionServer]:
    with running_action_server(outbox_env(sandbox.url, fake_rasa.url, state_url)) as running:
        yield running


@pytest.fixture(autouse=True)
def settled(state_url: str) -> Iterator[None]:
    """After each test nothing waits any more, so no leftover attempt takes the next test's
    injected faults (the simulators are shared)."""
    yield
    wait_for(lambda: not [entry for entry in asyncio.run(all_entries(state_url)).values()
                          if entry.get("state") == "pending"],
             "every queued submission of the test is filed")


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_submission_queued_during_an_outage_is_filed_once_and_announced_once(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str,
        case: Case) -> None:
    sender, marker = uuid.uuid4().hex, marker_for(case)
    # Down for the customer's attempt and the worker's first one.
    sandbox.inject(case.vendor, {**case.fault, "status": 503, "times": 2})
    reply = submit(server, case, sender, marker)
    assert responses(reply) == [case.queued]
    assert slot_events(reply) == case.cleared  # no id, no pending_action: nothing to retry
    [entry] = entries_of(state_url, sender).values()
    assert entry["state"] == "pending" and entry["operation"] and entry["attempts"] == 1

    wait_for(lambda: fake_rasa.calls_for(sender), "Rasa is told about the submission")
    wait_for(lambda: not entries_of(state_url, sender), "the entry is done with")
    [filed] = case.filed(sandbox, marker)
    assert fake_rasa.calls_for(sender) == [{"conversation": sender, "intent": case.intent,
                                            "output_channel": "latest", "token": RASA_TOKEN}]

    announced = update(server, case, sender)
    assert responses(announced) == case.confirmed
    assert slot_events(announced)[case.id_slot] == id_of(case, filed)
    if case is BENTI:
        assert announced["responses"][0]["reference"] == reference_of(filed)
    if case is CENTION:
        assert announced["responses"][0]["errand_id"] == filed["id"]
    # Shown once; and a customer typing the intent elsewhere is shown nothing.
    assert update(server, case, sender)["responses"] == []
    assert update(server, case, uuid.uuid4().hex)["responses"] == []
    assert len(case.filed(sandbox, marker)) == 1


def test_a_repeat_while_queued_hears_the_same_and_after_delivery_gets_the_reference(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    sender, marker = uuid.uuid4().hex, marker_for(BENTI)
    sandbox.inject("benti", {**BENTI.fault, "status": 503, "times": 2})
    assert responses(submit(server, BENTI, sender, marker)) == [BENTI.queued]
    again = submit(server, BENTI, sender, marker)
    assert responses(again) == [BENTI.queued]
    assert len(entries_of(state_url, sender)) == 1
    assert benti_tickets(sandbox, marker) == []

    wait_for(lambda: fake_rasa.calls_for(sender), "Rasa is told about the ticket")
    [ticket] = benti_tickets(sandbox, marker)
    calls = sandbox.calls("benti")
    repeat = submit(server, BENTI, sender, marker)
    assert responses(repeat) == ["utter_benti_ticket_created"]
    assert repeat["responses"][0]["reference"] == reference_of(ticket)
    assert slot_events(repeat)["benti_ticket_id"] == ticket["full_uuid"]
    assert sandbox.calls("benti") == calls  # answered from the record
    assert len(benti_tickets(sandbox, marker)) == 1
    assert len(fake_rasa.calls_for(sender)) == 1


def test_a_429_with_retry_after_is_not_tried_again_before_it(
        server: ActionServer, sandbox: Sandbox, state_url: str) -> None:
    sender, marker = uuid.uuid4().hex, marker_for(BENTI)
    sandbox.inject("benti", {**BENTI.fault, "status": 429, "headers": {"Retry-After": "4"}})
    before = time.time()
    assert responses(submit(server, BENTI, sender, marker)) == [BENTI.queued]
    [(key, entry)] = entries_of(state_url, sender).items()
    assert entry["next_attempt_at"] >= before + 4
    assert "429" in entry["last_error"]
    assert (stored(state_url, RECORDS, key) or {}).get("state") == "queued"
    wait_for(lambda: benti_tickets(sandbox, marker), "the ticket is filed after the wait")
    assert time.time() >= before + 4


def test_loop_processed_then_502_is_found_not_created_twice(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    sender, marker = uuid.uuid4().hex, marker_for(NEW_LOOP)
    sandbox.inject("loop", {**NEW_LOOP.fault, "status": 502, "after": True})
    reply = submit(server, NEW_LOOP, sender, marker)
    assert responses(reply) == [NEW_LOOP.queued]
    [entry] = entries_of(state_url, sender).values()
    assert entry["uncertain_since"] is not None
    [loop] = loop_loops(sandbox, marker)  # Loop did create it

    wait_for(lambda: fake_rasa.calls_for(sender), "Rasa is told about the loop")
    assert loop_loops(sandbox, marker) == [loop]
    announced = update(server, NEW_LOOP, sender)
    assert responses(announced) == ["utter_loop_created"]
    assert slot_events(announced)["loop_loop_id"] == loop["id"]


def test_rasa_down_at_notify_time_is_told_later_and_collected_messages_are_held(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    sender, marker = uuid.uuid4().hex, marker_for(BENTI)
    fake_rasa.stop()
    try:
        sandbox.inject("benti", {**BENTI.fault, "status": 503})
        assert responses(submit(server, BENTI, sender, marker)) == [BENTI.queued]
        [ticket] = wait_for(lambda: benti_tickets(sandbox, marker), "the ticket is filed")

        def told_later() -> dict[str, Any] | None:
            entries = list(entries_of(state_url, sender).values())
            return next((e for e in entries if e.get("pushes")), None)

        waiting = wait_for(told_later, "a failed push to Rasa is recorded")
        assert waiting["state"] == "delivered" and waiting["notified"] is False
        assert "payload" not in waiting  # the customer's data is gone once filed
    finally:
        fake_rasa.messages = [{"text": f"Your ticket {marker} is filed."}]
        fake_rasa.start()
    try:
        wait_for(lambda: not entries_of(state_url, sender), "Rasa is told once it is back")
    finally:
        fake_rasa.messages = None
    assert len(fake_rasa.calls_for(sender)) == 1
    assert held_messages(state_url, sender) == [
        {"recipient_id": sender, "text": f"Your ticket {marker} is filed."}]
    # The notice waited too: the update action shows the reference.
    announced = update(server, BENTI, sender)
    assert announced["responses"][0]["reference"] == reference_of(ticket)
    assert stored(state_url, NOTICES, notice_key(sender, "benti")) is None


def test_an_external_intent_is_never_a_form_answer(server: ActionServer) -> None:
    def validate(text: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return server.run(webhook_payload(
            "validate_benti_ticket_form", text=text, metadata=metadata,
            intent="benti_submission_update" if metadata else "",
            slots={"customer_name": "Ada", "customer_email": "ada@example.com",
                   "benti_ticket_title": "Printer"},
            active_loop="benti_ticket_form", requested_slot="benti_ticket_description"))

    for text, metadata in [("EXTERNAL: benti_submission_update", {"is_external": True}),
                           ("EXTERNAL: benti_submission_update", None)]:
        assert "benti_ticket_description" not in slot_events(validate(text, metadata))
    # The same form takes a customer's words as the answer.
    typed = validate("It smokes when I print.", None)
    assert slot_events(typed)["benti_ticket_description"] == "It smokes when I print."


def test_the_update_actions_are_served(server: ActionServer) -> None:
    assert {c.update_action for c in CASES.values()} <= set(server.actions())



def test_a_retry_after_met_by_the_worker_is_waited_for(
        server: ActionServer, sandbox: Sandbox, state_url: str) -> None:
    """The worker's own attempt meets a 429 asking for 3 s: the next attempt is no sooner,
    though that is longer than OUTBOX_MAX_BACKOFF_SECONDS (1 s here)."""
    sender, marker = uuid.uuid4().hex, marker_for(BENTI)
    sandbox.inject("benti", {**BENTI.fault, "status": 503},
                   {**BENTI.fault, "status": 429, "headers": {"Retry-After": "3"}})
    assert responses(submit(server, BENTI, sender, marker)) == [BENTI.queued]

    def rate_limited() -> tuple[float, dict[str, Any]] | None:
        seen = time.time()
        entries = list(entries_of(state_url, sender).values())
        return next(((seen, e) for e in entries if e.get("attempts") == 2), None)

    seen, entry = wait_for(rate_limited, "the worker's attempt meets the 429")
    assert "429" in entry["last_error"]
    assert entry["next_attempt_at"] - seen >= 2.0  # 3 s after an attempt made before `seen`
    wait_for(lambda: benti_tickets(sandbox, marker), "the ticket is filed after the wait")


def test_a_refusal_on_a_later_attempt_fails_the_submission_at_once(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    sender, marker = uuid.uuid4().hex, marker_for(BENTI)
    sandbox.inject("benti", {**BENTI.fault, "status": 503},
                   {**BENTI.fault, "status": 422, "body": {"error": "creator is blocked"}})
    assert responses(submit(server, BENTI, sender, marker)) == [BENTI.queued]
    wait_for(lambda: fake_rasa.calls_for(sender), "Rasa is told the ticket was refused")
    [entry] = entries_of(state_url, sender).values()
    assert entry["state"] == "failed" and entry["attempts"] == 2
    assert "422" in entry["last_error"]
    assert responses(update(server, BENTI, sender)) == ["utter_benti_ticket_not_filed"]
    assert benti_tickets(sandbox, marker) == []
    # The record was released: the same ticket asked for again is sent anew.
    again = submit(server, BENTI, sender, marker)
    assert responses(again) == ["utter_benti_ticket_created"]
    assert len(benti_tickets(sandbox, marker)) == 1

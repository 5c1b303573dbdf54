"""Exactly-once submissions through the real action server and the simulators: a ticket
asked for many times at once, or again after its reply to Rasa was lost, is filed once and
every answer quotes the same reference; a loop whose creation had an unknown outcome is
found at Loop instead of created twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer, Sandbox, running_action_server

CREATE = "action_benti_create_ticket"
RETRY = "action_retry_pending"
SLOTS = {
    "customer_name": "Grace Hopper",
    "customer_email": "grace.hopper@example.com",
    "benti_ticket_title": "Invoice twice",
    "benti_ticket_description": "I was charged twice for order 4411.",
}


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionServer]:
    """Its own state file, and a simulator that answers slowly enough for requests to
    overlap."""
    state = tmp_path_factory.mktemp("submissions") / "state.sqlite3"
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "STATE_URL": f"sqlite:///{state}",
                                "LOOP_TIMEOUT_SECONDS": "1"}) as running:
        yield running


def tickets_of(sandbox: Sandbox, title: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.state("benti")["tickets"] if t.get("title") == title]


def create(server: ActionServer, sender: str, **slots: Any) -> dict[str, Any]:
    return server.run(webhook_payload(CREATE, sender_id=sender, slots={**SLOTS, **slots}))


def reference(reply: dict[str, Any]) -> str:
    [message] = reply["responses"]
    assert message["response"] == "utter_benti_ticket_created", reply
    return str(message["reference"])


def test_fifty_identical_requests_file_one_ticket(server: ActionServer,
                                                  sandbox: Sandbox) -> None:
    sender, title = uuid.uuid4().hex, f"Double charge {uuid.uuid4().hex[:6]}"
    sandbox.latency("benti", 0.2)
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            replies = list(pool.map(lambda _: create(server, sender, benti_ticket_title=title),
                                    range(50)))
    finally:
        sandbox.latency("benti", 0.0)
    assert len(tickets_of(sandbox, title)) == 1
    assert len({reference(reply) for reply in replies}) == 1


def test_a_repeat_is_answered_from_the_record_and_new_text_is_a_new_ticket(
        server: ActionServer, sandbox: Sandbox) -> None:
    sender, title = uuid.uuid4().hex, f"Parcel lost {uuid.uuid4().hex[:6]}"
    first = create(server, sender, benti_ticket_title=title)
    calls = sandbox.calls("benti")
    again = create(server, sender, benti_ticket_title=title)
    assert reference(again) == reference(first)
    assert sandbox.calls("benti") == calls  # nothing sent the second time
    other = create(server, sender, benti_ticket_title=title,
                   benti_ticket_description="And the replacement too.")
    assert reference(other) != reference(first)
    # The same text in another conversation is another customer's ticket.
    elsewhere = create(server, uuid.uuid4().hex, benti_ticket_title=title)
    assert reference(elsewhere) not in {reference(first), reference(other)}
    assert len(tickets_of(sandbox, title)) == 3


def test_try_again_after_a_lost_reply_gives_the_reference_without_a_second_ticket(
        server: ActionServer, sandbox: Sandbox) -> None:
    sender, title = uuid.uuid4().hex, f"Refund {uuid.uuid4().hex[:6]}"
    filed = create(server, sender, benti_ticket_title=title)
    # Rasa never received that reply: its slots are still the form's, no ticket id, nothing
    # pending. The customer, who saw nothing, says "try again".
    slots = {**SLOTS, "benti_ticket_title": title, "benti_ticket_id": None,
             "pending_action": None}
    retry = server.run(webhook_payload(RETRY, sender_id=sender, slots=slots))
    assert responses(retry) == ["utter_retrying"]
    assert retry["events"][-1] == {**retry["events"][-1], "event": "followup", "name": CREATE}
    again = create(server, sender, benti_ticket_title=title)
    assert reference(again) == reference(filed)
    assert slot_events(again)["benti_ticket_title"] is None
    assert len(tickets_of(sandbox, title)) == 1
    # Once Rasa holds the ticket id, "try again" has nothing left to do.
    done = {**slots, "benti_ticket_id": slot_events(again)["benti_ticket_id"]}
    idle = server.run(webhook_payload(RETRY, sender_id=sender, slots=done))
    assert responses(idle) == ["utter_nothing_to_retry"]


def test_a_failed_attempt_is_sent_again(server: ActionServer, sandbox: Sandbox) -> None:
    sender, title = uuid.uuid4().hex, f"Login {uuid.uuid4().hex[:6]}"
    sandbox.inject("benti", {"status": 500, "path": "/tickets", "method": "POST"})
    failed = create(server, sender, benti_ticket_title=title)
    assert responses(failed) == ["utter_vendor_unavailable"]
    assert tickets_of(sandbox, title) == []
    assert reference(create(server, sender, benti_ticket_title=title))
    assert len(tickets_of(sandbox, title)) == 1


def test_a_loop_asked_for_at_once_from_two_tabs_is_created_once(server: ActionServer,
                                                                 sandbox: Sandbox) -> None:
    """Loop has no de-duplication of its own: the record is all that stands between a
    double send and two loops for the staff to work."""
    sender = uuid.uuid4().hex
    description = f"The shower in room {uuid.uuid4().int % 900 + 100} has no hot water."
    slots = {"loop_description": description, "customer_email": "jason@example.com"}
    sandbox.latency("loop", 0.2)
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(lambda _: server.run(webhook_payload(
                "action_loop_create_loop", sender_id=sender, slots=slots)), range(20)))
    finally:
        sandbox.latency("loop", 0.0)
    assert [responses(reply) for reply in replies] == [["utter_loop_created"]] * 20
    assert len({slot_events(reply)["loop_loop_id"] for reply in replies}) == 1
    assert [loop["description"] for loop in sandbox.state("loop")["loops"]].count(description) == 1


#: Loop created the loop, then the reply went wrong on the way back.
AMBIGUOUS = {
    "gateway-502-page": {"status": 502, "malformed": True},
    "504": {"status": 504},
    "gateway-503": {"status": 503},
    "malformed-json": {"malformed": True},
    "empty-body": {"empty": True},
    "dropped-connection": {"drop": True},
    "late-reply": {"delay": 1.5},
}


@pytest.mark.parametrize("fault", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_try_again_after_an_unknown_outcome_finds_the_loop_instead_of_a_second_one(
        server: ActionServer, sandbox: Sandbox, fault: dict[str, Any]) -> None:
    sender = uuid.uuid4().hex
    description = f"No towels in room {uuid.uuid4().int % 900 + 100}, please bring some."
    slots = {"loop_description": description, "customer_email": "guest@example.com"}
    sandbox.inject("loop", {**fault, "after": True, "path": "/loops", "method": "POST"})
    failed = server.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                        slots=slots))
    assert responses(failed) == ["utter_vendor_unavailable"]
    [filed] = [loop for loop in sandbox.state("loop")["loops"]
               if loop["description"] == description]

    again = server.run(webhook_payload(
        "action_loop_create_loop", sender_id=sender,
        slots={**slots, "pending_action": "action_loop_create_loop"}))
    assert responses(again) == ["utter_loop_created"]
    assert slot_events(again)["loop_loop_id"] == filed["id"]
    assert [loop["description"] for loop in sandbox.state("loop")["loops"]].count(
        description) == 1


def test_after_an_unknown_outcome_a_loop_that_never_arrived_is_created(
        server: ActionServer, sandbox: Sandbox) -> None:
    """The same failures before Loop processed the request: the lookup finds nothing and
    the loop is created on "try again"."""
    sender = uuid.uuid4().hex
    description = f"The lift on floor {uuid.uuid4().int % 90 + 10} is stuck."
    slots = {"loop_description": description, "customer_email": "guest@example.com"}
    sandbox.inject("loop", {"status": 504, "path": "/loops", "method": "POST"})
    failed = server.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                        slots=slots))
    assert responses(failed) == ["utter_vendor_unavailable"]
    again = server.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                       slots=slots))
    assert responses(again) == ["utter_loop_created"]
    assert [loop["description"] for loop in sandbox.state("loop")["loops"]].count(
        description) == 1

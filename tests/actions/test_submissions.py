"""Exactly-once submissions through the real action server and the simulators: a ticket
asked for many times at once, or again after its reply to Rasa was lost, is filed once and
every answer quotes the same reference; a loop whose creation had an unknown outcome is
found at Loop instead of created twice, whether the customer says "try again" (without the
outbox, `OUTBOX_ENABLED=0`) or the outbox sends it later (the default)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rasa_service_desk.outbox import DELIVERED, NAMESPACE
from rasa_service_desk.state import open_store
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
def state_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('submissions') / 'state.sqlite3'}"


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, state_url: str) -> Iterator[ActionServer]:
    """Its own state file (where a test can see the outbox), and a simulator that answers
    slowly enough for requests to overlap; the outbox (on, the default) looks every 0.2 s
    and waits at most 1 s between two attempts."""
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "STATE_URL": state_url, "LOOP_TIMEOUT_SECONDS": "1",
                                "OUTBOX_POLL_SECONDS": "0.2",
                                "OUTBOX_MAX_BACKOFF_SECONDS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def try_again_server(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[ActionServer]:
    """The same without the outbox (`OUTBOX_ENABLED=0`, still supported): an outage is told
    to the customer, who says "try again"."""
    state = tmp_path_factory.mktemp("try-again") / "state.sqlite3"
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "STATE_URL": f"sqlite:///{state}",
                                "LOOP_TIMEOUT_SECONDS": "1",
                                "OUTBOX_ENABLED": "0"}) as running:
        yield running


def outbox_entry(state_url: str, sender: str) -> dict[str, Any] | None:
    """The outbox's entry for this conversation's submission, if any."""
    async def read() -> dict[str, Any] | None:
        store = open_store(state_url)
        try:
            for key in await store.keys(NAMESPACE):
                entry = await store.get(NAMESPACE, key)
                if entry is not None and entry.get("sender_id") == sender:
                    return entry
            return None
        finally:
            await store.close()
    return asyncio.run(read())


def delivered(state_url: str, sender: str, timeout: float = 20.0) -> dict[str, Any] | None:
    """The outbox's entry for `sender` once it is delivered (None if not in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = outbox_entry(state_url, sender)
        if entry is not None and entry["state"] == DELIVERED:
            return entry
        time.sleep(0.1)
    return None


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


def test_a_failed_attempt_is_sent_again(try_again_server: ActionServer,
                                        sandbox: Sandbox) -> None:
    sender, title = uuid.uuid4().hex, f"Login {uuid.uuid4().hex[:6]}"
    sandbox.inject("benti", {"status": 500, "path": "/tickets", "method": "POST"})
    failed = create(try_again_server, sender, benti_ticket_title=title)
    assert responses(failed) == ["utter_vendor_unavailable"]
    assert tickets_of(sandbox, title) == []
    assert reference(create(try_again_server, sender, benti_ticket_title=title))
    assert len(tickets_of(sandbox, title)) == 1


def test_a_failed_attempt_is_queued_and_a_repeat_meanwhile_files_nothing_more(
        server: ActionServer, sandbox: Sandbox, state_url: str) -> None:
    """With the outbox: the ticket waits in it, asking again while it waits is told the
    same, and the outbox files it once."""
    sender, title = uuid.uuid4().hex, f"Login {uuid.uuid4().hex[:6]}"
    sandbox.inject("benti", {"status": 500, "times": 2, "path": "/tickets", "method": "POST"})
    queued = create(server, sender, benti_ticket_title=title)
    assert responses(queued) == ["utter_benti_ticket_queued"]
    assert tickets_of(sandbox, title) == []
    again = create(server, sender, benti_ticket_title=title)
    assert responses(again) in (["utter_benti_ticket_queued"],
                                ["utter_benti_ticket_created"])  # if the outbox was first
    entry = delivered(state_url, sender)
    assert entry is not None
    [ticket] = tickets_of(sandbox, title)
    assert entry["outcome"]["id"] == ticket["full_uuid"]


def test_a_loop_asked_for_at_once_from_two_tabs_is_created_once(server: ActionServer,
                                                                 sandbox: Sandbox) -> None:
    """Loop has no de-duplication of its own: the record is all that stands between a
    double send and two loops for the staff to work."""
    sender = uuid.uuid4().hex
    description = f"The shower in room {uuid.uuid4().hex[:10]} has no hot water."
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
        try_again_server: ActionServer, sandbox: Sandbox, fault: dict[str, Any]) -> None:
    sender = uuid.uuid4().hex
    description = f"No towels in room {uuid.uuid4().hex[:10]}, please bring some."
    slots = {"loop_description": description, "customer_email": "guest@example.com"}
    sandbox.inject("loop", {**fault, "after": True, "path": "/loops", "method": "POST"})
    failed = try_again_server.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                                  slots=slots))
    assert responses(failed) == ["utter_vendor_unavailable"]
    [filed] = [loop for loop in sandbox.state("loop")["loops"]
               if loop["description"] == description]

    again = try_again_server.run(webhook_payload(
        "action_loop_create_loop", sender_id=sender,
        slots={**slots, "pending_action": "action_loop_create_loop"}))
    assert responses(again) == ["utter_loop_created"]
    assert slot_events(again)["loop_loop_id"] == filed["id"]
    assert [loop["description"] for loop in sandbox.state("loop")["loops"]].count(
        description) == 1


@pytest.mark.parametrize("fault", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_the_outbox_after_an_unknown_outcome_finds_the_loop_instead_of_a_second_one(
        server: ActionServer, sandbox: Sandbox, state_url: str, fault: dict[str, Any]) -> None:
    """With the outbox: the loop is queued, and the outbox, unsure, finds it at Loop (by the
    customer's email) instead of sending it again: one loop, its id as the outcome."""
    sender = uuid.uuid4().hex
    description = f"No soap in room {uuid.uuid4().hex[:10]}, please bring some."
    slots = {"loop_description": description, "customer_email": "guest@example.com"}
    sandbox.inject("loop", {**fault, "after": True, "path": "/loops", "method": "POST"})
    queued = server.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                        slots=slots))
    assert responses(queued) == ["utter_loop_create_queued"]
    assert slot_events(queued) == {"loop_description": None, "loop_title": None}
    [filed] = [loop for loop in sandbox.state("loop")["loops"]
               if loop["description"] == description]

    entry = delivered(state_url, sender)

    assert entry is not None
    assert entry["outcome"]["id"] == filed["id"]
    assert [loop["description"] for loop in sandbox.state("loop")["loops"]].count(
        description) == 1


@pytest.mark.parametrize("outbox", [False, True], ids=["try-again", "outbox"])
def test_after_an_unknown_outcome_a_loop_that_never_arrived_is_created(
        server: ActionServer, try_again_server: ActionServer, sandbox: Sandbox,
        state_url: str, outbox: bool) -> None:
    """The same failures before Loop processed the request: the lookup finds nothing and
    the loop is created, on "try again" or by the outbox."""
    sender = uuid.uuid4().hex
    description = f"The lift on floor {uuid.uuid4().hex[:10]} is stuck."
    slots = {"loop_description": description, "customer_email": "guest@example.com"}
    sandbox.inject("loop", {"status": 504, "path": "/loops", "method": "POST"})
    running = server if outbox else try_again_server
    failed = running.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                         slots=slots))
    if outbox:
        assert responses(failed) == ["utter_loop_create_queued"]
        entry = delivered(state_url, sender)
        assert entry is not None
        [created] = [loop for loop in sandbox.state("loop")["loops"]
                     if loop["description"] == description]
        assert entry["outcome"]["id"] == created["id"]
        return
    assert responses(failed) == ["utter_vendor_unavailable"]
    again = running.run(webhook_payload("action_loop_create_loop", sender_id=sender,
                                        slots=slots))
    assert responses(again) == ["utter_loop_created"]
    assert [loop["description"] for loop in sandbox.state("loop")["loops"]].count(
        description) == 1

"""Loops from the conversation (`loop_feedback_form`, `action_loop_create_loop`) through the
real action server against the simulator."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer, Sandbox

FORM = "loop_feedback_form"
DESCRIPTION = "The air conditioning in my room is broken."


def form_turn(server: ActionServer, slots: dict[str, Any], requested: str, text: str
              ) -> dict[str, Any]:
    """The customer answers `requested`; Rasa extracted it and runs the form's validator."""
    payload = webhook_payload("validate_loop_feedback_form", slots={**slots, requested: text},
                              text=text, active_loop=FORM, requested_slot=requested)
    payload["tracker"]["events"].append(
        {"event": "slot", "timestamp": time.time(), "name": requested, "value": text})
    return server.run(payload)


def create(server: ActionServer, slots: dict[str, Any]) -> dict[str, Any]:
    return server.run(webhook_payload("action_loop_create_loop", slots=slots))


@pytest.fixture
def loop_sandbox(sandbox: Sandbox) -> Sandbox:
    sandbox.reset("loop")
    return sandbox


def test_the_form_asks_the_description_then_one_contact(action_server: ActionServer) -> None:
    reply = form_turn(action_server, {}, "loop_description", "ok")
    assert responses(reply) == ["utter_invalid_text"]
    assert reply["responses"][0]["min_length"] == 3
    assert slot_events(reply)["loop_description"] is None

    reply = form_turn(action_server, {}, "loop_description", f"  {DESCRIPTION}  ")
    assert slot_events(reply)["loop_description"] == DESCRIPTION
    # Rasa goes on to ask the contact (named by the validator, which leaves out the location
    # question when the customer does not choose it).
    assert slot_events(reply).get("requested_slot", "customer_email") == "customer_email"

    slots = {"loop_description": DESCRIPTION}
    reply = form_turn(action_server, slots, "customer_email", "call me maybe")
    assert responses(reply) == ["utter_loop_invalid_contact"]
    assert slot_events(reply)["customer_email"] is None

    reply = form_turn(action_server, slots, "customer_email", "Jason@Example.com")
    assert slot_events(reply) == {"customer_email": "Jason@example.com",
                                  "requested_slot": None}  # the form is done

    reply = form_turn(action_server, slots, "customer_email", "+44 20 7946 0958")
    assert slot_events(reply) == {"customer_email": None, "customer_phone": "+442079460958",
                                  "requested_slot": None}

    reply = form_turn(action_server, slots, "customer_email", "skip")
    assert slot_events(reply) == {"customer_email": None, "loop_contact_skipped": True,
                                  "requested_slot": None}


def test_a_known_contact_is_not_asked_again(action_server: ActionServer) -> None:
    reply = form_turn(action_server, {"customer_phone": "+16135551234"}, "loop_description",
                      DESCRIPTION)
    assert slot_events(reply)["requested_slot"] is None


def test_a_loop_is_created_with_the_customer_details(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    slots = {"loop_description": DESCRIPTION, "loop_title": "Broken AC",
             "customer_name": "Jason", "customer_email": "jason@example.com",
             "customer_phone": "not a number"}
    reply = create(action_server, slots)
    assert responses(reply) == ["utter_loop_created"]
    [loop] = loop_sandbox.state("loop")["loops"]
    [user] = loop_sandbox.state("loop")["users"]
    assert (loop["description"], loop["title"], loop["source"]) == (
        DESCRIPTION, "Broken AC", "chatbot")
    assert loop["location"]["id"] == "529652b0121d5fa206011a97"
    assert loop["creatorId"] == user["id"]
    assert (user["name"], user["email"], user.get("sms")) == ("Jason", "jason@example.com", None)
    events = slot_events(reply)
    assert events["loop_loop_id"] == loop["id"] and events["loop_loop_url"] == loop["url"]
    assert events["loop_description"] is None and events["loop_title"] is None


def test_an_anonymous_loop_has_no_user(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    reply = create(action_server, {"loop_description": DESCRIPTION})
    assert responses(reply) == ["utter_loop_created"]
    assert loop_sandbox.state("loop")["loops"][0]["creatorId"] is None
    assert loop_sandbox.state("loop")["users"] == []


def test_without_a_description_nothing_is_sent(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    reply = create(action_server, {"loop_description": " "})
    assert responses(reply) == ["utter_loop_description_missing"]
    assert "POST /loop/api/v1/loops" not in loop_sandbox.calls("loop")


@pytest.mark.parametrize("fault, response, calls", [
    ({"status": 400, "body": {"error": "description too long"}}, "utter_loop_create_rejected", 1),
    # A 503 may come from a gateway after Loop created the loop: never re-sent on its own.
    ({"status": 503}, "utter_vendor_unavailable", 1),
    ({"status": 502}, "utter_vendor_unavailable", 1),
    ({"status": 429, "times": 3}, "utter_vendor_busy", 3),
    ({"malformed": True}, "utter_vendor_unavailable", 1),
    ({"status": 403}, "utter_integration_unavailable", 1),
])
def test_a_failed_loop_keeps_the_slots(
    loop_try_again_server: ActionServer, loop_sandbox: Sandbox, fault: dict[str, Any],
    response: str, calls: int,
) -> None:
    """Without the outbox (`OUTBOX_ENABLED=0`) every failure is told and "try again" opens
    the loop; with it, the rejections and refusals still are."""
    loop_sandbox.inject("loop", {**fault, "path": "/loops", "method": "POST"})
    description = f"{DESCRIPTION} ({uuid.uuid4().hex[:8]})"
    slots = {"loop_description": description, "customer_email": "jason@example.com"}
    reply = create(loop_try_again_server, slots)
    assert responses(reply) == [response]
    assert slot_events(reply) == {"pending_action": "action_loop_create_loop"}
    assert loop_sandbox.calls("loop")["POST /loop/api/v1/loops"] == calls
    reply = create(loop_try_again_server, {**slots, "pending_action": "action_loop_create_loop"})
    assert responses(reply) == ["utter_loop_created"]
    assert slot_events(reply)["pending_action"] is None
    assert [loop["description"] for loop in loop_sandbox.state("loop")["loops"]
            if loop["description"] == description] == [description]


@pytest.mark.parametrize("fault", [
    {"status": 503}, {"status": 502}, {"status": 429, "times": 3}, {"malformed": True},
], ids=["503", "502", "429", "malformed"])
def test_a_loop_during_an_outage_is_queued_and_opened_later(
    loop_outbox_server: ActionServer, loop_sandbox: Sandbox, fault: dict[str, Any],
) -> None:
    """The default: Loop down or busy, the customer hears the feedback will be passed on,
    the description is cleared like after a success (no "try again"), and the outbox
    opens the loop, once, when Loop is back."""
    loop_sandbox.inject("loop", {**fault, "path": "/loops", "method": "POST"})
    description = f"{DESCRIPTION} ({uuid.uuid4().hex[:8]})"
    slots = {"loop_description": description, "customer_email": "jason@example.com"}

    reply = create(loop_outbox_server, slots)

    assert responses(reply) == ["utter_loop_create_queued"]
    assert slot_events(reply) == {"loop_description": None, "loop_title": None}
    deadline = time.monotonic() + 20
    opened: list[Any] = []
    while not opened and time.monotonic() < deadline:
        opened = [loop for loop in loop_sandbox.state("loop")["loops"]
                  if loop["description"] == description]
        time.sleep(0.1)
    assert len(opened) == 1

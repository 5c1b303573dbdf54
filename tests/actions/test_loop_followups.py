"""Loop follow-ups through the real action server against the simulator: the status of the
customer's loops, the choice of location, the invite link, the survey's reference, and the
reference bot's offer of the survey after a Cention agent's answer.

The options these features add to `LoopSettings` (`LOOP_LET_CUSTOMER_CHOOSE_LOCATION`,
`LOOP_VERIFIED_EMAIL_METADATA_KEY`, `LOOP_LOCATIONS_CACHE_SECONDS`) are read by the actions
with defaults; `options_action_server` starts an action server whose `LoopSettings` declares
them (a no-op once `LoopSettings` does), so the environment variables take effect.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from rasa_service_desk.sandbox.loop import LOBBY, RESTAURANT
from tests.support.rasa_payloads import responses, slot_events, user_event, webhook_payload
from tests.support.servers import (
    ActionServer,
    Sandbox,
    running_action_server,
)

LOCATION_1300 = "529652b0121d5fa206011a97"
LOCATION_1200 = "529652b0121d5fa206011a98"
TITLE_1300 = "Andros Island Bahamas"
TITLE_1200 = "Costa Rica Salinas Bay"
Q_READY, Q_AGAIN, Q_IMPROVE = (q["categoryId"] for q in LOBBY["questions"])
Q_SWIFT, Q_FOOD, Q_CLEAN, Q_ELSE = (q["categoryId"] for q in RESTAURANT["questions"])
EMAIL = "jason@example.com"
VERIFIED_KEY = "user.email"

@contextmanager
def options_action_server(env: Mapping[str, str], cwd: Path | None = None
                          ) -> Iterator[ActionServer]:
    """`python -m rasa_sdk --actions actions` with the follow-up options in `env`."""
    with running_action_server(env, cwd=cwd) as server:
        yield server


def options_env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return {"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
            "LOOP_LET_CUSTOMER_CHOOSE_LOCATION": "true",
            "LOOP_VERIFIED_EMAIL_METADATA_KEY": VERIFIED_KEY,
            "OFFER_SURVEY_AFTER_AGENT_ANSWER": "1", "LOOP_TIMEOUT_SECONDS": "2", **extra}


@pytest.fixture(scope="module")
def chooser(sandbox: Sandbox) -> Iterator[ActionServer]:
    """Customers choose the location; a verified email comes in the metadata; the bot offers
    the survey after an agent's answer."""
    with options_action_server(options_env(sandbox)) as server:
        yield server


@pytest.fixture
def loop_sandbox(sandbox: Sandbox) -> Sandbox:
    sandbox.reset("loop")
    return sandbox


def run(server: ActionServer, action: str, slots: dict[str, Any] | None = None,
        **kwargs: Any) -> dict[str, Any]:
    return server.run(webhook_payload(action, slots=slots, **kwargs))


def form_turn(server: ActionServer, form: str, slots: dict[str, Any], requested: str | None,
              text: str = "hello") -> dict[str, Any]:
    """Rasa runs the form's validator: on activation (`requested` None) or after the
    customer answered `requested` with `text`."""
    return run(server, f"validate_{form}", slots=slots, text=text, active_loop=form,
               requested_slot=requested)


def set_state(sandbox: Sandbox, **settings: Any) -> None:
    requests.post(f"{sandbox.url}/loop/_sandbox/settings", json=settings,
                  timeout=10).raise_for_status()


def loop_slots(slots: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    return {**slots, **slot_events(reply)}


# -- the location -------------------------------------------------------------------------
def test_choosing_off_asks_no_location_and_ignores_a_stray_slot(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    for form, first in (("loop_survey_form", "loop_answer"),
                        ("loop_feedback_form", "loop_description")):
        reply = form_turn(action_server, form, {}, None)
        assert slot_events(reply).get("requested_slot") == first, form
    reply = form_turn(action_server, "loop_invite_form", {}, None)
    assert slot_events(reply) == {"requested_slot": None}  # the form completes at once
    reply = run(action_server, "action_loop_create_loop",
                {"loop_description": "The lift is stuck.", "loop_location": LOCATION_1200})
    assert responses(reply) == ["utter_loop_created"]
    assert loop_sandbox.state("loop")["loops"][0]["location"]["id"] == LOCATION_1300
    assert "GET /loop/api/v1/locations" not in loop_sandbox.calls("loop")


def test_the_customer_picks_the_location_by_button_or_by_name(
    chooser: ActionServer, loop_sandbox: Sandbox
) -> None:
    form = "loop_feedback_form"
    reply = form_turn(chooser, form, {}, None)
    # Every slot of the domain is needed: the validator lets Rasa ask the first one.
    assert slot_events(reply).get("requested_slot", "loop_location") == "loop_location"
    asked = run(chooser, "action_ask_loop_location", active_loop=form,
                requested_slot="loop_location")
    [message] = asked["responses"]
    assert message["response"] == "utter_loop_ask_location"
    assert message["buttons"] == [{"title": TITLE_1300, "payload": TITLE_1300},
                                  {"title": TITLE_1200, "payload": TITLE_1200}]

    refused = form_turn(chooser, form, {}, "loop_location", "Paris")
    assert responses(refused) == ["utter_loop_invalid_location"]
    assert slot_events(refused)["loop_location"] is None
    for typed in (TITLE_1200, "costa rica", "1200", LOCATION_1200, "  COSTA RICA salinas bay "):
        reply = form_turn(chooser, form, {}, "loop_location", typed)
        assert slot_events(reply)["loop_location"] == LOCATION_1200, typed
        assert slot_events(reply).get("requested_slot", "loop_description") == \
            "loop_description"
    # A message in intent syntax is never an answer.
    reply = form_turn(chooser, form, {}, "loop_location", '/greet{"loop_location": "x"}')
    assert slot_events(reply).get("loop_location") is None

    slots = {"loop_location": LOCATION_1200, "loop_description": "The shower is cold.",
             "customer_email": EMAIL}
    reply = run(chooser, "action_loop_create_loop", slots)
    assert responses(reply) == ["utter_loop_created"]
    [loop] = loop_sandbox.state("loop")["loops"]
    assert loop["location"]["id"] == LOCATION_1200
    assert slot_events(reply)["loop_created_loops"] == [{"id": loop["id"], "email": EMAIL}]
    assert loop_sandbox.calls("loop").get("GET /loop/api/v1/locations", 0) <= 1  # cached


def test_the_survey_of_the_chosen_location_is_asked_and_stored_there(
    chooser: ActionServer, loop_sandbox: Sandbox
) -> None:
    form = "loop_survey_form"
    slots: dict[str, Any] = {}
    reply = form_turn(chooser, form, slots, "loop_location", "Costa Rica")
    slots = loop_slots(slots, reply)
    assert slots.get("requested_slot", "loop_answer") == "loop_answer"
    asked = run(chooser, "action_ask_loop_answer", slots, active_loop=form,
                requested_slot="loop_answer")
    assert asked["responses"][0]["category_id"] == Q_READY  # the lobby survey of 1200
    slots = loop_slots(slots, asked)
    slots["loop_answers"] = {Q_READY: True, Q_AGAIN: True, Q_IMPROVE: "Nothing"}
    reply = run(chooser, "action_loop_submit_survey", slots)
    assert responses(reply) == ["utter_loop_survey_thanks"]
    [stored] = loop_sandbox.state("loop")["responses"]
    assert (stored["location"], stored["survey"]) == (LOCATION_1200, LOBBY["id"])


def test_a_single_location_account_is_not_asked(sandbox: Sandbox) -> None:
    sandbox.reset("loop")
    set_state(sandbox, locations=["1300"])
    try:
        with options_action_server(options_env(sandbox)) as cold:  # empty caches
            for form in ("loop_survey_form", "loop_invite_form"):
                reply = form_turn(cold, form, {}, None)
                assert slot_events(reply).get("requested_slot") != "loop_location"
    finally:
        sandbox.reset("loop")


def test_locations_unavailable_end_the_form_and_try_again_restarts_it(
    sandbox: Sandbox,
) -> None:
    sandbox.reset("loop")
    with options_action_server(options_env(sandbox)) as cold:
        sandbox.inject("loop", {"status": 503, "times": 100, "path": "/locations"})
        form = "loop_invite_form"
        reply = form_turn(cold, form, {}, None)
        # The location is still asked: the ask action reports the failure.
        assert slot_events(reply).get("requested_slot", "loop_location") == "loop_location"
        asked = run(cold, "action_ask_loop_location", active_loop=form,
                    requested_slot="loop_location")
        assert responses(asked) == ["utter_vendor_unavailable"]
        assert {"event": "active_loop", "name": None} in [
            {k: e.get(k) for k in ("event", "name")} for e in asked["events"]]
        assert slot_events(asked) == {"requested_slot": None, "pending_action": form}
        # A typed answer while Loop is down: the customer hears it, the slot stays empty.
        typed = form_turn(cold, form, {}, "loop_location", "Costa Rica")
        assert responses(typed) == ["utter_vendor_unavailable"]
        assert slot_events(typed)["loop_location"] is None
        sandbox.reset("loop")  # Loop is back
        retry = run(cold, "action_retry_pending", {"pending_action": form})
        assert [e["name"] for e in retry["events"] if e["event"] == "followup"] == [form]
        asked = run(cold, "action_ask_loop_location", {"pending_action": form},
                    active_loop=form, requested_slot="loop_location")
        assert responses(asked) == ["utter_loop_ask_location"]
        assert slot_events(asked) == {"pending_action": None}


# -- the invite link ------------------------------------------------------------------------
def test_the_invite_link_is_generic_for_a_typed_address(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    reply = run(action_server, "action_loop_invite_link",
                {"customer_email": EMAIL, "customer_name": "Jason"})
    [message] = reply["responses"]
    assert message["response"] == "utter_loop_invite_link"
    assert message["url"].endswith("/loop/create/1300")
    assert loop_sandbox.state("loop")["users"] == []  # no guest made from a typed address


def test_the_invite_link_of_the_chosen_location_is_personal_for_a_verified_address(
    chooser: ActionServer, loop_sandbox: Sandbox
) -> None:
    reply = run(chooser, "action_loop_invite_link",
                {"loop_location": LOCATION_1200, "customer_name": "Not Jason"},
                metadata={"user": {"email": EMAIL}})
    [guest] = loop_sandbox.state("loop")["users"]
    assert guest == {"id": guest["id"], "type": "customer", "email": EMAIL}  # no name sent
    assert reply["responses"][0]["url"].endswith(f"/loop/create/1200?_uid={guest['id']}")


def test_a_failed_invite_link_can_be_tried_again(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    loop_sandbox.inject("loop", {"status": 500, "path": "/invite/url"})
    reply = run(action_server, "action_loop_invite_link")
    assert responses(reply) == ["utter_vendor_unavailable"]
    assert slot_events(reply) == {"pending_action": "action_loop_invite_link"}
    assert loop_sandbox.calls("loop")["POST /loop/api/v1/invite/url"] == 1
    retry = run(action_server, "action_retry_pending",
                {"pending_action": "action_loop_invite_link"})
    assert [e["name"] for e in retry["events"] if e["event"] == "followup"] == [
        "action_loop_invite_link"]


# -- the status of the customer's loops -----------------------------------------------------
def create_loop(server: ActionServer, slots: dict[str, Any]) -> dict[str, Any]:
    """Create a loop as `action_loop_create_loop` does; returns the conversation's slots."""
    slots = {**slots, "loop_description": slots.get("loop_description") or "Something broke."}
    reply = run(server, "action_loop_create_loop", slots)
    assert responses(reply) == ["utter_loop_created"], reply
    time.sleep(0.005)  # distinct creation times, so "most recent first" is observable
    return loop_slots(slots, reply)


def status(server: ActionServer, slots: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return run(server, "action_loop_status", slots, **kwargs)


def test_nothing_recorded_and_nothing_verified_finds_nothing_without_asking_loop(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    create_loop(action_server, {"customer_email": EMAIL})  # someone's loop under that address
    # Another conversation merely types the address: it sees nothing.
    reply = status(action_server, {"customer_email": EMAIL})
    assert responses(reply) == ["utter_loop_status_none"]
    assert slot_events(reply) == {}
    assert "GET /loop/api/v1/users/" not in loop_sandbox.calls("loop")


def test_a_conversation_sees_its_own_loops_most_recent_first_and_no_one_else_s(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    mine = create_loop(action_server, {"customer_email": EMAIL,
                                       "loop_description": "No towels in room 12."})
    create_loop(action_server, {"customer_email": EMAIL,
                                "loop_description": "Someone else's secret."})
    mine = create_loop(action_server, {**mine, "customer_email": None,
                                       "customer_phone": "+16135551234",
                                       "loop_description": "The shower is cold."})
    first, _, third = loop_sandbox.state("loop")["loops"]
    set_state(loop_sandbox, loop_states={first["id"]: "closed"})

    reply = status(action_server, mine)
    assert responses(reply) == ["utter_loop_status_intro", "utter_loop_status_open",
                                "utter_loop_status_closed"]
    shown = reply["responses"][1:]
    assert [m["description"] for m in shown] == ["The shower is cold.", "No towels in room 12."]
    assert {m["location"] for m in shown} == {TITLE_1300}
    assert all(len(m["date"]) == 10 for m in shown)
    assert "secret" not in str(reply)
    assert slot_events(reply) == {}
    assert third["description"] == "The shower is cold."


def test_unusual_states_long_descriptions_and_many_loops(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    slots: dict[str, Any] = {"customer_email": EMAIL}
    for number in range(7):
        slots = create_loop(action_server, {**slots, "loop_description": f"Problem {number} "
                                            + "x" * 200})
    newest = loop_sandbox.state("loop")["loops"][-1]
    set_state(loop_sandbox, loop_states={newest["id"]: "awaiting_parts"})
    reply = status(action_server, slots)
    assert responses(reply) == ["utter_loop_status_intro", "utter_loop_status_other",
                                *["utter_loop_status_open"] * 4, "utter_loop_status_more"]
    assert reply["responses"][1]["state"] == "awaiting parts"
    assert reply["responses"][1]["description"].startswith("Problem 6 ")
    assert len(reply["responses"][1]["description"]) == 80
    assert reply["responses"][-1]["count"] == 2


def test_anonymous_loops_cannot_be_looked_up(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    slots = create_loop(action_server, {})
    reply = status(action_server, slots)
    assert responses(reply) == ["utter_loop_status_untraceable"]
    assert "GET /loop/api/v1/users/" not in loop_sandbox.calls("loop")
    slots = create_loop(action_server, {**slots, "customer_email": EMAIL})
    reply = status(action_server, slots)
    assert responses(reply) == ["utter_loop_status_intro", "utter_loop_status_open",
                                "utter_loop_status_some_untraceable"]


def test_a_verified_address_sees_every_loop_of_its_guest(
    chooser: ActionServer, loop_sandbox: Sandbox
) -> None:
    create_loop(chooser, {"customer_email": EMAIL, "loop_description": "From the web form."})
    create_loop(chooser, {"customer_email": "other@example.com"})
    verified = {"user": {"email": EMAIL}}
    reply = status(chooser, {}, metadata=verified)
    assert responses(reply) == ["utter_loop_status_intro", "utter_loop_status_open"]
    assert reply["responses"][1]["description"] == "From the web form."
    # Only the latest message counts: an earlier verified message vouches for nothing now.
    payload = webhook_payload("action_loop_status", events=[user_event("hi", metadata=verified)])
    assert responses(chooser.run(payload)) == ["utter_loop_status_none"]
    for metadata in ({"user": {"email": "not an address"}}, {"email": EMAIL}, {"user": EMAIL}):
        assert responses(status(chooser, {}, metadata=metadata)) == ["utter_loop_status_none"]


@pytest.mark.parametrize("fault, response", [
    ({"status": 503, "times": 3, "path": "/users/"}, "utter_vendor_unavailable"),
    ({"status": 401, "path": "/loops", "method": "GET"}, "utter_integration_unavailable"),
    ({"malformed": True, "path": "/loops", "method": "GET"}, "utter_vendor_unavailable"),
])
def test_loop_down_keeps_the_slots_and_try_again_answers(
    action_server: ActionServer, loop_sandbox: Sandbox, fault: dict[str, Any], response: str
) -> None:
    slots = create_loop(action_server, {"customer_email": EMAIL})
    loop_sandbox.inject("loop", fault)
    reply = status(action_server, slots)
    assert responses(reply) == [response]
    assert slot_events(reply) == {"pending_action": "action_loop_status"}
    reply = status(action_server, {**slots, "pending_action": "action_loop_status"})
    assert responses(reply) == ["utter_loop_status_intro", "utter_loop_status_open"]
    assert slot_events(reply) == {"pending_action": None}


def test_the_slot_of_created_loops_is_read_defensively(action_server: ActionServer) -> None:
    for junk in ("abc", [1, None, {"id": 5}], {"id": "x"}):
        reply = status(action_server, {"loop_created_loops": junk})
        assert responses(reply) == ["utter_loop_status_none"]


# -- what the survey is about ---------------------------------------------------------------
def test_the_survey_reference_is_recorded_and_then_cleared(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    survey = requests.get(f"{loop_sandbox.url}/loop/api/v1/surveys/restaurant",
                          params={"authToken": "loop-sandbox-token"}, timeout=10).json()
    slots = {"loop_survey": survey, "loop_answers": {Q_SWIFT: True, Q_FOOD: True,
                                                     Q_CLEAN: True, Q_ELSE: None},
             "loop_survey_reference": "Cention errand 511055"}
    loop_sandbox.inject("loop", {"status": 400, "path": "/responses"})
    failed = run(action_server, "action_loop_submit_survey", slots)
    assert responses(failed) == ["utter_loop_survey_rejected"]
    assert slot_events(failed) == {"pending_action": "action_loop_submit_survey"}
    reply = run(action_server, "action_loop_submit_survey", slots)
    assert responses(reply) == ["utter_loop_survey_thanks"]
    [stored] = loop_sandbox.state("loop")["responses"]
    assert {"categoryId": Q_ELSE, "value": "[Cention errand 511055]"} in stored["responses"]
    assert slot_events(reply)["loop_survey_reference"] is None


# -- the reference bot's glue: the survey offered after an agent's answer -------------------
def agent_answer(server: ActionServer, errand: Any = "511055", **kwargs: Any) -> dict[str, Any]:
    slots = {"cention_answer_errand_id": errand, "agent_answered_errand": errand}
    return run(server, "action_offer_survey_after_answer", slots,
               intent="cention_agent_answer", sender_id=uuid.uuid4().hex, **kwargs)


def test_the_offer_is_off_by_default(action_server: ActionServer) -> None:
    reply = agent_answer(action_server)
    assert reply["responses"] == []
    assert slot_events(reply) == {"agent_answered_errand": None}


def test_the_offer_names_the_errand_and_never_interrupts_a_form(chooser: ActionServer) -> None:
    reply = agent_answer(chooser)
    assert responses(reply) == ["utter_offer_survey_after_answer"]
    assert slot_events(reply) == {"agent_answered_errand": None,
                                  "loop_survey_reference": "Cention errand 511055"}
    for kwargs in ({"active_loop": "benti_ticket_form"}, {"errand": None},
                   {"errand": "9" * 101}):
        reply = agent_answer(chooser, **kwargs)
        assert reply["responses"] == [], kwargs
        assert slot_events(reply) == {"agent_answered_errand": None}


def test_a_wrong_offer_setting_stops_the_server(sandbox: Sandbox) -> None:
    with pytest.raises(RuntimeError, match="OFFER_SURVEY_AFTER_AGENT_ANSWER"), \
            options_action_server(options_env(sandbox, OFFER_SURVEY_AFTER_AGENT_ANSWER="maybe")):
        pass

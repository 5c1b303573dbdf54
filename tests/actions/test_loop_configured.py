"""A bot configured for another location: survey order, languages, custom fields, caches,
timeouts. Each test module here starts its own simulators and action server (cold caches)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from rasa_service_desk.clients.loop.settings import SANDBOX_AUTH_TOKEN
from rasa_service_desk.outbox import DELIVERED, NAMESPACE
from rasa_service_desk.sandbox.loop import LOBBY
from rasa_service_desk.state import open_store
from tests.actions.test_loop_feedback import create, form_turn
from tests.actions.test_loop_survey import SurveyConversation
from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import (
    ActionServer,
    Sandbox,
    running_action_server,
    running_sandbox,
)

Q_READY, Q_AGAIN, Q_IMPROVE = (q["categoryId"] for q in LOBBY["questions"])
LOCATION_1200 = "529652b0121d5fa206011a98"
ROOM_FIELD = "529652b0121d5fa206011a97"
BOOKING_FIELD = "529652b0121d5fa206011c02"
COMPLAINT = "5296530b121d5fa206011b02"
EMAIL = "guest.person@example.com"
FORM_NAME = "loop_survey_form"


def env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return {
        "SANDBOX": "1", "SANDBOX_URL": sandbox.url, "LOOP_LOCATION": "1200",
        "LOOP_LOOP_TYPE": "Complaint", "LOOP_DEVICE_ID": "Lobby bot",
        "LOOP_CUSTOM_FIELDS": json.dumps({"room_number": "room", "booking_ref": "booking"}),
        "LOOP_TIMEOUT_SECONDS": "1", **extra,
    }


@pytest.fixture(scope="module")
def state_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('lobby') / 'state.sqlite3'}"


@pytest.fixture(scope="module")
def lobby(state_url: str) -> Iterator[tuple[ActionServer, Sandbox]]:
    """The lobby's simulators and action server; its outbox (on, the default) looks for due
    submissions every 0.2 s and keeps them in `state_url`, where a test can see them."""
    with running_sandbox() as sandbox, running_action_server(
            env(sandbox, OUTBOX_POLL_SECONDS="0.2", STATE_URL=state_url)) as server:
        yield server, sandbox


@pytest.fixture(scope="module")
def try_again_lobby(lobby: tuple[ActionServer, Sandbox]) -> Iterator[ActionServer]:
    """The lobby without the outbox (`OUTBOX_ENABLED=0`, still supported): an outage is
    told to the customer, who says "try again"."""
    with running_action_server(env(lobby[1], OUTBOX_ENABLED="0")) as server:
        yield server


@pytest.fixture
def try_again(lobby: tuple[ActionServer, Sandbox], try_again_lobby: ActionServer) -> ActionServer:
    lobby[1].reset("loop")
    return try_again_lobby


def outbox_states(state_url: str) -> list[str]:
    """The state of every submission in the outbox of `state_url`."""
    async def read() -> list[str]:
        store = open_store(state_url)
        try:
            entries = [await store.get(NAMESPACE, key) for key in await store.keys(NAMESPACE)]
            return [str(entry["state"]) for entry in entries if entry is not None]
        finally:
            await store.close()
    return asyncio.run(read())


@pytest.fixture
def server(lobby: tuple[ActionServer, Sandbox]) -> ActionServer:
    lobby[1].reset("loop")
    return lobby[0]


@pytest.fixture
def sim(lobby: tuple[ActionServer, Sandbox]) -> Sandbox:
    return lobby[1]


def test_fixed_order_in_french_with_validation(server: ActionServer, sim: Sandbox) -> None:
    talk = SurveyConversation(server, {"language": "fr"})
    talk.ask()
    assert talk.slots["loop_question_order"] == [Q_READY, Q_AGAIN, Q_IMPROVE]
    refused = talk.answer("peut-être")
    assert responses(refused) == ["utter_loop_invalid_bool"]
    talk.ask()
    talk.answer("Oui !")
    talk.ask()
    talk.answer("non")
    talk.ask()
    skipped = talk.answer("passer")  # required text question: no skipping
    assert responses(skipped) == ["utter_loop_answer_required"]
    assert not talk.finished
    talk.ask()
    talk.answer("Le petit-déjeuner plus tôt.")
    assert talk.finished
    assert talk.asked_ids == [Q_READY, Q_READY, Q_AGAIN, Q_IMPROVE, Q_IMPROVE]
    assert [m["question"] for m in talk.asked[1:4]] == [
        "Votre chambre était-elle prête à temps ?", "Reviendriez-vous chez nous ?",
        "Que devrions-nous améliorer en premier ?"]
    assert talk.asked[3]["response"] == "utter_loop_ask_text"

    reply = talk.submit()
    assert responses(reply) == ["utter_loop_survey_thanks", "utter_loop_follow_up"]
    [stored] = sim.state("loop")["responses"]
    assert (stored["location"], stored["deviceId"]) == (LOCATION_1200, "Lobby bot")
    assert [(r["categoryId"], r["value"]) for r in stored["responses"]] == [
        (Q_READY, True), (Q_AGAIN, False), (Q_IMPROVE, "Le petit-déjeuner plus tôt.")]


def test_language_fallback_then_any_text(server: ActionServer) -> None:
    for language in ("de", None):
        talk = SurveyConversation(server, {"language": language} if language else {})
        talk.ask()
        talk.answer("yes")
        talk.ask()
        assert [m["question"] for m in talk.asked] == [
            "Was your room ready on time?",  # no German: LOOP_FALLBACK_LANGUAGE (en)
            "Reviendriez-vous chez nous ?",  # neither German nor English: what Loop has
        ]


def test_survey_unavailable_ends_the_form_and_try_again_restarts_it(
    sim: Sandbox, lobby: tuple[ActionServer, Sandbox]
) -> None:
    sim.reset("loop")
    with running_action_server(env(sim)) as cold:  # nothing cached yet
        sim.inject("loop", {"status": 503, "times": 3, "path": "/surveys"})
        talk = SurveyConversation(cold)
        reply = talk.ask()
        assert responses(reply) == ["utter_vendor_unavailable"]
        assert {"event": "active_loop", "name": None} in [
            {k: e.get(k) for k in ("event", "name")} for e in reply["events"]]
        assert slot_events(reply) == {"requested_slot": None, "pending_action": FORM_NAME}
        retry = cold.run(webhook_payload("action_retry_pending", slots=talk.slots))
        assert [e["name"] for e in retry["events"] if e["event"] == "followup"] == [FORM_NAME]
        reply = talk.ask()
        assert responses(reply) == ["utter_loop_ask_bool"]
        assert slot_events(reply)["pending_action"] is None



def test_a_location_without_a_survey_is_the_operator_s_problem_not_the_customer_s(
    sim: Sandbox, lobby: tuple[ActionServer, Sandbox]
) -> None:
    """Loop answers `GET /surveys?location=` with 404: the customer hears the service is
    unavailable (not "check the details you gave me") and the log names the settings."""
    sim.reset("loop")
    taken = requests.post(f"{sim.url}/loop/_sandbox/settings",
                          json={"location_surveys": {"1200": None}}, timeout=10)
    taken.raise_for_status()
    with running_action_server(env(sim)) as cold:  # nothing cached yet
        reply = SurveyConversation(cold).ask()
        log = cold.process.output()

    assert responses(reply) == ["utter_integration_unavailable"]
    assert sim.calls("loop")["GET /loop/api/v1/surveys"] == 1  # a setting: not retried
    assert "check LOOP_LOCATION, or set LOOP_SURVEY" in log
    assert SANDBOX_AUTH_TOKEN not in log


def test_loop_with_mapped_custom_fields_and_clean_logs(
    server: ActionServer, sim: Sandbox
) -> None:
    slots: dict[str, Any] = {"room_number": 301, "booking_ref": " AB12 ",
                             "customer_name": "Ana"}
    reply = form_turn(server, slots, "loop_description", "The shower is cold.")
    slots.update(slot_events(reply))
    reply = form_turn(server, slots, "customer_email", EMAIL)
    slots.update({"customer_email": EMAIL, **slot_events(reply)})  # as Rasa extracted it
    assert slots.get("requested_slot") is None  # nothing more to ask: Rasa ends the form
    reply = create(server, slots)
    assert responses(reply) == ["utter_loop_created"]
    [loop] = sim.state("loop")["loops"]
    assert loop["customFields"] == [{ROOM_FIELD: "301"}, {BOOKING_FIELD: "AB12"}]
    assert (loop["loopType"], loop["deviceId"]) == (COMPLAINT, "Lobby bot")
    assert loop["location"]["id"] == LOCATION_1200
    [user] = sim.state("loop")["users"]
    assert (user["name"], user["email"]) == ("Ana", EMAIL)
    output = server.process.output()
    assert SANDBOX_AUTH_TOKEN not in output
    assert EMAIL not in output


def test_a_loop_timeout_is_reported_and_not_repeated(try_again: ActionServer,
                                                    sim: Sandbox) -> None:
    """Without the outbox: told, "try again" armed, and the loop not sent twice at once."""
    sim.inject("loop", {"delay": 1.5, "path": "/loops", "method": "POST"})
    reply = create(try_again, {"loop_description": "The shower is cold."})
    assert responses(reply) == ["utter_vendor_unavailable"]
    assert slot_events(reply) == {"pending_action": "action_loop_create_loop"}
    assert sim.calls("loop")["POST /loop/api/v1/loops"] == 1


def test_a_loop_timeout_is_queued_and_the_outbox_opens_exactly_one_loop(
    server: ActionServer, sim: Sandbox, state_url: str,
) -> None:
    """With the outbox (the default): the customer hears the feedback will be passed on;
    the outbox, unsure whether the slow Loop created the loop, looks it up by the
    customer's email before sending again: one loop in the end."""
    description = "The shower is cold (slow Loop)."
    sim.inject("loop", {"delay": 1.5, "path": "/loops", "method": "POST"})

    reply = create(server, {"loop_description": description, "customer_email": EMAIL})

    assert responses(reply) == ["utter_loop_create_queued"]
    assert slot_events(reply) == {"loop_description": None, "loop_title": None}
    deadline = time.monotonic() + 20
    while outbox_states(state_url) != [DELIVERED] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outbox_states(state_url) == [DELIVERED]
    assert sim.calls("loop")["GET /loop/api/v1/users/"] >= 1  # looked up before sending
    assert [loop["description"] for loop in sim.state("loop")["loops"]] == [description]


def test_lookups_are_cached_across_conversations() -> None:
    with running_sandbox() as sandbox, running_action_server(env(sandbox)) as cold:
        for _ in range(2):
            talk = SurveyConversation(cold)
            talk.complete(lambda m: "yes" if m["category_id"] != Q_IMPROVE else "More towels")
            assert responses(talk.submit()) == ["utter_loop_survey_thanks"]
            reply = create(cold, {"loop_description": "The shower is cold.",
                                  "room_number": "12"})
            assert responses(reply) == ["utter_loop_created"]
        calls = sandbox.calls("loop")
        assert calls["POST /loop/api/v1/responses"] == 2
        assert calls["POST /loop/api/v1/loops"] == 2
        assert calls["GET /loop/api/v1/locations/{shortcode}"] == 1
        assert calls["GET /loop/api/v1/surveys"] == 1  # within LOOP_SURVEY_CACHE_SECONDS
        assert calls["GET /loop/api/v1/looptypes"] == 1
        assert calls["GET /loop/api/v1/customfields/{shortcode}"] == 1

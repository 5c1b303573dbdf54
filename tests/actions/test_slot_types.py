"""Slot values of the wrong type or shape (issue 18, part 5).

Any custom action, story or client can set any slot to any JSON value, so every validator and
action of the four integrations is fed arbitrary JSON (None, bools, ints and huge ints,
floats, empty/long/unicode strings, lists, nested objects) in every slot the domain declares,
on top of a conversation whose other slots are valid. Whatever the values:

- no exception escapes (rasa-sdk would answer HTTP 500 and the customer hear nothing);
- every reply is a domain response, never raw text;
- a slot is never set to a value of another type than the domain declares, so a bad value
  is never kept as if valid (a validator answers None for it and the form asks again);
- no slot of the conversation is wiped but the ones the action clears anyway (as it does
  with valid values) and the ones that held the bad values.

The actions run in-process through rasa-sdk's `ActionExecutor` (the code path of the server's
`/webhook`) against the sandbox simulators; one smaller test goes over HTTP to the real action
server. The slots come from `domain/*.yml` and the actions from the `actions` package the
server loads, so a slot or action added later is fuzzed too. Examples are derandomized and no
example database is kept, so CI sees the same cases every run.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasa_sdk.executor import ActionExecutor

from tests.support.rasa_payloads import load_domain, webhook_payload
from tests.support.servers import ActionServer, Sandbox

DOMAIN = load_domain()
#: Every slot of the domain, plus the one Rasa adds for forms.
SLOTS = sorted([*DOMAIN["slots"], "requested_slot"])
SLOT_TYPES = {name: spec.get("type") for name, spec in DOMAIN["slots"].items()}
RESPONSES = frozenset(DOMAIN["responses"])
FORMS: dict[str, list[str]] = {
    name: list(spec.get("required_slots", [])) for name, spec in DOMAIN["forms"].items()}
PACKAGE = "rasa_service_desk.actions."
SENDER = "slot-types-" + uuid.uuid4().hex[:8]
#: A planted string that must never reach the log.
MARKER = "marker-3b9e1d@example.org"

#: A conversation whose slots are all valid; completed by `harvest()` with what the actions
#: themselves store (the survey, its order, the errand, the loops created).
VALID: dict[str, Any] = {
    "customer_name": "Ada Lovelace",
    "customer_email": "ada.lovelace@example.com",
    "customer_phone": "+46701234567",
    "benti_ticket_title": "Printer on fire",
    "benti_ticket_description": "It smokes every time I print.",
    "cention_errand_subject": "Refund request",
    "loop_description": "The room was cold all night.",
    "loop_title": "Cold room",
    "language": "en",
}

_leaf = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e308, -1e308, 5e-324, 10**300, -(2**200), "", " ", "\n", "x" * 100_000, "/",
                       "yes", "no", "skip", "\u202e\x00\x1b[31m", "ok 👍", MARKER])
    | st.text(max_size=40)
)
#: Arbitrary JSON values (what a slot can hold after any custom action or story).
json_values = st.recursive(
    _leaf,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=8,
)
#: A few more slots of the conversation replaced with arbitrary values.
others = st.dictionaries(st.sampled_from(SLOTS), json_values, max_size=3)

PROPERTY = settings(max_examples=int(os.environ.get("SLOT_TYPES_EXAMPLES", "30")),
                    deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


def well_typed(slot: str, value: Any) -> bool:
    """Whether `value` has the type the domain declares for `slot` (None always does)."""
    kind = SLOT_TYPES.get(slot)
    if value is None or kind in (None, "any"):
        return True
    if kind in ("text", "categorical"):
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    return True


class Bot:
    """The actions of the `actions` package, run in-process on one event loop."""

    def __init__(self) -> None:
        self.executor = ActionExecutor()
        self.executor.register_package("actions")
        self.loop = asyncio.new_event_loop()
        self.valid: dict[str, Any] = dict(VALID)
        #: Slots each action empties when every slot is valid.
        self.clears: dict[str, set[str]] = {}
        self.templates: dict[tuple[str | None, bool], dict[str, Any]] = {}

    def names(self) -> list[str]:
        """This project's actions and validators: classes defined in the package (not the
        bot's own glue, nor test actions of other modules that inherit the package's `run`
        and are registered too when they run in the same process)."""
        return sorted(name for name in self.executor.actions
                      if _owner_module(self.executor, name).startswith(PACKAGE))

    def payload(self, action: str, slots: dict[str, Any], *,
                validated: tuple[str, Any] | None = None) -> dict[str, Any]:
        form = action.removeprefix("validate_") if action.startswith("validate_") else None
        requested = validated[0] if validated else None
        # A button's message (intent syntax): the form validates the slot's value, rather
        # than taking the customer's text as the answer.
        key = (form, validated is not None)
        if key not in self.templates:  # building one reads the domain files: keep them
            self.templates[key] = webhook_payload(
                action, sender_id=SENDER, active_loop=form,
                text="/inform" if validated else "hello")
            self.templates[key].pop("domain")
        payload = copy.deepcopy(self.templates[key])
        payload.update(next_action=action, domain=DOMAIN)
        tracker = payload["tracker"]
        tracker["slots"] = dict(slots)
        if validated is not None:
            tracker["slots"].setdefault("requested_slot", requested)
            tracker["slots"][validated[0]] = validated[1]
            tracker["events"].append({"event": "slot", "timestamp": time.time(),
                                      "name": validated[0], "value": validated[1]})
        return payload

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = self.loop.run_until_complete(self.executor.run(payload))
        if hasattr(result, "model_dump"):  # newer rasa-sdk: a pydantic model
            result = result.model_dump()
        return dict(result or {})

    def full_slots(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        slots: dict[str, Any] = {name: spec.get("initial_value")
                                 for name, spec in DOMAIN["slots"].items()}
        slots.update(self.valid)
        slots.update(changes or {})
        return slots

    def harvest(self) -> None:
        """Let the actions store the structured slots they keep (valid by construction)."""
        for action in ("action_ask_loop_answer", "action_loop_create_loop",
                       "action_cention_create_errand", "action_imbee_open_chat"):
            reply = self.run(self.payload(action, self.full_slots()))
            for event in reply.get("events", []):
                if event.get("event") == "slot" and event.get("value") is not None:
                    self.valid[event["name"]] = event["value"]
        self.valid.pop("requested_slot", None)
        for action in self.names():
            reply = self.run(self.payload(action, self.full_slots()))
            self.clears[action] = {e["name"] for e in reply.get("events", [])
                                   if e.get("event") == "slot" and e.get("value") is None}


def _owner_module(executor: ActionExecutor, name: str) -> str:
    action = executor.actions[name]
    owner = getattr(action, "__self__", None)
    return type(owner).__module__ if owner is not None else ""


@pytest.fixture(scope="module")
def bot(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """The actions in this process, every integration on the simulators."""
    from rasa_service_desk.actions import runtime, shared_state

    state = tmp_path_factory.mktemp("state") / "state.sqlite3"
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "STATE_URL": f"sqlite:///{state}",
           "LOOP_LET_CUSTOMER_CHOOSE_LOCATION": "true",
           "LOOP_VERIFIED_EMAIL_METADATA_KEY": "user.email"}
    saved_env = {key: os.environ.get(key) for key in env}
    saved = (dict(runtime._integrations), dict(runtime._clients), list(runtime._global))
    saved_store = shared_state._store
    os.environ.update(env)
    # Settings are read once per process: read them again with the simulators' address,
    # and open this test's own state (records of submissions must not outlive the test).
    runtime._integrations.clear()
    runtime._clients.clear()
    runtime._global.clear()
    shared_state._store = None
    instance = Bot()
    try:
        instance.harvest()
        yield instance
    finally:
        from rasa_service_desk.clients.http import close_shared_sessions

        instance.loop.run_until_complete(close_shared_sessions())
        instance.loop.close()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        runtime._integrations.clear()
        runtime._integrations.update(saved[0])
        runtime._clients.clear()
        runtime._clients.update(saved[1])
        runtime._global[:] = saved[2]
        shared_state._store = saved_store


def check_reply(bot: Bot, action: str, reply: dict[str, Any], changed: dict[str, Any],
                validated: str | None = None) -> None:
    """The properties every reply must have, whatever the slots held."""
    for message in reply.get("responses", []):
        assert message.get("response") in RESPONSES, (action, message)
        assert not message.get("text"), (action, message)
        assert not message.get("custom") and not message.get("json_message"), message
    kinds = {event.get("event") for event in reply.get("events", [])}
    assert kinds <= {"slot", "followup", "active_loop"}, (action, kinds)
    slot_events = [e for e in reply.get("events", []) if e.get("event") == "slot"]
    for event in slot_events:
        assert well_typed(event["name"], event["value"]), (action, event["name"])
    wiped = {e["name"] for e in slot_events if e["value"] is None} - set(changed) - {
        "requested_slot", "pending_action", validated} - bot.clears.get(action, set())
    held = {name for name in wiped if bot.full_slots(changed).get(name) is not None}
    assert not held, (action, held)
    if validated is not None and not well_typed(validated, changed.get(validated)):
        assert {"name": validated, "value": None} in [
            {"name": e["name"], "value": e["value"]} for e in slot_events], (action, validated)


@pytest.fixture(scope="module")
def action_names(bot: Bot) -> list[str]:
    return [name for name in bot.names() if not name.startswith("validate_")]


def test_every_integration_action_and_validator_is_fuzzed(bot: Bot) -> None:
    names = bot.names()
    assert "validate_loop_survey_form" in names and "action_loop_submit_survey" in names
    for vendor in ("benti", "cention", "imbee", "loop"):
        assert any(vendor in name for name in names), vendor
    validators = [name for name in names if name.startswith("validate_")]
    assert sorted(v.removeprefix("validate_") for v in validators) == sorted(FORMS)


VALIDATED = [(f"validate_{form}", slot) for form, slots in sorted(FORMS.items())
             for slot in slots]


@pytest.mark.parametrize("slot", SLOTS)
@PROPERTY
@given(data=st.data())
def test_actions_survive_any_value_in_any_slot(bot: Bot, slot: str, data: st.DataObject) -> None:
    names = [name for name in bot.names() if not name.startswith("validate_")]
    action = data.draw(st.sampled_from(names), label="action")
    value = data.draw(json_values, label="value")
    changed = {**data.draw(others, label="other slots"), slot: value}
    reply = bot.run(bot.payload(action, bot.full_slots(changed)))
    check_reply(bot, action, reply, changed)


@pytest.mark.parametrize(("validator", "slot"), VALIDATED)
@PROPERTY
@given(data=st.data())
def test_validators_survive_any_answer_and_any_slot_values(
        bot: Bot, validator: str, slot: str, data: st.DataObject) -> None:
    value = data.draw(json_values, label="answer")
    changed = {**data.draw(others, label="other slots"), slot: value}
    reply = bot.run(bot.payload(validator, bot.full_slots(changed), validated=(slot, value)))
    check_reply(bot, validator, reply, changed, validated=slot)


MIXED_ORDER = [1, MARKER, None, ["q"], {"a": 2}]


def test_a_mixed_question_order_asks_again_and_logs_the_slot_not_the_value(
        bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    """The case of the issue: `loop_question_order` of mixed types made
    `validate_loop_survey_form` answer HTTP 500. Now the order is read as absent: the
    answer is checked against the survey's own first question and the survey goes on."""
    slots = bot.full_slots({"loop_question_order": MIXED_ORDER, "loop_answers": None})
    with caplog.at_level(logging.WARNING):
        reply = bot.run(bot.payload("validate_loop_survey_form", slots,
                                    validated=("loop_answer", "yes")))
    check_reply(bot, "validate_loop_survey_form", reply, {"loop_question_order": MIXED_ORDER})
    events = {e["name"]: e["value"] for e in reply["events"] if e["event"] == "slot"}
    assert events["loop_answer"] is None
    assert all(isinstance(item, str) for item in events["loop_question_order"])
    first = events["loop_question_order"][0]
    assert list(events["loop_answers"]) == [first]  # the survey's own first question
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("loop_question_order" in line for line in warnings), warnings
    assert not any(MARKER in r.getMessage() for r in caplog.records)


def test_a_wrong_type_answer_is_emptied_and_asked_again(bot: Bot) -> None:
    slots = bot.full_slots({"benti_ticket_title": None})
    reply = bot.run(bot.payload("validate_benti_ticket_form", slots,
                                validated=("benti_ticket_title", ["Printer on fire"])))
    events = {e["name"]: e["value"] for e in reply["events"] if e["event"] == "slot"}
    assert events["benti_ticket_title"] is None
    assert [m["response"] for m in reply["responses"]] == ["utter_invalid_text"]


@settings(PROPERTY, max_examples=int(os.environ.get("SLOT_TYPES_HTTP_EXAMPLES", "25")))
@given(action=st.sampled_from(["validate_loop_survey_form", "action_ask_loop_answer",
                               "action_loop_submit_survey", "action_benti_create_ticket",
                               "action_cention_errand_status", "action_imbee_open_chat"]),
       changed=st.dictionaries(st.sampled_from(SLOTS), json_values, min_size=1, max_size=4))
def test_the_action_server_answers_200_whatever_the_slots(
        bot: Bot, action_server: ActionServer, action: str, changed: dict[str, Any]) -> None:
    """The same through the real action server over HTTP, as Rasa calls it."""
    validated = ("loop_answer", changed.get("loop_answer", "yes")) if action.startswith(
        "validate_") else None
    payload = bot.payload(action, bot.full_slots(changed), validated=validated)
    payload["sender_id"] = payload["tracker"]["sender_id"] = uuid.uuid4().hex
    response = action_server.call(payload)
    assert response.status_code == 200, response.text[:300]
    check_reply(bot, action, response.json(), changed,
                validated=validated[0] if validated else None)

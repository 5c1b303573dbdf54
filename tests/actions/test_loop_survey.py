"""The Loop survey through the real action server against the simulator.

`SurveyConversation` plays Rasa's part of `loop_survey_form` turn by turn over `/webhook`:
the form asks with `action_ask_loop_answer`, the customer's text fills `loop_answer`, the
form runs `validate_loop_survey_form`, and so on until the validator ends the form; then
`action_loop_submit_survey` runs. Slots carry over between turns exactly as Rasa keeps them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from rasa_service_desk.actions.loop.survey import is_skip, parse_bool
from rasa_service_desk.sandbox.loop import RESTAURANT
from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer, Sandbox

FORM = "loop_survey_form"
Q_SWIFT, Q_FOOD, Q_CLEAN, Q_ELSE = (q["categoryId"] for q in RESTAURANT["questions"])
TEXTS = {q["categoryId"]: q["text"]["en"] for q in RESTAURANT["questions"]}


class SurveyConversation:
    """One customer's conversation with the survey form."""

    def __init__(self, server: ActionServer, slots: dict[str, Any] | None = None) -> None:
        self.server = server
        self.sender = uuid.uuid4().hex
        self.slots: dict[str, Any] = dict(slots or {})
        self.asked: list[dict[str, Any]] = []
        self.finished = False

    def _run(self, action: str, text: str = "", answer: str | None = None) -> dict[str, Any]:
        slots = dict(self.slots)
        if answer is not None:
            slots["loop_answer"] = answer
        payload = webhook_payload(action, slots=slots, text=text or "hello",
                                  sender_id=self.sender, active_loop=FORM,
                                  requested_slot="loop_answer")
        if answer is not None:  # what action_extract_slots adds after the user's message
            payload["tracker"]["events"].append(
                {"event": "slot", "timestamp": time.time(), "name": "loop_answer",
                 "value": answer})
        reply = self.server.run(payload)
        self.slots.update(slot_events(reply))
        return reply

    def ask(self) -> dict[str, Any]:
        """The form asks for `loop_answer`; returns the reply and records the question."""
        reply = self._run("action_ask_loop_answer")
        questions = [m for m in reply["responses"] if m.get("question")]
        self.asked.extend(questions)
        if slot_events(reply).get("requested_slot", "loop_answer") is None:
            self.finished = True
        return reply

    def answer(self, text: str) -> dict[str, Any]:
        """The customer answers; the form validates and, if the form goes on, asks again."""
        reply = self._run("validate_loop_survey_form", text=text, answer=text)
        if slot_events(reply).get("requested_slot", "loop_answer") is None:
            self.finished = True
        return reply

    def complete(self, answer_for: Callable[[dict[str, Any]], str]) -> None:
        """Answer every question the form asks with `answer_for(question message)`."""
        self.ask()
        for _ in range(20):
            self.answer(answer_for(self.asked[-1]))
            if self.finished:
                return
            self.ask()
        raise AssertionError("the survey never ended")

    def submit(self) -> dict[str, Any]:
        reply = self.server.run(webhook_payload("action_loop_submit_survey", slots=self.slots,
                                                sender_id=self.sender))
        self.slots.update(slot_events(reply))
        return reply

    @property
    def asked_ids(self) -> list[str]:
        return [str(m["category_id"]) for m in self.asked]


RESTAURANT_ANSWERS = {Q_SWIFT: "Yes!", Q_FOOD: "nope", Q_CLEAN: "y",
                      Q_ELSE: "Your bacon is the best!"}


def restaurant_answer(message: dict[str, Any]) -> str:
    return RESTAURANT_ANSWERS[message["category_id"]]


@pytest.fixture
def loop_sandbox(sandbox: Sandbox) -> Sandbox:
    sandbox.reset("loop")
    return sandbox


def test_a_whole_survey_is_asked_validated_and_stored(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    talk = SurveyConversation(action_server, {"language": "en"})
    first = talk.ask()
    order = talk.slots["loop_question_order"]
    assert sorted(order) == sorted(TEXTS)
    assert talk.asked_ids == order[:1]
    assert responses(first) in (["utter_loop_ask_bool"], ["utter_loop_ask_text_optional"])
    for _ in range(10):
        talk.answer(restaurant_answer(talk.asked[-1]))
        if talk.finished:
            break
        talk.ask()
    assert talk.finished
    assert talk.asked_ids == order
    for message in talk.asked:
        assert message["question"] == TEXTS[message["category_id"]]
        expected = "utter_loop_ask_text_optional" if message["category_id"] == Q_ELSE \
            else "utter_loop_ask_bool"
        assert message["response"] == expected
    assert talk.slots["loop_answers"] == {Q_SWIFT: True, Q_FOOD: False, Q_CLEAN: True,
                                          Q_ELSE: "Your bacon is the best!"}

    reply = talk.submit()
    assert responses(reply) == ["utter_loop_survey_thanks", "utter_loop_follow_up"]
    [stored] = loop_sandbox.state("loop")["responses"]
    assert stored["survey"] == RESTAURANT["id"]
    assert {r["categoryId"]: r["value"] for r in stored["responses"]} == {
        Q_SWIFT: True, Q_FOOD: False, Q_CLEAN: True, Q_ELSE: "Your bacon is the best!"}
    assert stored["source"] == "chatbot" and stored["timestamp"].endswith("Z")
    events = slot_events(reply)
    assert events["loop_response_id"] == stored["id"]
    assert events["loop_loop_id"] == stored["loopId"] and events["loop_loop_url"]
    assert events["loop_answers"] is None


def test_randomised_order_is_fixed_once_per_conversation(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    orders = set()
    for _ in range(6):
        talk = SurveyConversation(action_server)
        talk.ask()
        order = tuple(talk.slots["loop_question_order"])
        assert sorted(order) == sorted(TEXTS)
        talk.answer(restaurant_answer(talk.asked[-1]))
        second = talk.ask()
        assert "loop_question_order" not in slot_events(second)  # kept, not reshuffled
        assert talk.asked_ids == list(order[:2])
        orders.add(order)
    assert len(orders) > 1  # six identical shuffles of four questions: 1 in 24**5


def test_optional_text_question_can_be_skipped_and_positive_answers_open_no_loop(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    talk = SurveyConversation(action_server)
    talk.complete(lambda m: "skip" if m["category_id"] == Q_ELSE else "yeah")
    assert talk.slots["loop_answers"][Q_ELSE] is None
    reply = talk.submit()
    assert responses(reply) == ["utter_loop_survey_thanks"]
    [stored] = loop_sandbox.state("loop")["responses"]
    assert {r["categoryId"] for r in stored["responses"]} == {Q_SWIFT, Q_FOOD, Q_CLEAN}
    assert loop_sandbox.state("loop")["loops"] == []
    assert slot_events(reply)["loop_loop_id"] is None


def test_unknown_language_falls_back_to_the_configured_one(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    talk = SurveyConversation(action_server, {"language": "de-AT"})
    talk.ask()
    assert talk.asked[0]["question"] == TEXTS[talk.asked_ids[0]]


@pytest.mark.parametrize("fault, response, calls", [
    # A 503 may come from a gateway after Loop stored the response: never re-sent on its own.
    ({"status": 503}, "utter_vendor_unavailable", 1),
    ({"status": 500}, "utter_vendor_unavailable", 1),
    ({"status": 429, "times": 3}, "utter_vendor_busy", 3),
    ({"malformed": True}, "utter_vendor_unavailable", 1),
    ({"status": 400, "body": {"error": "survey changed"}}, "utter_loop_survey_rejected", 1),
    ({"status": 401}, "utter_integration_unavailable", 1),
])
def test_failed_submission_keeps_the_answers_and_try_again_sends_them(
    loop_try_again_server: ActionServer, loop_sandbox: Sandbox, fault: dict[str, Any],
    response: str, calls: int,
) -> None:
    """Without the outbox (`OUTBOX_ENABLED=0`) every failure is told and "try again" sends
    the answers; with it, the rejections and refusals still are."""
    talk = SurveyConversation(loop_try_again_server)
    talk.complete(restaurant_answer)
    answers = talk.slots["loop_answers"]
    loop_sandbox.inject("loop", {**fault, "path": "/responses"})
    reply = talk.submit()
    assert responses(reply) == [response]
    assert reply["events"] == [{"event": "slot", "timestamp": None,
                                "name": "pending_action", "value": "action_loop_submit_survey"}]
    assert talk.slots["loop_answers"] == answers
    assert loop_sandbox.calls("loop")["POST /loop/api/v1/responses"] == calls
    assert loop_sandbox.state("loop")["responses"] == []

    retry = loop_try_again_server.run(webhook_payload("action_retry_pending", slots=talk.slots))
    assert responses(retry) == ["utter_retrying"]
    reply = talk.submit()
    assert responses(reply)[0] == "utter_loop_survey_thanks"
    assert slot_events(reply)["pending_action"] is None
    assert len(loop_sandbox.state("loop")["responses"]) == 1


@pytest.mark.parametrize("fault", [
    {"status": 503}, {"status": 500}, {"status": 429, "times": 3}, {"malformed": True},
], ids=["503", "500", "429", "malformed"])
def test_a_submission_during_an_outage_is_queued_and_sent_later(
    loop_outbox_server: ActionServer, loop_sandbox: Sandbox, fault: dict[str, Any],
) -> None:
    """The default: Loop down or busy, the customer hears the answers will be sent, the
    answers are cleared like after a success (no "try again"), and the outbox sends the
    response, once, when Loop is back."""
    words = f"Your bacon is the best! ({uuid.uuid4().hex[:8]})"
    talk = SurveyConversation(loop_outbox_server)
    talk.complete(lambda m: words if m["category_id"] == Q_ELSE else restaurant_answer(m))
    loop_sandbox.inject("loop", {**fault, "path": "/responses"})

    reply = talk.submit()

    assert responses(reply) == ["utter_loop_survey_queued"]
    assert slot_events(reply) == {"loop_answers": None, "loop_survey": None}
    deadline = time.monotonic() + 20
    sent: list[Any] = []
    while not sent and time.monotonic() < deadline:
        sent = [stored for stored in loop_sandbox.state("loop")["responses"]
                if words in [r["value"] for r in stored["responses"]]]
        time.sleep(0.1)
    assert len(sent) == 1
    assert {r["categoryId"]: r["value"] for r in sent[0]["responses"]} == {
        Q_SWIFT: True, Q_FOOD: False, Q_CLEAN: True, Q_ELSE: words}


def test_an_unfinished_survey_is_not_submitted(
    action_server: ActionServer, loop_sandbox: Sandbox
) -> None:
    talk = SurveyConversation(action_server)
    talk.ask()
    talk.answer(restaurant_answer(talk.asked[-1]))
    reply = talk.submit()
    assert reply["events"] == [] and responses(reply) == []
    assert loop_sandbox.state("loop")["responses"] == []


@pytest.mark.parametrize("text", ["yes", "Yes!", "y", "YEP", "yeah, it was", "sure", "oui",
                                  "👍"])
def test_yes_answers(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["no", "Nope.", "n", "nah", "not really", "No, too slow",
                                  "non", "nein"])
def test_no_answers(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["maybe", "", "the fish", "not bad", None])
def test_neither_yes_nor_no(text: Any) -> None:
    assert parse_bool(text) is None


def test_skip_words() -> None:
    assert is_skip("Skip") and is_skip("nothing else.") and is_skip("n/a")
    assert not is_skip("the fish was cold")

"""Loop through the real bot: the survey whose questions come from Loop at run time, and a
request passed on to the team as a loop."""

from __future__ import annotations

from typing import Any

import pytest

from rasa_service_desk.sandbox.loop import RESTAURANT
from tests.e2e.bot import Conversation, RasaServer, is_response
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e

#: What the customer answers to each question of the simulator's survey (asked in random
#: order, as the survey asks), and what Loop must store.
ANSWERS: dict[str, tuple[str, Any]] = {
    "Was the service swift?": ("yes, very", True),
    "Was the food fantastic?": ("nope", False),
    "Was the counter clean?": ("yes", True),
    "What else should we know?": ("The soup was cold.", "The soup was cold."),
}


def answer_the_survey(chat: Conversation) -> list[str]:
    """Answer each question as it comes (their order is random); return the last replies."""
    [question] = chat.say("I'd like to take the survey")
    asked: list[str] = []
    replies: list[str] = []
    while len(asked) < len(ANSWERS):
        text = next((q for q in ANSWERS if question.startswith(q)), None)
        assert text and text not in asked, f"unexpected question {question!r} after {asked}"
        asked.append(text)
        replies = chat.say(ANSWERS[text][0])
        if len(asked) < len(ANSWERS):
            [question] = replies
    return replies


def stored_answers(response: dict[str, Any]) -> dict[str, Any]:
    """A stored Loop response as {question text: value}."""
    by_id = {q["categoryId"]: q["text"]["en"] for q in RESTAURANT["questions"]}
    return {by_id[a["categoryId"]]: a["value"] for a in response["responses"]}


def test_survey_is_asked_and_the_typed_answers_stored(rasa_server: RasaServer,
                                                      sandbox: Sandbox) -> None:
    chat = rasa_server.conversation()
    before = len(sandbox.state("loop")["responses"])
    replies = answer_the_survey(chat)
    # A "no" makes Loop open a loop from the response, so the team follows up.
    assert len(replies) == 2, replies
    assert is_response(replies[0], "utter_loop_survey_thanks")
    assert is_response(replies[1], "utter_loop_follow_up")

    responses = sandbox.state("loop")["responses"]
    assert len(responses) == before + 1
    assert stored_answers(responses[-1]) == {text: value for text, (_, value) in ANSWERS.items()}
    slots = chat.slots()
    assert slots["loop_response_id"] == responses[-1]["id"]
    assert slots["loop_loop_id"] == responses[-1]["loopId"]


def test_answers_are_sent_again_after_loop_fails(without_outbox: RasaServer,
                                                 sandbox: Sandbox) -> None:
    """Without the outbox (`OUTBOX_ENABLED=0`): the customer says "try again"."""
    chat = without_outbox.conversation()
    before = len(sandbox.state("loop")["responses"])
    # A 503 may come from a gateway after Loop stored the response: the client never repeats
    # it, the customer does ("try again").
    sandbox.inject("loop", {"status": 503, "path": "/responses", "method": "POST"})
    replies = answer_the_survey(chat)
    assert len(replies) == 1 and is_response(replies[0], "utter_vendor_unavailable"), replies
    assert len(sandbox.state("loop")["responses"]) == before

    chat.expect("try again", "utter_retrying", "utter_loop_survey_thanks", "utter_loop_follow_up")
    responses = sandbox.state("loop")["responses"]
    assert len(responses) == before + 1
    assert stored_answers(responses[-1]) == {text: value for text, (_, value) in ANSWERS.items()}
    chat.expect("thanks", "utter_you_are_welcome")


def test_request_is_passed_on_as_a_loop(rasa_server: RasaServer, sandbox: Sandbox) -> None:
    chat = rasa_server.conversation()
    chat.expect("I want to make a complaint", "utter_ask_loop_description")
    chat.expect("The shower in room 12 has no hot water since yesterday.",
                "utter_ask_loop_feedback_form_customer_email")
    chat.expect("+46 70 123 45 67", "utter_loop_created")
    loop = sandbox.state("loop")["loops"][-1]
    assert loop["description"].startswith("The shower in room 12 has no hot water")
    assert chat.slots()["loop_loop_id"] == loop["id"]

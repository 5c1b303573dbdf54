"""A Cention agent answers while the customer is in the middle of a form, on real Rasa.

Whatever form is active (a Benti ticket, a Cention errand, the Loop survey, a Loop request,
an Imbee chat), the customer sees the agent's answer, the form takes nothing from it, asks
its question again, and completes with what the customer then types. The customer talks
through the REST channel, so the answer comes first in the reply to their next message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from tests.e2e.bot import CALLBACK_SECRET, Conversation, RasaServer, is_response, slot_value
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e

AGENT_TEXT = "Your replacement ships tomorrow."


def open_errand(chat: Conversation) -> str:
    """Hand a question to the support team first, so an agent can answer it later."""
    chat.expect("I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    chat.expect("Grace Hopper", "utter_ask_cention_errand_form_customer_email")
    chat.expect("grace@example.com", "utter_ask_cention_errand_subject")
    [created] = chat.expect("My parcel arrived broken", "utter_cention_errand_created")
    return slot_value(created, "utter_cention_errand_created", "errand_id")


def agent_answers(rasa: RasaServer, sandbox: Sandbox, errand_id: str) -> None:
    fired = requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": AGENT_TEXT,
        "callback_url": f"{rasa.url}/webhooks/cention/webhook",
        "api_secret": CALLBACK_SECRET,
    }, timeout=60).json()
    assert fired["status"] == 200, fired


def start_benti(chat: Conversation) -> str:
    chat.expect("I'd like to open a support ticket", "utter_ask_benti_ticket_title")
    return "utter_ask_benti_ticket_title"


def start_cention(chat: Conversation) -> str:
    chat.expect("I want to contact customer service", "utter_ask_cention_errand_subject")
    return "utter_ask_cention_errand_subject"


def start_loop_request(chat: Conversation) -> str:
    chat.expect("I want to make a complaint", "utter_ask_loop_description")
    return "utter_ask_loop_description"


#: form -> (how it starts, the customer's answer after the interruption, the slot it
#: fills, what the bot says next: the form's next question, or the result once complete)
FORMS: dict[str, tuple[Callable[[Conversation], str], str, str, str]] = {
    "benti_ticket_form": (start_benti, "Broken parcel", "benti_ticket_title",
                          "utter_ask_benti_ticket_description"),
    "cention_errand_form": (start_cention, "Second question about my parcel",
                            "cention_errand_subject", "utter_cention_errand_created"),
    "loop_feedback_form": (start_loop_request, "The courier left the parcel in the rain.",
                           "loop_description", "utter_loop_created"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_an_answer_in_the_middle_of_a_form_is_shown_and_the_form_goes_on(
    rasa_server: RasaServer, sandbox: Sandbox, form: str
) -> None:
    start, answer, slot, after = FORMS[form]
    chat = rasa_server.conversation()
    errand_id = open_errand(chat)
    question = start(chat)
    assert chat.tracker()["active_loop"].get("name") == form

    agent_answers(rasa_server, sandbox, errand_id)
    slots = chat.slots()
    assert slots[slot] is None, "the form took the agent's answer as the customer's input"
    assert chat.tracker()["active_loop"].get("name") == form

    replies = chat.say(answer)
    # First what was held: the agent's answer (Rasa splits it at the blank line) and the
    # form's question asked again; then the form goes on with the customer's answer.
    assert "\n\n".join(replies[:2]).endswith(AGENT_TEXT), replies
    assert is_response("\n\n".join(replies[:2]), "utter_cention_agent_answer"), replies
    assert is_response(replies[2], question), replies
    # ... and the customer's own answer is taken: the form goes on (or completes with it).
    assert [is_response(r, after) for r in replies[3:]] == [True], replies
    if form == "benti_ticket_form":
        assert chat.slots()[slot] == answer
    if form == "cention_errand_form":
        subjects = [e["attributes"]["msg"]["subject"] for e in sandbox.state("cention")["errands"]]
        assert answer in subjects and not any("cention_agent_answer" in s for s in subjects)
    if form == "loop_feedback_form":
        loops = sandbox.state("loop")["loops"]
        assert any(answer in str(loop) for loop in loops)
        assert not any("cention_agent_answer" in str(loop) for loop in loops)


def test_an_answer_during_the_survey_is_not_taken_as_a_survey_answer(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    errand_id = open_errand(chat)
    [question] = chat.say("I'd like to take the survey")
    before = len(sandbox.state("loop")["responses"])

    agent_answers(rasa_server, sandbox, errand_id)
    assert chat.slots()["loop_answers"] in (None, {}), "the survey stored the agent's answer"
    assert chat.tracker()["active_loop"].get("name") == "loop_survey_form"

    replies = chat.say("yes")
    assert is_response("\n\n".join(replies[:2]), "utter_cention_agent_answer"), replies
    assert replies[2] == question  # asked again, then answered with "yes"
    assert len(sandbox.state("loop")["responses"]) == before  # nothing submitted yet
    assert len(chat.slots()["loop_answers"]) == 1


def test_an_answer_during_the_imbee_form_is_not_taken_as_a_contact(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    errand_id = open_errand(chat)
    # The errand form already asked for the e-mail address: clear it to make Imbee ask.
    requests.post(f"{rasa_server.url}/conversations/{chat.sender}/tracker/events",
                  json=[{"event": "slot", "name": "customer_email", "value": None}],
                  timeout=30).raise_for_status()
    chat.expect("I want to chat with a real person", "utter_ask_imbee_chat_form_customer_email")
    agent_answers(rasa_server, sandbox, errand_id)
    assert chat.slots()["customer_email"] is None
    replies = chat.say("+46 70 123 45 67")
    assert is_response("\n\n".join(replies[:2]), "utter_cention_agent_answer"), replies
    assert is_response(replies[2], "utter_ask_imbee_chat_form_customer_email")
    assert is_response(replies[-1], "utter_imbee_chat_opened")

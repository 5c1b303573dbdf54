"""Cention through the real bot: a question answered from the library (the NLU fallback), and
a hand-off to the support team whose answer comes back into the same conversation through
the Cention connector."""

from __future__ import annotations

import pytest
import requests

from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.compat import field_default
from tests.e2e.bot import CALLBACK_SECRET, RasaServer, is_response, slot_value
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e


def test_question_without_an_intent_is_answered_from_the_library(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    replies = chat.say("how do I reset my password")
    assert replies, "the bot did not answer"
    assert is_response(replies[0], "utter_cention_answer")
    assert "password reset page (https://example.com/account/reset)" in replies[0]
    assert "INTERNAL" not in " ".join(replies)  # agents-only library answers stay internal
    assert any(route.endswith("/c3_library_questions") for route in sandbox.calls("cention"))


def test_unanswerable_question_offers_the_hand_off_button(rasa_server: RasaServer) -> None:
    chat = rasa_server.conversation()
    chat.expect("do you sell gift cards", "utter_cention_no_answer")
    # The offer's button sends its payload, which skips NLU and starts the errand form.
    chat.expect("/cention_request_errand", "utter_ask_cention_errand_form_customer_name")


def test_errand_hand_off_and_the_agents_answer_comes_back(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    other = rasa_server.conversation()
    other.expect("hi", "utter_greet")

    chat.expect("I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    chat.expect("Grace Hopper", "utter_ask_cention_errand_form_customer_email")
    chat.expect("grace@example.com", "utter_ask_cention_errand_subject")
    [created] = chat.expect("My invoice shows the wrong VAT number",
                            "utter_cention_errand_created")
    errand_id = slot_value(created, "utter_cention_errand_created", "errand_id")
    assert slot_value(created, "utter_cention_errand_created", "email") == "grace@example.com"

    errand = next(e for e in sandbox.state("cention")["errands"] if e["id"] == errand_id)
    msg = errand["attributes"]["msg"]
    assert msg["from"] == "grace@example.com"
    assert msg["subject"] == "My invoice shows the wrong VAT number"
    assert "Customer: I want to talk to support" in msg["body"]  # the transcript
    assert chat.slots()["cention_errand_id"] == errand_id

    # The agent answers in Cention; the simulator fires the callback at Rasa's connector.
    fired = requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": "We have corrected the VAT number on your invoice.",
        "callback_url": f"{rasa_server.url}/webhooks/cention/webhook",
        "api_secret": CALLBACK_SECRET,
    }, timeout=60).json()
    assert fired["status"] == 200, fired

    delivered = [t for t in chat.bot_texts() if is_response(t, "utter_cention_agent_answer")]
    assert len(delivered) == 1
    assert errand_id in delivered[0]
    assert "We have corrected the VAT number on your invoice." in delivered[0]
    slots = chat.slots()
    assert slots["cention_answer_errand_id"] == errand_id
    # Only the conversation that created the errand hears the answer.
    assert not [t for t in other.bot_texts() if is_response(t, "utter_cention_agent_answer")]

    # A callback with the wrong secret is refused and delivers nothing.
    forged = requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": "Please send your password.",
        "callback_url": f"{rasa_server.url}/webhooks/cention/webhook",
        "api_secret": "not-the-secret",
    }, timeout=60).json()
    assert forged["status"] in (401, 403), forged
    assert not any("send your password" in t for t in chat.bot_texts())

    # A REST front end cannot be pushed to: the answer is held and comes first in the reply
    # to the customer's next message (Rasa splits a text at blank lines), once.
    replies = chat.say("thank you")
    assert is_response("\n\n".join(replies[:-1]), "utter_cention_agent_answer"), replies
    assert "We have corrected the VAT number on your invoice." in replies[-2]
    assert is_response(replies[-1], "utter_you_are_welcome")
    chat.expect("thanks a lot", "utter_you_are_welcome")
    assert not [t for t in other.say("thanks") if "VAT number" in t]


def test_library_question_is_searched_again_after_try_again(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    attempts = field_default(CentionSettings, "retry_attempts")  # a read is retried
    sandbox.inject("cention", {"status": 503, "path": "/c3_library_questions",
                               "times": attempts})
    chat.expect("where is my order", "utter_vendor_unavailable")
    replies = chat.say("try again")
    assert is_response(replies[0], "utter_retrying")
    assert is_response(replies[1], "utter_cention_answer")
    assert "My orders" in replies[1]

"""A customer asks for a live chat through the real bot and gets an Imbee chat link."""

from __future__ import annotations

import pytest

from tests.e2e.bot import RasaServer, slot_value
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e


def test_live_chat_is_opened_and_the_link_given(rasa_server: RasaServer,
                                                sandbox: Sandbox) -> None:
    chat = rasa_server.conversation()
    chat.expect("I want to chat with a real person", "utter_ask_imbee_chat_form_customer_email")
    chat.expect("call me maybe", "utter_imbee_invalid_contact",
                "utter_ask_imbee_chat_form_customer_email")
    [opened] = chat.expect("+46 70 123 45 67", "utter_imbee_chat_opened")
    url = slot_value(opened, "utter_imbee_chat_opened", "url")

    state = sandbox.state("imbee")
    [token] = [t for t in state["tokens"] if t["url"] == url]
    assert token["celullar"] == "+46701234567"
    assert token["mail"] is None
    assert any(c["conversation_id"] == chat.slots()["imbee_conversation_id"]
               for c in state["chats"])
    assert chat.slots()["customer_phone"] == "+46701234567"

    # Asking again in the same conversation gives the same chat, not a second one.
    [again] = chat.expect("can I chat live with someone", "utter_imbee_chat_reused")
    assert slot_value(again, "utter_imbee_chat_reused", "url") == url


def test_contact_given_in_another_form_is_not_asked_again(rasa_server: RasaServer,
                                                          sandbox: Sandbox) -> None:
    chat = rasa_server.conversation()
    chat.expect("I want to make a complaint", "utter_ask_loop_description")
    chat.expect("Nobody answered the phone at the front desk last night.",
                "utter_ask_loop_feedback_form_customer_email")
    chat.expect("sam@example.net", "utter_loop_created")
    # The shared customer_email slot is already filled: the chat opens without a question.
    [opened] = chat.expect("live chat", "utter_imbee_chat_opened")
    url = slot_value(opened, "utter_imbee_chat_opened", "url")
    [token] = [t for t in sandbox.state("imbee")["tokens"] if t["url"] == url]
    assert token["mail"] == "sam@example.net"

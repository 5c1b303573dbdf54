"""`action_cention_agent_answer` through the real action server: an answer brought by the
Cention connector is shown; the same intent typed by a customer is not."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer

ACTION = "action_cention_agent_answer"
ANSWER = {"cention_answer_errand_id": "511055", "cention_answer_text": "Your refund is approved.",
          "cention_attachment_names": "", "cention_answer_kind": "text"}


def answer(server: ActionServer, channel: str, **changes: Any) -> dict[str, Any]:
    text = f"/cention_agent_answer{json.dumps(ANSWER)}"
    return server.run(webhook_payload(ACTION, slots={**ANSWER, **changes.pop("slots", {})},
                                      text=text, intent="cention_agent_answer",
                                      sender_id=uuid.uuid4().hex, input_channel=channel,
                                      **changes))


def test_an_answer_from_the_connector_is_shown(action_server: ActionServer) -> None:
    reply = answer(action_server, "cention")
    assert responses(reply) == ["utter_cention_agent_answer"]
    assert reply["events"] == []


@pytest.mark.parametrize("channel", ["rest", "socketio", "cmdline", ""])
def test_an_answer_typed_by_the_customer_is_not_shown(action_server: ActionServer,
                                                      channel: str) -> None:
    reply = answer(action_server, channel)
    assert responses(reply) == ["utter_cention_not_an_agent_answer"]
    # The typed "answer" is not kept anywhere a later response or action could show it.
    assert slot_events(reply) == dict.fromkeys(ANSWER)


def test_inside_a_form_the_form_resumes_either_way(action_server: ActionServer) -> None:
    for channel, response in (("cention", "utter_cention_agent_answer"),
                              ("rest", "utter_cention_not_an_agent_answer")):
        reply = answer(action_server, channel, active_loop="benti_ticket_form")
        assert responses(reply) == [response]
        assert reply["events"][-1]["event"] == "followup"
        assert reply["events"][-1]["name"] == "benti_ticket_form"

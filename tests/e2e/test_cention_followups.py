"""Cention follow-ups through the real bot (Rasa 3.6.21, the action server, the simulator): a
customer hands a question to the support team, asks how it is going while an agent picks it
up and while Cention is down, withdraws it once solved, and says "that helped" to a library
answer; another customer can neither see nor close that errand."""

from __future__ import annotations

import pytest
import requests

from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.compat import field_default
from tests.e2e.bot import RasaServer, is_response, slot_value
from tests.support.rasa_payloads import load_domain
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e

NEW_ERRAND_ROUTE = "POST /cention/s/{workspace}/capi/json/c3_new_errands"


def test_customer_follows_up_on_and_withdraws_their_errand(
    rasa_server: RasaServer, sandbox: Sandbox
) -> None:
    chat = rasa_server.conversation()
    other = rasa_server.conversation()

    chat.expect("I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    chat.expect("Ada Lovelace", "utter_ask_cention_errand_form_customer_email")
    chat.expect("ada@example.com", "utter_ask_cention_errand_subject")
    [created] = chat.expect("My invoice is missing", "utter_cention_errand_created")
    errand_id = slot_value(created, "utter_cention_errand_created", "errand_id")

    # "Any news?" while nobody has looked at it, then once an agent opened it.
    [waiting] = chat.expect("any news on my request?", "utter_cention_errand_status_waiting")
    assert errand_id in waiting
    requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/open",
                  json={"errand_id": errand_id, "agent": "Grace Agent"}, timeout=10)
    [working] = chat.expect("has anyone looked at my message yet",
                            "utter_cention_errand_status_in_progress")
    assert "Grace" not in working  # agent names stay internal by default

    # Another customer who knows (or guesses) the number learns nothing and closes nothing.
    other.expect(f"what is the status of request {errand_id}", "utter_cention_errand_unknown")
    other.expect(f"withdraw request {errand_id}", "utter_cention_errand_unknown")

    # Cention down: a clear reply, and "try again" asks about the same errand.
    attempts = field_default(CentionSettings, "retry_attempts")
    sandbox.inject("cention", {"status": 503, "path": "/c3_errand_reports", "times": attempts})
    chat.expect("any update on my support request", "utter_vendor_unavailable")
    chat.expect("try again", "utter_retrying", "utter_cention_errand_status_in_progress")

    # "Never mind, it's solved": confirmed, then closed in Cention as the closing user.
    chat.expect("never mind, it's solved", "utter_ask_cention_withdraw_confirmation")
    chat.expect("hmm", "utter_cention_withdraw_yes_or_no",
                "utter_ask_cention_withdraw_confirmation")
    chat.expect("yes", "utter_cention_errand_withdrawn")
    errand = next(e for e in sandbox.state("cention")["errands"] if e["id"] == errand_id)
    note = load_domain()["responses"]["utter_cention_errand_withdrawn_note"][0]["text"]
    assert errand["closed"] is True
    assert errand["closing_answer"]["body"] == note
    assert errand["closing_answer"]["subject"] == "My invoice is missing"
    chat.expect("any news on my request?", "utter_cention_errand_status_withdrawn")
    slots = chat.slots()
    assert slots["cention_withdraw_errand_id"] is None
    assert slots["cention_errand_id"] == errand_id

    # "That helped" after a library answer: thanked; recording is off by default.
    before = sandbox.calls("cention").get(NEW_ERRAND_ROUTE, 0)
    replies = chat.say("how do I reset my password")
    assert is_response(replies[0], "utter_cention_answer")
    chat.expect("that helped", "utter_cention_glad_it_helped")
    assert sandbox.calls("cention").get(NEW_ERRAND_ROUTE, 0) == before
    assert chat.slots()["cention_answered_question_id"] is None

"""Loop follow-ups through the real bot (Rasa 3.6.21): the customer picks the location, files
a complaint, asks where it stands; a Cention agent answers their errand and the bot offers
the Loop survey about that answer, which is stored with the errand's reference; the survey's
web link; a verified address sees its loops, a typed one nothing more.

This module runs its own Rasa and action server: the options are off by default, so its
action server has `LOOP_LET_CUSTOMER_CHOOSE_LOCATION`, `LOOP_VERIFIED_EMAIL_METADATA_KEY` and
`OFFER_SURVEY_AFTER_AGENT_ANSWER` on (see `tests.actions.test_loop_followups` for how the
Loop options are declared before `LoopSettings` has them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from rasa_service_desk.sandbox.loop import LOBBY
from tests.actions.test_loop_followups import options_action_server
from tests.e2e.bot import Conversation, RasaServer, is_response, slot_value
from tests.e2e.deploy import (
    RasaDeployment,
    channel_credentials,
    endpoints_for,
    fire_answer,
    matches_responses,
)
from tests.support.servers import Sandbox

pytestmark = pytest.mark.e2e

VERIFIED_KEY = "verified_email"
EMAIL = "grace@example.com"
TITLES = ["Andros Island Bahamas", "Costa Rica Salinas Bay"]
LOCATION_1200 = "529652b0121d5fa206011a98"
Q_READY, Q_AGAIN, Q_IMPROVE = (q["categoryId"] for q in LOBBY["questions"])
AGENT_TEXT = "We have corrected the VAT number on your invoice."


@pytest.fixture(scope="module")
def followups(rasa_bin: Path, rasa_model: Path, sandbox: Sandbox,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServer]:
    """Rasa (REST drop-in and Cention connector) and an action server with the options on,
    sharing the state (errand owners, held messages) in one SQLite file."""
    workdir = tmp_path_factory.mktemp("loop-followups")
    state_url = f"sqlite:///{workdir / 'state.sqlite3'}"
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "STATE_URL": state_url,
           "LOOP_LET_CUSTOMER_CHOOSE_LOCATION": "true",
           "LOOP_VERIFIED_EMAIL_METADATA_KEY": VERIFIED_KEY,
           "OFFER_SURVEY_AFTER_AGENT_ANSWER": "1"}
    with options_action_server(env, cwd=workdir) as actions:
        deployment = RasaDeployment(
            rasa_bin, rasa_model, workdir / "rasa", channel_credentials(sandbox),
            endpoints_for(actions.url), {"STATE_URL": state_url},
            peers={"action server": actions.process})
        deployment.start()
        try:
            yield deployment.wait_ready()
        finally:
            deployment.stop()


def turn(chat: Conversation, text: str, metadata: dict[str, Any] | None = None
         ) -> list[dict[str, Any]]:
    """One REST turn, returning the bot's whole messages (texts and buttons)."""
    body: dict[str, Any] = {"sender": chat.sender, "message": text}
    if metadata:
        body["metadata"] = metadata
    resp = requests.post(f"{chat.rasa.url}/webhooks/rest/webhook", json=body, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    messages = list(resp.json())
    chat.replies.append([m.get("text") or "" for m in messages])
    return messages


def expect(chat: Conversation, text: str, *responses: str,
           metadata: dict[str, Any] | None = None) -> list[str]:
    """Say `text`; the bot must answer with exactly `responses` (split at blank lines)."""
    texts = [m["text"] for m in turn(chat, text, metadata) if m.get("text")]
    assert matches_responses(texts, responses), (
        f"after {text!r} expected {list(responses)}, the bot said {texts}\n"
        f"slots: {chat.slots()}\n{chat.rasa.log_tails()}")
    return texts


def file_complaint(chat: Conversation, location: str, description: str) -> None:
    messages = turn(chat, "I want to make a complaint")
    assert len(messages) == 1 and is_response(messages[0].get("text") or "",
                                              "utter_loop_ask_location"), messages
    assert [b["title"] for b in messages[0]["buttons"]] == TITLES
    expect(chat, location, "utter_ask_loop_description")
    expect(chat, description, "utter_ask_loop_feedback_form_customer_email")
    expect(chat, EMAIL, "utter_loop_created")


def test_complaint_status_agent_answer_survey_offer_and_link(
    followups: RasaServer, sandbox: Sandbox
) -> None:
    sandbox.reset("loop")
    chat = followups.conversation()
    # The customer picks the location by its button (the payload is the title).
    file_complaint(chat, TITLES[1], "The shower in room 12 has no hot water.")
    mine = sandbox.state("loop")["loops"][-1]
    assert mine["location"]["id"] == LOCATION_1200

    # Someone else types the same address in another conversation.
    other = followups.conversation()
    file_complaint(other, "andros", "Secret: the minibar was never refilled.")

    [_, item] = expect(chat, "What's the status of my complaint?",
                           "utter_loop_status_intro", "utter_loop_status_open")
    assert "The shower in room 12 has no hot water." in item and TITLES[1] in item
    assert slot_value(item, "utter_loop_status_open", "location") == TITLES[1]

    # The customer hands a question to the support team; an agent answers it.
    expect(chat, "I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    expect(chat, "Grace Hopper", "utter_ask_cention_errand_subject")
    [created] = expect(chat, "My invoice shows the wrong VAT number",
                       "utter_cention_errand_created")
    errand_id = slot_value(created, "utter_cention_errand_created", "errand_id")
    fired = fire_answer(sandbox, followups.url, errand_id, AGENT_TEXT)
    assert fired["status"] == 200, fired
    slots = chat.slots()
    assert slots["loop_survey_reference"] == f"Cention errand {errand_id}"
    assert slots["agent_answered_errand"] is None

    # REST cannot push: the answer and the offer come first in the next reply.
    messages = turn(chat, "thanks")
    texts = [m["text"] for m in messages if m.get("text")]
    assert matches_responses(texts, ["utter_cention_agent_answer",
                                     "utter_offer_survey_after_answer",
                                     "utter_you_are_welcome"]), texts
    offer = next(m for m in messages if is_response(m.get("text") or "",
                                                      "utter_offer_survey_after_answer"))
    assert [b["payload"] for b in offer["buttons"]] == ["/take_survey", "/loop_survey_link"]

    # The offer's button: the survey of the chosen location, no location question again.
    before = len(sandbox.state("loop")["responses"])
    expect(chat, "/take_survey", "utter_loop_ask_bool")  # Was your room ready on time?
    expect(chat, "yes", "utter_loop_ask_bool")  # the French-only question, as Loop has it
    expect(chat, "no", "utter_loop_ask_text")
    expect(chat, "Hot water in the morning.", "utter_loop_survey_thanks",
           "utter_loop_follow_up")
    responses = sandbox.state("loop")["responses"]
    assert len(responses) == before + 1
    stored = responses[-1]
    assert stored["location"] == LOCATION_1200
    assert {r["categoryId"]: r["value"] for r in stored["responses"]} == {
        Q_READY: True, Q_AGAIN: False,
        Q_IMPROVE: f"Hot water in the morning.\n\n[Cention errand {errand_id}]"}
    assert chat.slots()["loop_survey_reference"] is None

    # The web link of the chosen location (generic: the address was only typed).
    [link] = expect(chat, "send me the survey link", "utter_loop_invite_link")
    assert slot_value(link, "utter_loop_invite_link", "url").endswith("/loop/create/1200")

    # Neither conversation saw the other's complaint.
    assert not any("minibar" in t for t in chat.bot_texts())
    assert not any("shower" in t for t in other.bot_texts())


def test_a_verified_address_sees_its_loops_a_typed_one_nothing(
    followups: RasaServer, sandbox: Sandbox
) -> None:
    sandbox.reset("loop")
    owner = followups.conversation()
    file_complaint(owner, "Costa Rica", "The lift is out of order.")
    # A second complaint in the same conversation: location and address are known.
    expect(owner, "I want to make a complaint", "utter_ask_loop_description")
    expect(owner, "The pool is closed.", "utter_loop_created")
    assert sandbox.state("loop")["loops"][-1]["location"]["id"] == LOCATION_1200
    # Another conversation, whose front end vouches for the address: it sees both.
    web = followups.conversation()
    texts = expect(web, "any news on my complaint?", "utter_loop_status_intro",
                   "utter_loop_status_open", "utter_loop_status_open",
                   metadata={VERIFIED_KEY: EMAIL})
    assert "The pool is closed." in texts[1] and "The lift is out of order." in texts[2]

    stranger = followups.conversation()
    stranger.say("hi")
    requests.post(f"{followups.url}/conversations/{stranger.sender}/tracker/events",
                  json=[{"event": "slot", "name": "customer_email", "value": EMAIL}],
                  timeout=30).raise_for_status()
    expect(stranger, "what's the status of my complaint", "utter_loop_status_none")


def test_no_offer_while_a_form_is_in_progress(
    followups: RasaServer, sandbox: Sandbox
) -> None:
    chat = followups.conversation()
    expect(chat, "I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    expect(chat, "Ada Lovelace", "utter_ask_cention_errand_form_customer_email")
    expect(chat, "ada@example.com", "utter_ask_cention_errand_subject")
    [created] = expect(chat, "My parcel arrived broken", "utter_cention_errand_created")
    errand_id = slot_value(created, "utter_cention_errand_created", "errand_id")
    expect(chat, "I want to make a complaint", "utter_loop_ask_location")
    assert chat.tracker()["active_loop"].get("name") == "loop_feedback_form"

    assert fire_answer(sandbox, followups.url, errand_id, AGENT_TEXT)["status"] == 200
    slots = chat.slots()
    assert slots["loop_survey_reference"] is None and slots["loop_location"] is None
    # The answer, the form's question again, then the form goes on: no survey offer.
    expect(chat, "Andros Island Bahamas", "utter_cention_agent_answer",
           "utter_loop_ask_location", "utter_ask_loop_description")

"""One integration added to a fresh `rasa init` bot (Rasa Open Source 3.6.21) by the recipe
designers follow, then that integration's conversation through the real Rasa, including
"try again" after the simulator made the vendor fail.

Each test adds ONLY its vendor: `python -m rasa_service_desk add <vendor> --bot <folder>`,
the import line in the bot's own actions package (next to the bot's own `action_bot_own`),
`action_endpoint` in endpoints.yml, for Cention the callback channel in credentials.yml; then
`rasa data validate --domain domain --data data` and `rasa train --domain domain`; the action
server is `python -m rasa_sdk --actions actions` from the bot's folder with PYTHONPATH unset.
See conftest.py for how and where each step runs.

The bot keeps the `config.yml` that `rasa init` wrote (Rasa's default pipeline and policies,
DIET and TED), so the test trains what a designer trains. Measured on the 2-core development
machine: `rasa init` 80 to 120 s (it trains its own model), one training of a bot with one
integration 90 to 100 s alone and 100 to 130 s with a second one beside it, `rasa run` ready
in 30 to 60 s, each conversation a few seconds; the four tests about 6.5 minutes in all.
That fits CI's budget, so no lighter pipeline is used. The run prints the time of every step
at the end.

What a vendor's answers look like is matched against the NEW bot's domain (its
`domain/bot.yml` from rasa init plus the copied bundle files), not the reference bot's.
"""

from __future__ import annotations

import re

import pytest
import requests
import yaml

from rasa_service_desk.bundles import INTEGRATIONS
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.compat import field_default
from rasa_service_desk.clients.imbee.settings import ImbeeSettings
from tests.e2e.bot import CALLBACK_SECRET
from tests.e2e.test_benti_ticket import fill_ticket_form, ticket, ticket_posts
from tests.e2e.test_loop import ANSWERS, answer_the_survey, stored_answers
from tests.newbot.conftest import (
    OWN_ACTION_NAME,
    OWN_ACTION_TEXT,
    BotChat,
    RunningBot,
    bundle_responses,
)
from tests.support.servers import Sandbox

pytestmark = pytest.mark.newbot

ANSI = re.compile(r"\x1b\[[0-9;]*m")
UNUSED_UTTERANCE = re.compile(r"The utterance '(\w+)' is not used in any story or rule\.")
NO_EXAMPLES = re.compile(
    r"The intent '(\w+)' is listed in the domain file, but is not found in the NLU training data")
#: Intents that never come from the NLU pipeline and so have no examples on purpose: the
#: agent's answer reaches Rasa already parsed from the Cention channel (an example would let
#: a customer's text pass for an agent's answer), a picked library question is a button
#: payload (`/cention_pick_question{...}`), which skips NLU, and `<vendor>_submission_update`
#: is triggered by the outbox through Rasa's API when a queued submission was filed.
INTENTS_WITHOUT_EXAMPLES: dict[str, set[str]] = {
    "benti": {"benti_submission_update"},
    "cention": {"cention_agent_answer", "cention_pick_question", "cention_submission_update"},
    "loop": {"loop_submission_update"},
}


def for_vendor(vendor: str) -> pytest.MarkDecorator:
    """The test runs on a fresh bot with `vendor` added (fixture `new_bot`)."""
    return pytest.mark.parametrize("new_bot", [vendor], indirect=True)


# -- what every vendor's bot must show ------------------------------------------------------
def assert_validation_is_clean(bot: RunningBot) -> None:
    """`rasa data validate` exited 0 (checked when it ran) and warned of nothing but the
    responses that the integration's actions and forms utter, which no rule names, and the
    intents that on purpose have no NLU examples."""
    output = ANSI.sub("", bot.prepared.validated.output)
    assert "No story structure conflicts found" in output, output[-4000:]
    assert "completed with errors" not in output
    findings = [line.strip() for line in output.splitlines()
                if re.search(r"warning|error", line, re.IGNORECASE)
                and "DeprecationWarning:" not in line]  # libraries' own, on import
    responses = bundle_responses(bot.vendor)
    intents = INTENTS_WITHOUT_EXAMPLES.get(bot.vendor, set())
    unexplained = [line for line in findings
                   if not ((m := UNUSED_UTTERANCE.search(line)) and m.group(1) in responses)
                   and not ((m := NO_EXAMPLES.search(line)) and m.group(1) in intents)]
    assert unexplained == [], "rasa data validate warned:\n" + "\n".join(unexplained)


def assert_only_its_files_were_added(bot: RunningBot) -> None:
    """Step 2 moved rasa init's domain.yml into domain/ and copied the shared files and the
    vendor's, nothing of the other vendors."""
    output = bot.prepared.added.output
    assert "moved domain.yml to" in output, output
    folder = bot.prepared.path
    assert not (folder / "domain.yml").exists()
    assert sorted(p.name for p in (folder / "domain").glob("*.yml")) == sorted(
        ["bot.yml", "shared.yml", f"{bot.vendor}.yml"])
    assert sorted(p.name for p in (folder / "data").glob("*.yml")) == sorted(
        ["nlu.yml", "rules.yml", "stories.yml", "shared.yml", f"{bot.vendor}.yml"])


def declared_actions(bot: RunningBot) -> set[str]:
    actions: set[str] = set()
    for path in (bot.prepared.path / "domain").glob("*.yml"):
        part = yaml.safe_load(path.read_text()) or {}
        actions |= {a for a in part.get("actions") or [] if not a.startswith("utter_")}
    return actions


def assert_serves_the_bot_and_the_integration(bot: RunningBot) -> None:
    """One action server, the bot's own package: its own action and the vendor's, nothing of
    the other vendors, exactly what the bot's domain declares."""
    served = set(bot.served_actions)
    assert OWN_ACTION_NAME in served
    assert any(bot.vendor in name for name in served), served
    assert served == declared_actions(bot), (
        f"served but not declared: {served - declared_actions(bot)}; "
        f"declared but not served: {declared_actions(bot) - served}")


def lines_naming(log: str, *words: str) -> list[str]:
    return [line for line in log.splitlines()
            if any(word in line.lower() for word in words)]


def assert_log_names_only_its_vendor(bot: RunningBot, log: str) -> None:
    others = [v for v in INTEGRATIONS if v != bot.vendor]
    assert lines_naming(log, bot.vendor), f"the action server never mentions {bot.vendor}:\n{log}"
    assert lines_naming(log, *others) == [], f"{bot.vendor}-only action server mentions {others}"


def assert_started_quietly_with_only_its_vendor(bot: RunningBot) -> None:
    """The action server's start: the vendor's settings only, no warning of this package."""
    log = bot.startup_log
    assert_log_names_only_its_vendor(bot, log)
    complaints = [line for line in log.splitlines()
                  if "rasa_service_desk" in line
                  and re.search(r"warning|error|traceback", line, re.IGNORECASE)]
    assert complaints == [], "\n".join(complaints)
    assert "Traceback" not in log, log


def assert_the_bots_own_action_answers(chat: BotChat) -> None:
    """rasa init's "are you a bot?" rule, extended by the designer with `action_bot_own`."""
    assert chat.responses is not None
    texts = chat.say("are you a bot?")
    assert len(texts) == 2 and chat.responses.matches(texts[0], "utter_iamabot"), texts
    assert texts[1] == OWN_ACTION_TEXT


def assert_try_again_is_understood(bot: RunningBot) -> None:
    """rasa init's bot has greetings, yes and no: "try again" must still be `try_again`."""
    for text in ("try again", "please try again", "retry"):
        parsed = requests.post(f"{bot.rasa.url}/model/parse", json={"text": text},
                               timeout=60).json()
        assert parsed["intent"]["name"] == "try_again", (text, parsed["intent_ranking"][:3])


def check_the_recipe(bot: RunningBot) -> BotChat:
    """What every vendor's test checks first; returns a conversation that asked the bot's
    own action."""
    assert_only_its_files_were_added(bot)
    assert_validation_is_clean(bot)
    assert_serves_the_bot_and_the_integration(bot)
    assert_started_quietly_with_only_its_vendor(bot)
    assert_try_again_is_understood(bot)
    chat = bot.chat()
    assert_the_bots_own_action_answers(chat)
    return chat


# -- one test per vendor ------------------------------------------------------------------
@for_vendor("benti")
def test_benti_added_to_a_fresh_bot(new_bot: RunningBot, sandbox: Sandbox) -> None:
    """Benti, the package installed into a separate action-server environment (`.venv`:
    newest rasa-sdk, pydantic 2). A Benti-only bot starts with Benti's settings alone: its
    action server's log never mentions Cention, Imbee or Loop, and shows no warning or error
    of rasa_service_desk on start. Import line in `actions/actions.py`."""
    bot = new_bot
    check_the_recipe(bot)

    chat = bot.chat()
    chat.expect("hello", "utter_greet")
    [created] = fill_ticket_form(chat, "Printer offline",
                                 "The office printer shows error E42 since this morning.")
    reference = chat.responses.value(created, "utter_benti_ticket_created", "reference")
    stored = ticket(sandbox, reference)
    assert stored["title"] == "Printer offline"
    assert "error E42" in stored["message"]
    [transcript] = stored["files"]
    assert "Customer: I'd like to open a support ticket" in transcript["preview"]

    # Benti fails as the ticket is filed; "try again" files it without retyping.
    chat = bot.chat()
    # A 503 may come from a gateway after the ticket was filed: it is never sent again by
    # the client itself, only when the customer says "try again".
    attempts = 1
    sandbox.inject("benti", {"status": 503, "path": "/tickets", "method": "POST"})
    before, posts = len(sandbox.state("benti")["tickets"]), ticket_posts(sandbox)
    chat.expect("hello", "utter_greet")
    replies = fill_ticket_form(chat, "Invoice missing", "I did not get my March invoice.")
    assert len(replies) == 1 and chat.responses.matches(replies[0], "utter_vendor_unavailable")
    assert len(sandbox.state("benti")["tickets"]) == before
    assert ticket_posts(sandbox) == posts + attempts
    _, created = chat.expect("try again", "utter_retrying", "utter_benti_ticket_created")
    stored = ticket(sandbox, chat.responses.value(created, "utter_benti_ticket_created",
                                                  "reference"))
    assert stored["title"] == "Invoice missing"
    chat.expect("try again", "utter_nothing_to_retry")

    assert_log_names_only_its_vendor(bot, bot.action_server.process.output())


@for_vendor("cention")
def test_cention_added_to_a_fresh_bot(new_bot: RunningBot, sandbox: Sandbox) -> None:
    """Cention, the package installed into the Rasa 3.6.21 environment (`.venv-rasa`:
    rasa-sdk 3.6, pydantic 1.10), which also runs the callback channel and the REST channel
    from the bot's credentials.yml. Import line in `actions/__init__.py`."""
    bot = new_bot
    check_the_recipe(bot)

    chat = bot.chat()
    replies = chat.say("how do I reset my password")
    assert replies and chat.responses.matches(replies[0], "utter_cention_answer"), replies
    assert "password reset page (https://example.com/account/reset)" in replies[0]

    # The library fails; "try again" searches the same question again.
    attempts = field_default(CentionSettings, "retry_attempts")
    sandbox.inject("cention", {"status": 503, "path": "/c3_library_questions",
                               "times": attempts})
    chat.expect("where is my order", "utter_vendor_unavailable")
    replies = chat.say("try again")
    assert chat.responses.matches(replies[0], "utter_retrying"), replies
    assert chat.responses.matches(replies[1], "utter_cention_answer"), replies
    assert "My orders" in replies[1]

    # No answer in the library: the hand-off button, the errand, the agent's answer back.
    chat = bot.chat()
    chat.expect("do you sell gift cards", "utter_cention_no_answer")
    chat.expect("/cention_request_errand", "utter_ask_cention_errand_form_customer_name")
    chat.expect("Grace Hopper", "utter_ask_cention_errand_form_customer_email")
    chat.expect("grace@example.com", "utter_ask_cention_errand_subject")
    [created] = chat.expect("My invoice shows the wrong VAT number",
                            "utter_cention_errand_created")
    errand_id = chat.responses.value(created, "utter_cention_errand_created", "errand_id")
    assert any(e["id"] == errand_id for e in sandbox.state("cention")["errands"])

    fired = requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": "We have corrected the VAT number on your invoice.",
        "callback_url": f"{bot.rasa.url}/webhooks/cention/webhook",
        "api_secret": CALLBACK_SECRET,
    }, timeout=60).json()
    assert fired["status"] == 200, f"{fired}\n{bot.rasa.log_tails()}"
    delivered = [t for t in chat.bot_texts()
                 if chat.responses.matches(t, "utter_cention_agent_answer")]
    assert len(delivered) == 1 and errand_id in delivered[0], chat.bot_texts()
    assert "We have corrected the VAT number on your invoice." in delivered[0]
    # A REST customer sees it first in the reply to their next message (Rasa splits a text
    # at blank lines), and only once.
    replies = chat.say("are you a bot?")
    held, answer = "\n\n".join(replies[:-2]), replies[-2:]
    assert chat.responses.matches(held, "utter_cention_agent_answer"), replies
    assert "We have corrected the VAT number on your invoice." in held
    assert chat.responses.matches(answer[0], "utter_iamabot") and answer[1] == OWN_ACTION_TEXT
    assert_the_bots_own_action_answers(chat)

    assert_log_names_only_its_vendor(bot, bot.action_server.process.output())


@for_vendor("imbee")
def test_imbee_added_to_a_fresh_bot(new_bot: RunningBot, sandbox: Sandbox) -> None:
    """Imbee, the package installed into a separate action-server environment (`.venv`:
    newest rasa-sdk, pydantic 2). Import line in `actions/__init__.py`."""
    bot = new_bot
    check_the_recipe(bot)

    chat = bot.chat()
    chat.expect("I want to chat with a real person", "utter_ask_imbee_chat_form_customer_email")
    chat.expect("call me maybe", "utter_imbee_invalid_contact",
                "utter_ask_imbee_chat_form_customer_email")
    [opened] = chat.expect("+46 70 123 45 67", "utter_imbee_chat_opened")
    url = chat.responses.value(opened, "utter_imbee_chat_opened", "url")
    [token] = [t for t in sandbox.state("imbee")["tokens"] if t["url"] == url]
    assert token["celullar"] == "+46701234567"
    [again] = chat.expect("can I chat live with someone", "utter_imbee_chat_reused")
    assert chat.responses.value(again, "utter_imbee_chat_reused", "url") == url

    # Imbee fails as the chat is created; "try again" opens it without asking again.
    chat = bot.chat()
    attempts = field_default(ImbeeSettings, "retry_attempts")
    sandbox.inject("imbee", {"status": 503, "path": "/chat/create", "method": "POST",
                             "times": attempts})
    chat.expect("live chat please", "utter_ask_imbee_chat_form_customer_email")
    chat.expect("zoe@example.org", "utter_vendor_unavailable")
    _, opened = chat.expect("try again", "utter_retrying", "utter_imbee_chat_opened")
    url = chat.responses.value(opened, "utter_imbee_chat_opened", "url")
    [token] = [t for t in sandbox.state("imbee")["tokens"] if t["url"] == url]
    assert token["mail"] == "zoe@example.org"

    assert_log_names_only_its_vendor(bot, bot.action_server.process.output())


@for_vendor("loop")
def test_loop_added_to_a_fresh_bot(new_bot: RunningBot, sandbox: Sandbox) -> None:
    """Loop, the package installed into the Rasa 3.6.21 environment (`.venv-rasa`:
    rasa-sdk 3.6, pydantic 1.10). Import line in `actions/actions.py`."""
    bot = new_bot
    check_the_recipe(bot)

    # Loop fails as the survey is sent; "try again" sends the same answers.
    chat = bot.chat()
    before = len(sandbox.state("loop")["responses"])
    # A 503 may come from a gateway after Loop stored the response: never sent again by the
    # client itself, only when the customer says "try again".
    sandbox.inject("loop", {"status": 503, "path": "/responses", "method": "POST"})
    replies = answer_the_survey(chat)
    assert len(replies) == 1 and chat.responses.matches(replies[0], "utter_vendor_unavailable")
    assert len(sandbox.state("loop")["responses"]) == before
    chat.expect("try again", "utter_retrying", "utter_loop_survey_thanks", "utter_loop_follow_up")
    responses = sandbox.state("loop")["responses"]
    assert len(responses) == before + 1
    assert stored_answers(responses[-1]) == {text: value for text, (_, value) in ANSWERS.items()}

    # A request passed on to the team as a loop.
    chat = bot.chat()
    chat.expect("I want to make a complaint", "utter_ask_loop_description")
    chat.expect("The shower in room 12 has no hot water since yesterday.",
                "utter_ask_loop_feedback_form_customer_email")
    chat.expect("+46 70 123 45 67", "utter_loop_created")
    loop = sandbox.state("loop")["loops"][-1]
    assert loop["description"].startswith("The shower in room 12 has no hot water")
    assert chat.slots()["loop_loop_id"] == loop["id"]

    assert_log_names_only_its_vendor(bot, bot.action_server.process.output())

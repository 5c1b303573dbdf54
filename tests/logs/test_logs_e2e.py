"""No personal data or secrets in either process's log, at any level (issue 18).

Full conversations through real Rasa 3.6.21 (`rasa run --logging-config-file
config/logging.yml`, once with `--debug`, once at its default INFO) and the real action
server (LOG_LEVEL=DEBUG, then INFO), every integration on the simulators: a Benti ticket
(and a refusal whose vendor message echoes the customer), a Cention errand whose agent answer
comes back through the Cention callback, an Imbee chat link, a Loop survey and a Loop loop.
Then neither log may hold anything the customer typed (name, e-mail, phone number in the
format typed, titles, descriptions, answers), the Imbee access link, or a configured secret.

Names and free text cannot be recognised by pattern: they stay out by construction (the
project's own lines never carry them; `config/logging.yml` drops Rasa's conversation-text
DEBUG lines), which is what this test shows. Each run starts its own Rasa and action server
(module-scoped fixture); the simulators and the trained model are shared.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from rasa_service_desk.clients.benti.settings import SANDBOX_API_KEY, SANDBOX_API_SECRET
from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN, SANDBOX_LIBRARY_TOKEN
from rasa_service_desk.clients.imbee.settings import (
    SANDBOX_AUTH_TOKEN as IMBEE_AUTH_TOKEN,
)
from rasa_service_desk.clients.imbee.settings import (
    SANDBOX_CORPORATE_TOKEN,
    SANDBOX_USER_ID_SALT,
)
from rasa_service_desk.clients.loop.settings import SANDBOX_AUTH_TOKEN as LOOP_AUTH_TOKEN
from tests.e2e.bot import CALLBACK_SECRET, Conversation, RasaServer, is_response, slot_value
from tests.e2e.conftest import (  # noqa: F401 - fixtures: the Rasa binary and the model
    RASA_START_TIMEOUT,
    connector_settings,
    rasa_bin,
    rasa_model,
    write_runtime_config,
)
from tests.support.servers import (
    ROOT,
    ActionServer,
    Process,
    Sandbox,
    free_port,
    running_action_server,
    start_process,
    wait_until_ready,
)

pytestmark = pytest.mark.e2e

LOGGING_YML = ROOT / "config" / "logging.yml"
#: Configured for both processes (Rasa sends it as endpoints.yml `token:`).
ACTION_SERVER_TOKEN = "e2e-logs-action-server-token-5f2a9c"
LOG_HASH_KEY = "e2e-logs-conversation-hash-key-77"
#: Every secret either process knows in these runs.
SECRETS = (ACTION_SERVER_TOKEN, LOG_HASH_KEY, CALLBACK_SECRET, SANDBOX_ERRAND_TOKEN,
           SANDBOX_LIBRARY_TOKEN, SANDBOX_API_KEY, SANDBOX_API_SECRET, IMBEE_AUTH_TOKEN,
           SANDBOX_CORPORATE_TOKEN, SANDBOX_USER_ID_SALT, LOOP_AUTH_TOKEN)
#: Time for the last lines of a turn to reach the log files.
SETTLE_SECONDS = 0.5


@dataclass
class Stack:
    """Rasa and the action server of one run, and what the customers typed in it."""

    level: str
    rasa: RasaServer
    action_server: ActionServer
    sandbox: Sandbox
    typed: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def conversation(self) -> Conversation:
        return self.rasa.conversation()

    def logs(self) -> dict[str, str]:
        time.sleep(SETTLE_SECONDS)
        return {"rasa": self.rasa.process.output(),
                "action server": self.action_server.process.output()}

    def assert_clean(self, *private: str) -> None:
        """Neither log holds any of `private`, nor a link or a secret of this run."""
        for name, text in self.logs().items():
            assert text.strip(), f"the {name} log is empty: nothing was checked"
            for value in (*private, *self.links, *SECRETS):
                assert value not in text, (
                    f"{value!r} appears in the {name} log ({self.level}):\n"
                    + "\n".join(line for line in text.splitlines() if value in line)[:3000])


def write_endpoints_with_token(path: Path) -> None:
    endpoints = yaml.safe_load(path.read_text())
    endpoints["action_endpoint"]["token"] = ACTION_SERVER_TOKEN
    path.write_text(yaml.safe_dump(endpoints))


@pytest.fixture(scope="module", params=["DEBUG", "INFO"])
def stack(request: pytest.FixtureRequest, rasa_bin: Path, rasa_model: Path,  # noqa: F811
          sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Rasa with the shipped logging configuration (`--debug` for DEBUG) and the action
    server at LOG_LEVEL=`level`, both configured with the same region and token."""
    level = request.param
    workdir = tmp_path_factory.mktemp(f"logs-{level.lower()}")
    registry = workdir / "state.sqlite3"
    shared = {"IMBEE_DEFAULT_REGION": "ES", "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
              "LOG_HASH_KEY": LOG_HASH_KEY, "STATE_URL": f"sqlite:///{registry}"}
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "LOG_LEVEL": level, **shared}) as action_server:
        credentials, endpoints = write_runtime_config(
            workdir, action_server.url, connector_settings(sandbox, registry))
        write_endpoints_with_token(endpoints)
        port = free_port()
        args = [str(rasa_bin), "run", "--enable-api", "--interface", "127.0.0.1",
                "--port", str(port), "--model", str(rasa_model), "--credentials",
                str(credentials), "--endpoints", str(endpoints),
                "--logging-config-file", str(LOGGING_YML)]
        if level == "DEBUG":
            args.append("--debug")
        process: Process = start_process(args, env={
            "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "CENTION_CALLBACK_SECRET": CALLBACK_SECRET, **shared,
        }, cwd=workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{url}/status", process, timeout=RASA_START_TIMEOUT)
            rasa = RasaServer(url, process, {"action server": action_server.process})
            yield Stack(level, rasa, action_server, sandbox)
        finally:
            process.stop()


# -- the conversations -----------------------------------------------------------------------


def test_benti_ticket_and_a_refusal_that_echoes_the_customer(stack: Stack) -> None:
    name, email = "Zoe Quillfeather", "zoe.quillfeather@example.org"
    title = "Printer smells of burnt toast"
    description = "The office printer on floor 3 smells of burnt toast since Tuesday."
    # Benti refuses the first ticket with a message that names the customer (as a vendor may
    # echo what it received): the defect measured in issue 18.
    stack.sandbox.inject("benti", {
        "status": 422, "path": "/tickets", "method": "POST", "times": 1,
        "body": {"error": {"code": "E_CREATOR", "message":
                           f"creator {email} ({name}, +34 612 345 678) rejected"}},
    })
    chat = stack.conversation()
    chat.expect("I'd like to open a support ticket", "utter_ask_benti_ticket_form_customer_name")
    chat.expect(name, "utter_ask_benti_ticket_form_customer_email")
    chat.expect(email, "utter_ask_benti_ticket_title")
    chat.expect(title, "utter_ask_benti_ticket_description")
    refused = chat.say(description)
    assert refused and not any(is_response(t, "utter_benti_ticket_created") for t in refused)
    replies = chat.say("try again")
    assert any(is_response(t, "utter_benti_ticket_created") for t in replies), replies

    logs = stack.logs()
    assert "benti HTTP 422 (code E_CREATOR): creator <email> (* *, <phone>) rejected" in \
        logs["action server"]
    stack.assert_clean(name, "Quillfeather", email, "zoe.quillfeather", title, "burnt toast",
                       description, "612 345 678")


def test_cention_errand_and_the_agents_answer_through_the_callback(stack: Stack) -> None:
    name, email = "Grace Marrowbone", "grace.marrowbone@example.com"
    subject = "My invoice shows the wrong VAT number"
    answer = "Dear Ms Marrowbone, we corrected the VAT number on invoice 4471."
    chat = stack.conversation()
    chat.say("how do I reset my password, Marrowbone asks")  # a library search first
    chat.expect("I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    chat.expect(name, "utter_ask_cention_errand_form_customer_email")
    chat.expect(email, "utter_ask_cention_errand_subject")
    [created] = chat.expect(subject, "utter_cention_errand_created")
    errand_id = slot_value(created, "utter_cention_errand_created", "errand_id")

    fired = requests.post(f"{stack.sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": answer,
        "attachments": [{"name": "Marrowbone-invoice-4471.pdf",
                         "content_type": "application/pdf",
                         "content": base64.b64encode(b"%PDF-1.4").decode()}],
        "callback_url": f"{stack.rasa.url}/webhooks/cention/webhook",
        "api_secret": CALLBACK_SECRET,
    }, timeout=60).json()
    assert fired["status"] == 200, fired
    replies = chat.say("thank you")
    assert any("we corrected the VAT number" in t for t in replies), replies

    stack.assert_clean(name, "Marrowbone", email, "grace.marrowbone", subject,
                       "wrong VAT number", "corrected the VAT", "reset my password")


def test_imbee_chat_link_for_a_phone_number_typed_the_local_way(stack: Stack) -> None:
    typed = "612.345.678"  # Spain, national: IMBEE_DEFAULT_REGION=ES for both processes
    chat = stack.conversation()
    chat.expect("I want to chat with a real person", "utter_ask_imbee_chat_form_customer_email")
    [opened] = chat.expect(typed, "utter_imbee_chat_opened")
    link = slot_value(opened, "utter_imbee_chat_opened", "url")
    token = re.sub(r".*/web/access/", "", link)
    assert token and token != link
    stack.links += [link, token]
    assert chat.slots()["customer_phone"] == "+34612345678"
    chat.expect("can I chat live with someone", "utter_imbee_chat_reused")

    stack.assert_clean(typed, "612345678", "+34612345678", "612 345 678")


#: Each question of the simulator's survey, what the customer answers, and whether the
#: answer is the customer's own text (asked in random order).
SURVEY = {
    "Was the service swift?": "yes, very",
    "Was the food fantastic?": "nope",
    "Was the counter clean?": "yes",
    "What else should we know?": "The gazpacho tasted of copper pennies.",
}


def test_loop_survey_with_a_free_text_answer(stack: Stack) -> None:
    chat = stack.conversation()
    [question] = chat.say("I'd like to take the survey")
    asked: list[str] = []
    replies: list[str] = []
    while len(asked) < len(SURVEY):
        text = next((q for q in SURVEY if question.startswith(q)), None)
        assert text and text not in asked, f"unexpected question {question!r} after {asked}"
        asked.append(text)
        replies = chat.say(SURVEY[text])
        if len(asked) < len(SURVEY):
            [question] = replies
    assert is_response(replies[0], "utter_loop_survey_thanks"), replies

    stack.assert_clean(SURVEY["What else should we know?"], "gazpacho", "copper pennies")


def test_loop_request_passed_on_as_a_loop(stack: Stack) -> None:
    description = "The jacuzzi in suite 7 smells of sulphur since the renovation."
    phone = "+46 70 123 45 67"
    chat = stack.conversation()
    chat.expect("I want to make a complaint", "utter_ask_loop_description")
    chat.expect(description, "utter_ask_loop_feedback_form_customer_email")
    chat.expect(phone, "utter_loop_created")
    assert stack.sandbox.state("loop")["loops"][-1]["description"] == description

    stack.assert_clean(description, "jacuzzi", "sulphur", phone, "+46701234567",
                       "701234567", "123 45 67")


# -- what the logs still hold ----------------------------------------------------------------


def test_the_logs_stay_useful(stack: Stack) -> None:
    """Redaction must not blind the operator: the run's lines, levels, intents and
    confidences are there, and at DEBUG Rasa's dialogue trace is."""
    logs = stack.logs()
    if os.environ.get("E2E_LOGS_KEEP"):  # for a person inspecting a run
        for name, text in logs.items():
            Path(os.environ["E2E_LOGS_KEEP"], f"{stack.level}-{name}.log").write_text(text)
    rasa, actions = logs["rasa"], logs["action server"]
    assert "benti: ticket" in actions and "loop: loop" in actions
    assert re.search(r"cention errand \S+ created \(conv=[0-9a-f]{8}\)", actions), actions[-3000:]
    assert "Cention callback" in rasa
    if stack.level == "DEBUG":
        assert "DEBUG" in actions and "rasa_service_desk.clients.http" in actions
        assert re.search(r"Predicted next action '\w+' with confidence \d\.\d\d", rasa)
        assert re.search(r"confidence\W+0\.\d{4,}", rasa)  # not masked as a phone number
    else:
        assert " DEBUG " not in rasa

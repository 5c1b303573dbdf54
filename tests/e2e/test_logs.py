"""What a customer types never reaches the logs of the action server or Rasa, nor do the
vendor credentials the bot uses."""

from __future__ import annotations

import pytest

from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN, SANDBOX_LIBRARY_TOKEN
from tests.e2e.bot import CALLBACK_SECRET, RasaServer

pytestmark = pytest.mark.e2e


def test_contact_data_and_secrets_stay_out_of_the_logs(rasa_server: RasaServer) -> None:
    chat = rasa_server.conversation()
    chat.expect("live chat please", "utter_ask_imbee_chat_form_customer_email")
    chat.expect("zoe.private@example.org", "utter_imbee_chat_opened")
    chat.expect("how do I reset my password", "utter_cention_answer", "utter_cention_suggestions")

    logs = {"rasa": rasa_server.process.output(),
            **{name: p.output() for name, p in rasa_server.peers.items()}}
    for name, text in logs.items():
        assert text.strip(), f"the {name} log is empty: nothing was checked"
        for secret in ("zoe.private@example.org", "zoe.private", SANDBOX_ERRAND_TOKEN,
                       SANDBOX_LIBRARY_TOKEN, CALLBACK_SECRET):
            assert secret not in text, f"{secret!r} appears in the {name} log"

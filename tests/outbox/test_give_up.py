"""A submission whose vendor stays down longer than OUTBOX_GIVE_UP_AFTER_SECONDS is given
up: the conversation is told, the update action says it was not filed, and asking again
sends it anew."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.outbox.cases import CASES, Case, submit, update
from tests.outbox.conftest import FakeRasa, entries_of, outbox_env, wait_for
from tests.support.rasa_payloads import responses
from tests.support.servers import ActionServer, Sandbox, running_action_server

NOT_FILED = {"benti-ticket": "utter_benti_ticket_not_filed",
             "cention-errand": "utter_cention_errand_not_filed",
             "loop-survey": "utter_loop_survey_not_sent",
             "loop-create": "utter_loop_create_not_sent"}


@pytest.fixture(scope="module")
def state_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('give-up') / 'state.sqlite3'}"


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> Iterator[ActionServer]:
    env = outbox_env(sandbox.url, fake_rasa.url, state_url,
                     OUTBOX_GIVE_UP_AFTER_SECONDS="0.5")
    with running_action_server(env) as running:
        yield running


@pytest.mark.parametrize("name", CASES.keys())
def test_a_vendor_down_past_the_give_up_time_fails_it_and_asking_again_sends_anew(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str,
        name: str) -> None:
    case: Case = CASES[name]
    sender, marker = uuid.uuid4().hex, f"Given up {uuid.uuid4().hex[:10]}"
    # Down for the customer's attempt and the worker's, which comes 0.8 to 1.2 s later (the
    # 1 s backoff cap with jitter), past the give-up time of 0.5 s: given up after it.
    sandbox.inject(case.vendor, {**case.fault, "status": 503, "times": 2})
    assert responses(submit(server, case, sender, marker)) == [case.queued]
    wait_for(lambda: fake_rasa.calls_for(sender), "Rasa is told the submission failed")
    entries = list(entries_of(state_url, sender).values())
    assert len(entries) == 1, server.process.output()[-4000:]
    [entry] = entries
    assert entry["state"] == "failed" and entry["notified"] is True
    assert "503" in entry["last_error"]
    assert [call["intent"] for call in fake_rasa.calls_for(sender)] == [case.intent]
    assert responses(update(server, case, sender)) == [NOT_FILED[name]]
    assert responses(update(server, case, sender)) == []
    assert case.filed(sandbox, marker) == []

    again = submit(server, case, sender, marker)
    assert responses(again) == case.confirmed
    assert len(case.filed(sandbox, marker)) == 1

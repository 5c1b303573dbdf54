"""Library search wording: real questions find their answer whatever matching mode Cention's
workspace uses, because the action sends the significant words and then falls back to the
most distinctive word (`CENTION_SEARCH_STRATEGY=keywords`, the default)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.rasa_payloads import responses, webhook_payload
from tests.support.servers import ActionServer, Sandbox, running_action_server

ANSWER = "action_cention_answer"
REFUND = "When will I get my refund?"


def search_mode(sandbox: Sandbox, mode: str) -> None:
    resp = requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/search-mode",
                         json={"mode": mode}, timeout=10)
    assert resp.status_code == 200, resp.text


def server_for(sandbox: Sandbox, strategy: str) -> Any:
    return running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                  "CENTION_SEARCH_STRATEGY": strategy,
                                  "CENTION_CACHE_TTL_SECONDS": "0"})


@pytest.fixture(scope="module")
def keywords(sandbox: Sandbox) -> Iterator[ActionServer]:
    with server_for(sandbox, "keywords") as server:
        yield server


@pytest.fixture(autouse=True)
def _any_mode_afterwards(sandbox: Sandbox) -> Iterator[None]:
    yield
    search_mode(sandbox, "any")


@pytest.mark.parametrize("mode", ["any", "all", "phrase"])
def test_a_whole_sentence_finds_its_answer_in_every_matching_mode(
    keywords: ActionServer, sandbox: Sandbox, mode: str
) -> None:
    search_mode(sandbox, mode)
    reply = keywords.run(webhook_payload(ANSWER, text=REFUND))
    assert responses(reply)[0] == "utter_cention_answer", (mode, reply)
    assert "return label" in reply["responses"][0]["answer"]


def test_a_question_with_no_answer_still_says_so(keywords: ActionServer,
                                                 sandbox: Sandbox) -> None:
    search_mode(sandbox, "all")
    reply = keywords.run(webhook_payload(ANSWER, text="Do you sell gift vouchers?"))
    assert responses(reply) == ["utter_cention_no_answer"]


def test_the_sentence_strategy_sends_the_question_as_typed(sandbox: Sandbox) -> None:
    """The operator's alternative, for workspaces whose search ranks whole sentences well;
    in the stricter modes a whole sentence then finds nothing, which is why it is not the
    default."""
    with server_for(sandbox, "sentence") as server:
        assert responses(server.run(webhook_payload(ANSWER, text=REFUND)))[0] == \
            "utter_cention_answer"
        search_mode(sandbox, "all")
        assert responses(server.run(webhook_payload(ANSWER, text=REFUND))) == \
            ["utter_cention_no_answer"]


def test_an_unknown_strategy_stops_start(sandbox: Sandbox, tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.support.servers import free_port

    proc = subprocess.run(
        [sys.executable, "-m", "rasa_sdk", "--actions", "rasa_service_desk.actions.cention",
         "--port", str(free_port())],
        env={"PATH": "/usr/bin:/bin", "SANDBOX": "1", "CENTION_SEARCH_STRATEGY": "fuzzy",
             "STATE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "CENTION_SEARCH_STRATEGY" in proc.stderr

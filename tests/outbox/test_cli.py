"""`python -m rasa_service_desk outbox list|retry|drop`, run as an operator would, against
the store the action server uses."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rasa_service_desk.outbox import NAMESPACE, Kind, new_entry
from rasa_service_desk.state import open_store
from tests.outbox.cases import BENTI, benti_tickets, submit
from tests.outbox.conftest import FakeRasa, entries_of, outbox_env, wait_for
from tests.support.rasa_payloads import responses
from tests.support.servers import ROOT, ActionServer, Sandbox, running_action_server

#: Benti asks for ten minutes: the ticket waits in the outbox until an operator acts.
BUSY = {**BENTI.fault, "status": 429, "headers": {"Retry-After": "600"}}


@pytest.fixture(scope="module")
def state_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('outbox-cli') / 'state.sqlite3'}"


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> Iterator[ActionServer]:
    with running_action_server(outbox_env(sandbox.url, fake_rasa.url, state_url)) as running:
        yield running


def outbox(state_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rasa_service_desk", "outbox", *args],
                          env={"PATH": "/usr/bin:/bin", "STATE_URL": state_url,
                               "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def queue_ticket(server: ActionServer, sandbox: Sandbox, state_url: str) -> tuple[str, str, str]:
    """A ticket waiting in the outbox; its conversation, title and outbox key."""
    sender, title = uuid.uuid4().hex, f"CLI ticket {uuid.uuid4().hex[:10]}"
    sandbox.inject("benti", BUSY)
    assert responses(submit(server, BENTI, sender, title)) == [BENTI.queued]
    [key] = entries_of(state_url, sender)
    return sender, title, key


def test_list_shows_the_waiting_without_customer_data(
        server: ActionServer, sandbox: Sandbox, state_url: str) -> None:
    sender, title, key = queue_ticket(server, sandbox, state_url)
    table = outbox(state_url, "list")
    assert table.returncode == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if line.startswith(key[:12])]
    assert "pending" in row and "benti.create_ticket" in row
    assert table.stdout.splitlines()[0].split()[:3] == ["id", "state", "operation"]
    listed = outbox(state_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [found] = [item for item in json.loads(listed.stdout) if item["id"] == key[:12]]
    assert found["state"] == "pending" and found["attempts"] == 1
    assert found["next_attempt_in_seconds"] >= 590
    assert found["conversation_told"] is False
    for output in (table.stdout, listed.stdout):
        for secret in (sender, title, "grace.hopper@example.com", "Grace Hopper", key):
            assert secret not in output
    outbox(state_url, "drop", key[:12])


def test_retry_makes_one_due_now_and_the_worker_files_it(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    sender, title, key = queue_ticket(server, sandbox, state_url)
    done = outbox(state_url, "retry", key[:10])
    assert done.returncode == 0, done.stderr
    assert "1 submission(s)" in done.stdout
    wait_for(lambda: fake_rasa.calls_for(sender), "the retried ticket is filed and told")
    assert len(benti_tickets(sandbox, title)) == 1


def test_retry_all_makes_every_waiting_one_due(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    queued = [queue_ticket(server, sandbox, state_url) for _ in range(2)]
    done = outbox(state_url, "retry", "--all")
    assert done.returncode == 0, done.stderr
    assert "2 submission(s)" in done.stdout
    for sender, title, _ in queued:
        wait_for(lambda: fake_rasa.calls_for(sender), "each ticket is told")  # noqa: B023
        assert len(benti_tickets(sandbox, title)) == 1


def test_drop_forgets_it_and_the_customer_may_submit_it_anew(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    sender, title, key = queue_ticket(server, sandbox, state_url)
    dropped = outbox(state_url, "drop", key[:12])
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith(f"dropped {key[:12]}")
    assert entries_of(state_url, sender) == {}
    again = submit(server, BENTI, sender, title)
    assert responses(again) == ["utter_benti_ticket_created"]
    assert len(benti_tickets(sandbox, title)) == 1
    assert fake_rasa.calls_for(sender) == []  # the customer was answered at once


def test_retry_of_a_given_up_one_after_the_customer_filed_it_again_files_no_second(
        server: ActionServer, sandbox: Sandbox, fake_rasa: FakeRasa, state_url: str) -> None:
    """Refused by Benti later, the ticket is given up; the customer asks again and it is
    filed. An operator's `retry --all` must not file it a second time."""
    sender, title = uuid.uuid4().hex, f"CLI given up {uuid.uuid4().hex[:10]}"
    sandbox.inject("benti", {**BENTI.fault, "status": 503},
                   {**BENTI.fault, "status": 422, "body": {"error": "refused"}})
    assert responses(submit(server, BENTI, sender, title)) == [BENTI.queued]
    wait_for(lambda: fake_rasa.calls_for(sender), "the refusal is told")
    assert responses(submit(server, BENTI, sender, title)) == ["utter_benti_ticket_created"]
    assert outbox(state_url, "retry", "--all").returncode == 0
    # Any pass the worker makes now would file the duplicate; wait for the outbox to settle.
    wait_for(lambda: all(e.get("state") != "pending"
                         for e in entries_of(state_url, sender).values()),
             "the outbox has nothing left to send for this conversation")
    assert len(benti_tickets(sandbox, title)) == 1


async def _write_entries(url: str, keys: list[str]) -> None:
    async def never(payload: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("not sent")

    kind = Kind("benti.create_ticket", "benti", never, intent="benti_submission_update")
    store = open_store(url)
    for key in keys:
        entry = new_entry(kind, "someone", {"title": "x"}, uncertain_since=None, error="503")
        await store.put(NAMESPACE, key, {**entry, "next_attempt_at": time.time() + 600})
    await store.close()


def test_an_unknown_or_ambiguous_id_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    asyncio.run(_write_entries(url, ["abc1" + "0" * 60, "abc2" + "0" * 60]))
    for args in (("retry", "ffff"), ("drop", "ffff")):
        unknown = outbox(url, *args)
        assert unknown.returncode == 1
        assert "no outbox entry starts with 'ffff'" in unknown.stderr
    for args in (("retry", "abc"), ("drop", "abc")):
        ambiguous = outbox(url, *args)
        assert ambiguous.returncode == 1
        assert "2 outbox entries start with 'abc'" in ambiguous.stderr
    assert "Traceback" not in unknown.stderr + ambiguous.stderr
    assert len(json.loads(outbox(url, "list", "--json").stdout)) == 2  # nothing changed

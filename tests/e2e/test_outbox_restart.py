"""Queued submissions survive an action server killed with SIGKILL: after the restart every
one reaches its vendor exactly once, counted at the simulator, and the outbox is empty.

No Rasa here: the tests drive the real action server over HTTP with the requests Rasa 3.6
sends, and a small stand-in for Rasa's HTTP API takes the outbox's announcements
(`trigger_intent`), so an entry is done (and leaves the outbox) once its conversation was
told.

- 100 Benti tickets, SQLite, the default store (the default `STATE_URL`, a file relative
  to the server's working directory): one server, killed and started again in the same
  directory.
- 100 Benti tickets, Redis: two replicas sharing it, both killed and both started again;
  the two deliver side by side, each ticket once.
- Loop loops killed in flight: Loop is slow to reply, the worker's requests are on their
  way when the server dies, and Loop has created those loops. After the restart (once the
  dead worker's leases expire) the worker asks Loop for each of them before sending and
  finds it: no loop twice. (Benti has no lookup: a ticket in flight at a crash may be filed
  twice by design, docs/operations.md, so the Benti variants kill while nothing is in
  flight: the first run's worker looks for due submissions only every 300 s. The servers
  come back while Benti is still down, try, and deliver once it is back.)

"Killed" means the whole process tree: rasa-sdk serves from a Sanic worker process under a
manager process, and the delivery worker runs in the former; a container stop or an
out-of-memory kill takes both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from rasa_service_desk.state import DEFAULT_URL
from tests.support.fake_rasa import RASA_TOKEN, FakeRasa, running_fake_rasa, wait_for
from tests.support.rasa_payloads import responses, webhook_payload
from tests.support.redis import running_redis
from tests.support.servers import (
    ROOT,
    ActionServer,
    Sandbox,
    running_action_server,
    running_sandbox,
)

pytestmark = pytest.mark.e2e


TICKETS = 100
CREATE_TICKET = "action_benti_create_ticket"
CREATE_LOOP = "action_loop_create_loop"
#: Loops queued for the in-flight variant: more than one delivery pass takes at once (8).
LOOPS = 12
#: How long Loop holds its reply to each of the first loops after it is back (its client
#: waits 10 s): the server is killed meanwhile.
LOOP_DELAY = 8.0
#: The dead worker's leases expire after 90 s (outbox.worker.LEASE_SECONDS), then delivery
#: goes on; this bounds the whole wait after the restart.
DELIVERY_TIMEOUT = 150.0


# -- processes ------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_hard(servers: Sequence[ActionServer]) -> None:
    """SIGKILL every process of these action servers at once (no shutdown hook runs)."""
    pids = []
    for server in servers:
        pids += [server.process.popen.pid, *descendants(server.process.popen.pid)]
    assert len(pids) > len(servers), "no Sanic worker process found under the server"
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for server in servers:
        server.process.popen.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in pids):
        assert time.monotonic() < deadline, "killed processes still running"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rindex(")") + 2:].split()[0]


def outbox_env(sandbox: Sandbox, rasa: FakeRasa, state_url: str,
               poll_seconds: float) -> dict[str, str]:
    return {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "STATE_URL": state_url,
            "OUTBOX_RASA_URL": rasa.url, "OUTBOX_RASA_TOKEN": RASA_TOKEN,
            "OUTBOX_POLL_SECONDS": str(poll_seconds),
            "OUTBOX_MAX_BACKOFF_SECONDS": "2"}


@contextmanager
def action_servers(count: int, env: dict[str, str],
                   workdir: Path) -> Iterator[list[ActionServer]]:
    """`count` action servers (replicas) in `workdir`, stopped at the end if still alive."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        yield [stack.enter_context(running_action_server(env, cwd=workdir))
               for _ in range(count)]


def outbox_entries(state_url: str, workdir: Path) -> list[dict[str, Any]]:
    """`python -m rasa_service_desk outbox list --json`, as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "rasa_service_desk", "outbox", "list", "--json"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "STATE_URL": state_url},
        cwd=workdir, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout))


def server_logs(servers: Sequence[ActionServer]) -> Callable[[], str]:
    """The last lines of each server's log, for a failed wait."""
    return lambda: "\n".join(f"--- action server {n} ---\n"
                              + "\n".join(s.process.output().splitlines()[-30:])
                              for n, s in enumerate(servers))


def vendor_posts(sandbox: Sandbox, vendor: str, path: str) -> int:
    """How many times the simulator was asked to create something at `path`."""
    return sum(n for route, n in sandbox.calls(vendor).items()
               if route.startswith("POST ") and route.endswith(path))


def run_all(servers: Sequence[ActionServer], payloads: Sequence[dict[str, Any]]
            ) -> list[list[str]]:
    """Run the action calls spread over the servers (8 at a time); the responses uttered."""
    def one(item: tuple[int, dict[str, Any]]) -> list[str]:
        index, payload = item
        return responses(servers[index % len(servers)].run(payload))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, enumerate(payloads)))


# -- Benti: 100 tickets queued, the server killed, restarted ------------------------------


def ticket_payloads(run: str) -> dict[str, dict[str, Any]]:
    """Title -> the action call filing it, each in its own conversation."""
    return {f"Restart {run} ticket {n:03d}": webhook_payload(
        CREATE_TICKET, sender_id=f"restart-{run}-{n:03d}", slots={
            "customer_name": "Grace Hopper", "customer_email": "grace@example.com",
            "benti_ticket_title": f"Restart {run} ticket {n:03d}",
            "benti_ticket_description": f"Ticket number {n} of this run."})
        for n in range(TICKETS)}


def tickets_by_title(sandbox: Sandbox, titles: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ticket in sandbox.state("benti")["tickets"]:
        if ticket.get("title") in titles:
            counts[ticket["title"]] = counts.get(ticket["title"], 0) + 1
    return counts


def kill_and_deliver_tickets(sandbox: Sandbox, rasa: FakeRasa, state_url: str,
                             workdir: Path, replicas: int) -> None:
    """Queue TICKETS tickets with Benti down, kill the servers, bring Benti back, restart
    them; every ticket is filed once and its conversation told once."""
    run = uuid.uuid4().hex[:6]
    payloads = ticket_payloads(run)
    titles = set(payloads)
    sandbox.inject("benti", {"status": 503, "path": "/tickets", "method": "POST",
                             "times": 100_000})
    # The first run's worker looks for due submissions every 300 s: none is in flight at
    # the kill.
    with action_servers(replicas, outbox_env(sandbox, rasa, state_url, 300),
                        workdir) as servers:
        answered = run_all(servers, list(payloads.values()))
        assert answered == [["utter_benti_ticket_queued"]] * TICKETS, answered
        queued = outbox_entries(state_url, workdir)
        assert sorted(e["state"] for e in queued) == ["pending"] * TICKETS, queued
        assert {e["operation"] for e in queued} == {"benti.create_ticket"}
        kill_hard(servers)
    assert tickets_by_title(sandbox, titles) == {}
    assert rasa.told() == {}

    # Started again with Benti still down: each server's worker tries, and waits.
    with action_servers(replicas, outbox_env(sandbox, rasa, state_url, 0.5),
                        workdir) as servers:
        wait_for(lambda: all("still not filed" in s.process.output() for s in servers),
                 "every server's worker tries while Benti is down", 60,
                 every=0.5, details=server_logs(servers))
        sandbox.reset("benti")  # Benti is back (its faults and counters are forgotten)
        wait_for(lambda: len(tickets_by_title(sandbox, titles)) == TICKETS,
                 f"the simulator holds the {TICKETS} tickets", DELIVERY_TIMEOUT,
                 every=0.5, details=server_logs(servers))
        wait_for(lambda: outbox_entries(state_url, workdir) == [],
                 "the outbox is empty", 60,
                 every=0.5, details=server_logs(servers))
        counts = tickets_by_title(sandbox, titles)
        assert counts == dict.fromkeys(titles, 1), {t: n for t, n in counts.items() if n != 1}
        # Each was sent once: nothing was filed twice and then merged away.
        assert vendor_posts(sandbox, "benti", "/ticketing/v1/tickets") == TICKETS
        senders = {p["sender_id"] for p in payloads.values()}
        told = rasa.told()
        assert told == {key: ["benti_submission_update"] for key in senders}, {
            s: i for s, i in told.items() if i != ["benti_submission_update"]}
        # Sent once each, side by side where there are two replicas.
        filed = [server.process.output().count(" filed after ") for server in servers]
        assert sum(filed) == TICKETS and all(filed), filed
        for server in servers:
            assert server.process.alive(), server.process.output()[-3000:]


def test_sqlite_default_one_server_killed_and_restarted_files_every_ticket_once(
        tmp_path: Path) -> None:
    """The default `STATE_URL` (set to it, so the caller's environment cannot change it):
    the state file in the server's working directory, which the restarted server (same
    directory) reads."""
    workdir = tmp_path / "action-server"
    with running_sandbox() as sandbox, running_fake_rasa() as rasa:
        kill_and_deliver_tickets(sandbox, rasa, DEFAULT_URL, workdir, replicas=1)
    assert (workdir / DEFAULT_URL.removeprefix("sqlite:///")).is_file()


def test_two_replicas_sharing_redis_killed_and_restarted_file_every_ticket_once(
        tmp_path: Path) -> None:
    with running_sandbox() as sandbox, running_fake_rasa() as rasa, running_redis() as redis:
        kill_and_deliver_tickets(sandbox, rasa, redis.url, tmp_path / "action-servers",
                                 replicas=2)


# -- Loop: killed while the loops are on their way ----------------------------------------


def loop_descriptions(sandbox: Sandbox, descriptions: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for loop in sandbox.state("loop")["loops"]:
        if loop.get("description") in descriptions:
            counts[loop["description"]] = counts.get(loop["description"], 0) + 1
    return counts


def test_loops_in_flight_at_the_kill_are_found_at_loop_not_created_twice(
        tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    payloads = {f"Room {run}-{n:02d}: the air conditioning rattles all night.": webhook_payload(
        CREATE_LOOP, sender_id=f"loop-restart-{run}-{n:02d}", slots={
            "loop_description": f"Room {run}-{n:02d}: the air conditioning rattles all night.",
            "customer_name": "Jason Doe", "customer_email": f"guest-{run}-{n}@example.com"})
        for n in range(LOOPS)}
    descriptions = set(payloads)
    workdir = tmp_path / "action-server"
    with running_sandbox() as sandbox, running_fake_rasa() as rasa:
        state_url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
        env = outbox_env(sandbox, rasa, state_url, 0.5)
        sandbox.inject("loop", {"status": 503, "path": "/loops", "method": "POST",
                                "times": 100_000})
        with action_servers(1, env, workdir) as servers:
            answered = run_all(servers, list(payloads.values()))
            assert answered == [["utter_loop_create_queued"]] * LOOPS, answered
            # Loop comes back, slow: it creates each of the next 8 loops at once but holds
            # its reply LOOP_DELAY s.
            sandbox.reset("loop")
            sandbox.inject("loop", {"delay": LOOP_DELAY, "after": True, "path": "/loops",
                                    "method": "POST", "times": 8})
            wait_for(lambda: vendor_posts(sandbox, "loop", "/loops") > 0,
                     "the worker sends a loop", 30,
                     every=0.5, details=server_logs(servers))
            # The pass in flight takes up to 8 at once: let them all leave.
            settle = time.monotonic() + 2.0
            while vendor_posts(sandbox, "loop", "/loops") < 8 and time.monotonic() < settle:
                time.sleep(0.1)
            sent = vendor_posts(sandbox, "loop", "/loops")
            kill_hard(servers)
        assert vendor_posts(sandbox, "loop", "/loops") == sent
        # Loop has every loop sent; the worker died waiting for the replies. (A request
        # that slipped in between the reset and the delay was answered at once: that loop
        # is filed and out of the waiting ones.)
        assert sum(loop_descriptions(sandbox, descriptions).values()) == sent
        waiting = [e for e in outbox_entries(state_url, workdir) if e["state"] == "pending"]
        in_flight = sent - (LOOPS - len(waiting))
        assert 1 <= in_flight <= 8, (sent, waiting)

        with action_servers(1, env, workdir) as servers:
            wait_for(lambda: outbox_entries(state_url, workdir) == [],
                     "the outbox is empty", DELIVERY_TIMEOUT,
                     every=0.5, details=server_logs(servers))
            counts = loop_descriptions(sandbox, descriptions)
            assert counts == dict.fromkeys(descriptions, 1), {
                d: n for d, n in counts.items() if n != 1}
            # The loops in flight were found at Loop, not sent again.
            assert vendor_posts(sandbox, "loop", "/loops") == LOOPS
            senders = {p["sender_id"] for p in payloads.values()}
            assert rasa.told() == {key: ["loop_submission_update"] for key in senders}
            # Asked first and found at Loop: each loop that was in flight.
            assert servers[0].process.output().count("the vendor has it") == in_flight

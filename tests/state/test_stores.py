"""The state store's contract, on SQLite and on a real Redis: what replicas and Rasa share."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis

from rasa_service_desk.clients.cention.errand_registry import Delivery, ErrandRegistry
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.state import StateStore, StateUnavailable, load_store, open_store
from rasa_service_desk.state import redis as redis_backend
from rasa_service_desk.state.held_messages import hold, release
from tests.support.redis import RedisServer
from tests.support.servers import ROOT, free_port


async def test_values_are_stored_replaced_and_deleted(store: StateStore) -> None:
    assert await store.get("ns", "k") is None
    await store.put("ns", "k", {"a": 1})
    await store.put("ns", "k", {"a": 2, "text": "Grüße"})
    assert await store.get("ns", "k") == {"a": 2, "text": "Grüße"}
    assert await store.get("other", "k") is None  # namespaces are separate
    await store.delete("ns", "k")
    await store.delete("ns", "k")  # absent: no error
    assert await store.get("ns", "k") is None


async def test_entries_expire(store: StateStore) -> None:
    await store.put("ns", "short", {"v": 1}, ttl=0.2)
    await store.append("q", "short", {"v": 1}, ttl=0.2)
    assert await store.get("ns", "short") == {"v": 1}
    await asyncio.sleep(0.4)
    assert await store.get("ns", "short") is None
    assert await store.take_all("q", "short") == []
    assert await store.claim("ns", "short", {"v": 2})  # an expired claim can be taken again
    assert await store.get("ns", "short") == {"v": 2}
    assert not await store.claim("ns", "short", {"v": 3})  # a live one cannot
    assert await store.get("ns", "short") == {"v": 2}


@pytest.mark.parametrize("value", [
    {"text": "cut emoji \ud83d"},  # a customer's text cut inside an emoji: a lone surrogate
    {"reference": 2**70 + 1, "negative": -(2**64) - 3},  # integers beyond 64 bits stay exact
    {"text": "Grüße \u2028 \u0000", "nested": {"list": [1, 2.5, None, True]}},
])
async def test_stored_values_come_back_exactly(store: StateStore, value: dict) -> None:
    await store.put("ns", "odd", value)
    assert await store.get("ns", "odd") == value
    assert await store.claim("ns", "odd-claim", value)
    assert await store.get("ns", "odd-claim") == value
    await store.append("q", "odd", value)
    assert await store.take_all("q", "odd") == [value]


async def test_values_json_cannot_hold_are_refused_or_written_as_null(
        store: StateStore) -> None:
    """A datetime is refused (as the standard library always did), not stored as text that
    would come back as another type; NaN is written as null, as in vendor calls."""
    with pytest.raises(TypeError):
        await store.put("ns", "when", {"at": datetime.now(timezone.utc)})
    await store.put("ns", "nan", {"score": float("nan")})
    assert await store.get("ns", "nan") == {"score": None}


async def test_retention_caps_every_expiry(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}", retention_days=0.3 / 86400)
    await store.put("ns", "k", {"v": 1}, ttl=3600)
    await asyncio.sleep(0.5)
    assert await store.get("ns", "k") is None


async def test_of_fifty_concurrent_claims_exactly_one_wins(store: StateStore) -> None:
    results = await asyncio.gather(*(store.claim("ns", "errand:1", {"by": n})
                                     for n in range(50)))
    assert sum(results) == 1
    winner = results.index(True)
    assert await store.get("ns", "errand:1") == {"by": winner}


async def test_a_claim_puts_its_companion_value_in_the_same_write(store: StateStore) -> None:
    """The submission path claims its key and points the conversation at it in one write;
    the pointer is written by the winner and by a repeat alike (it names the same key)."""
    assert await store.claim("claims", "k", {"state": "sending"},
                             also=("pointers", "conv", {"key": "k"}, 60))
    assert await store.get("pointers", "conv") == {"key": "k"}
    assert not await store.claim("claims", "k", {"state": "other"},
                                 also=("pointers", "conv", {"key": "k", "again": True}, 60))
    assert await store.get("claims", "k") == {"state": "sending"}
    assert await store.get("pointers", "conv") == {"key": "k", "again": True}
    await store.claim("claims", "short", {}, also=("pointers", "short", {"v": 1}, 0.2))
    await asyncio.sleep(0.4)
    assert await store.get("pointers", "short") is None  # the companion's own expiry


async def test_the_winner_of_a_claim_reads_what_it_asked_for_with_it(store: StateStore) -> None:
    """`claim_and_read`: the submission path claims its key and reads the "outcome unknown"
    mark of an earlier attempt at once; only the caller that claimed gets the value."""
    await store.put("marks", "k", {"since": 12.5})
    claimed, found = await store.claim_and_read(
        "claims", "k", {"state": "sending"}, also=("pointers", "conv", {"key": "k"}, 60),
        read=("marks", "k"))
    assert (claimed, found) == (True, {"since": 12.5})
    assert await store.get("pointers", "conv") == {"key": "k"}
    assert await store.claim_and_read("claims", "k", {"state": "again"},
                                      read=("marks", "k")) == (False, None)
    assert await store.get("claims", "k") == {"state": "sending"}
    assert await store.claim_and_read("claims", "fresh", {}, read=("marks", "none")) == (
        True, None)


async def test_concurrent_commands_each_get_their_own_result(store: StateStore) -> None:
    """Redis sends the commands of concurrent callers in one pipeline: every caller must
    still get its own answer, and one command's error must not fail the others."""
    await asyncio.gather(*(store.put("ns", f"k{n}", {"n": n}) for n in range(200)))
    await store.append("ns", "a-queue", {"not": "a value"})
    results = await asyncio.gather(
        *(store.get("ns", f"k{n}") for n in range(200)), store.get("ns", "missing"),
        *(store.claim("ns", f"c{n % 7}", {"n": n}) for n in range(70)),
        return_exceptions=True)
    assert results[:200] == [{"n": n} for n in range(200)]
    assert results[200] is None
    assert sum(results[201:]) == 7  # type: ignore[arg-type]
    for key in range(7):
        assert (await store.get("ns", f"c{key}"))["n"] % 7 == key  # type: ignore[index]


async def test_a_failing_command_fails_only_its_caller_on_redis(
        redis_server: RedisServer) -> None:
    store = open_store(redis_server.url)
    await store.put("ns", "value", {"v": 1})
    await store.append("ns", "queue", {"v": 2})  # a list: GET on it is a WRONGTYPE error
    wrong, right = await asyncio.gather(store.get("ns", "queue"), store.get("ns", "value"),
                                        return_exceptions=True)
    assert isinstance(wrong, StateUnavailable) and "ResponseError" in str(wrong)
    assert right == {"v": 1}
    await store.close()


async def test_a_cancelled_caller_leaves_the_others_their_results(store: StateStore) -> None:
    await store.put("ns", "kept", {"v": 1})
    doomed = asyncio.ensure_future(store.put("ns", "doomed", {"v": 2}))
    others = asyncio.gather(*(store.get("ns", "kept") for _ in range(5)))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await others == [{"v": 1}] * 5
    assert await store.get("ns", "kept") == {"v": 1}


async def test_a_key_that_is_not_valid_text_fails_only_its_caller(store: StateStore) -> None:
    """A conversation id with a lone surrogate (a JSON escape such as \\ud800, which Rasa's
    REST channel accepts) cannot be stored: its caller is told the state is unavailable,
    while the writes and reads asked for beside it, in the same batch, go through."""
    bad, good, read = await asyncio.gather(
        store.put("ns", "\ud800", {"v": 1}), store.put("ns", "good", {"v": 2}),
        store.get("ns", "good"), return_exceptions=True)
    assert isinstance(bad, StateUnavailable) and "\ud800" not in str(bad)
    assert good is None and read == {"v": 2}
    claimed = await asyncio.gather(store.claim("ns", "\udfff", {"v": 3}),
                                   store.claim("ns", "mine", {"v": 4}), return_exceptions=True)
    assert isinstance(claimed[0], StateUnavailable) and claimed[1] is True


async def test_a_read_sees_the_writes_asked_for_before_it(store: StateStore) -> None:
    """Writes wait for the end of the loop's turn (SQLite commits them together, Redis sends
    them together); a read asked for after them in the same turn still sees them."""
    results = await asyncio.gather(store.put("ns", "k", {"v": 1}), store.get("ns", "k"),
                                   store.claim("ns", "c", {"v": 2}), store.get("ns", "c"))
    assert results[1:] == [{"v": 1}, True, {"v": 2}]


async def test_sqlite_commits_the_writes_of_one_loop_turn_together(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: 50 concurrent submissions' claims and records take a few transactions,
    not 100, and every caller still gets its own answer."""
    import sqlite3

    from rasa_service_desk.state import sqlite as sqlite_store

    commits: list[str] = []
    connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(
            lambda statement: commits.append(statement) if statement == "COMMIT" else None)
        return connection

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", counting_connect)
    store = open_store(f"sqlite:///{tmp_path / 'grouped.sqlite3'}")
    commits.clear()

    async def submit(n: int) -> bool:
        claimed = await store.claim("submission", f"s{n % 25}", {"n": n},
                                    also=("latest", f"conversation-{n}", {"n": n}, None))
        if claimed:
            await store.put("submission", f"s{n % 25}", {"n": n, "done": True})
        return claimed

    won = await asyncio.gather(*(submit(n) for n in range(50)))
    assert sum(won) == 25  # of two submissions of the same key, one claims it
    assert len(commits) <= 4
    for n in range(25):
        assert (await store.get("submission", f"s{n}"))["done"] is True  # type: ignore[index]
    assert await store.get("latest", "conversation-49") == {"n": 49}


async def test_queues_keep_order_and_are_taken_once(store: StateStore) -> None:
    for n in range(5):
        await store.append("q", "conversation-1", {"n": n})
    takers = await asyncio.gather(*(store.take_all("q", "conversation-1") for _ in range(10)))
    taken = [item for batch in takers for item in batch]
    assert taken == [{"n": n} for n in range(5)]
    assert await store.take_all("q", "conversation-1") == []


async def test_held_messages_round_trip(store: StateStore) -> None:
    messages = [{"recipient_id": "c1", "text": "Our team answered."},
                {"recipient_id": "c1", "buttons": [{"title": "OK", "payload": "/ok"}]}]
    assert await hold(store, "c1", messages) == 2
    assert await release(store, "c1") == messages
    assert await release(store, "c1") == []


async def test_errand_owner_and_deliveries(store: StateStore) -> None:
    registry = ErrandRegistry(store)
    assert await registry.owner("511055") is None
    await registry.record(" 511055 ", "conversation-1", "socketio")
    owner = await registry.owner("511055")
    assert owner is not None and (owner.sender_id, owner.channel) == ("conversation-1",
                                                                      "socketio")
    await registry.record("511055", "conversation-2", None)  # the latest owner wins
    assert (await registry.owner("511055")).sender_id == "conversation-2"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await registry.record("", "conversation-1", None)

    assert await registry.begin_delivery("511055:76") is Delivery.CLAIMED
    assert await registry.begin_delivery("511055:76") is Delivery.IN_PROGRESS
    await registry.delivery_failed("511055:76")
    assert await registry.begin_delivery("511055:76") is Delivery.CLAIMED
    await registry.delivery_done("511055:76")
    assert await registry.begin_delivery("511055:76") is Delivery.DELIVERED


def test_two_processes_share_the_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    writer = ("import asyncio; from rasa_service_desk.state import open_store; "
              "from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry; "
              f"asyncio.run(ErrandRegistry(open_store({url!r})).record('7', 'conv-7', 'rest'))")
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=ROOT, timeout=60)
    owner = asyncio.run(ErrandRegistry(open_store(url)).owner("7"))
    assert owner is not None and owner.sender_id == "conv-7"


async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(
        tmp_path: Path) -> None:
    """Writes run in the event loop while nothing holds the lock; when another process holds
    SQLite's write lock, the writes of a turn wait in a thread, together, and the loop keeps
    serving."""
    path = tmp_path / "locked.sqlite3"
    store = open_store(f"sqlite:///{path}")
    await store.put("ns", "before", {"n": 0})
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(1.0); "
        "c.execute('COMMIT')"), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        running = asyncio.create_task(ticker())
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(store.claim("ns", "k", {"n": 1}),
                                       *(store.put("ns", f"p{n}", {"n": n}) for n in range(5)))
        waited = asyncio.get_running_loop().time() - started
        running.cancel()
    finally:
        holder.wait(10)
    assert waited >= 0.5  # it did wait for the other process's lock ...
    assert ticks >= 20  # ... while the event loop went on
    assert results == [True] + [None] * 5
    assert await store.get("ns", "k") == {"n": 1}
    assert await store.get("ns", "p4") == {"n": 4}
    assert await store.claim("ns", "k", {"n": 2}) is False


async def test_redis_down_is_reported_not_hidden(redis_server: RedisServer) -> None:
    dead = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StateUnavailable):
        await dead.get("ns", "k")
    with pytest.raises(StateUnavailable):
        await dead.claim("ns", "k", {})
    await dead.close()


async def test_a_redis_that_stops_answering_fails_its_callers_in_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis that accepts the connection and then says nothing (a hung server, a network
    that drops packets): every kind of operation fails within the timeout, naming no key,
    instead of holding the action (and the customer) until Rasa gives up."""
    monkeypatch.setattr(redis_backend, "TIMEOUT_SECONDS", 0.3)
    received: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            received.append(data)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = open_store(f"redis://127.0.0.1:{port}/0")
    operations = {
        "get": lambda: store.get("ns", "secret-key"),
        "batch": lambda: asyncio.gather(store.get("ns", "a"), store.put("ns", "b", {})),
        "claim": lambda: store.claim("ns", "secret-key", {"v": 1}),
        "take_all": lambda: store.take_all("ns", "secret-key"),
        "keys": lambda: store.keys("ns"),
    }
    try:
        for name, operation in operations.items():
            started = time.monotonic()
            with pytest.raises(StateUnavailable) as failure:
                await asyncio.wait_for(operation(), 5)  # a missing bound fails, never hangs
            assert time.monotonic() - started < 2.0, name
            assert "secret-key" not in str(failure.value)
    finally:
        await store.close()
        server.close()
        await server.wait_closed()
    assert received  # the commands were sent: it was the replies that never came


async def test_after_a_timed_out_reply_the_next_commands_get_their_own_replies(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis busy past the timeout (a slow script elsewhere): the callers waiting meanwhile
    fail (a batch, a single command, a transaction), and the replies that come late never
    answer the commands sent after them, while Redis is still busy."""
    store = open_store(redis_server.url)
    await store.put("ns", "a", {"v": "a"})
    await store.put("ns", "b", {"v": "b"})
    await store.append("ns", "queue", {"v": "q"})
    other = aioredis.Redis.from_url(redis_server.url)
    await other.ping()  # connected: the script starts as soon as it is sent
    busy = asyncio.ensure_future(other.eval(
        "local t = redis.call('TIME') local s = t[1] * 1e6 + t[2] "
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - s > 2500000 return 1", 0))
    await asyncio.sleep(0.1)  # the script runs: Redis answers nobody until it ends
    monkeypatch.setattr(redis_backend, "TIMEOUT_SECONDS", 0.3)
    late = [*await asyncio.gather(store.get("ns", "a"), store.get("ns", "b"),
                                  return_exceptions=True),
            *await asyncio.gather(store.get("ns", "a"), return_exceptions=True),
            *await asyncio.gather(store.take_all("ns", "gone"), return_exceptions=True)]
    assert all(isinstance(result, StateUnavailable) for result in late), late
    assert not busy.done()  # what follows is sent while the late replies are still due
    monkeypatch.setattr(redis_backend, "TIMEOUT_SECONDS", 5.0)
    after = await asyncio.gather(store.get("ns", "b"), store.get("ns", "a"))
    alone = await store.get("ns", "b")
    taken = await store.take_all("ns", "queue")
    assert await busy == 1
    assert (after, alone, taken) == ([{"v": "b"}, {"v": "a"}], {"v": "b"}, [{"v": "q"}])
    await other.connection_pool.disconnect()
    await store.close()


@pytest.mark.parametrize("url, problem", [
    ("redis://127.0.0.1:{port}/0", "not reachable"),
    ("ftp://example.com/state", "STATE_URL"),
    ("sqlite:///{tmp}", "directory"),
    ("sqlite:////proc/forbidden/state.sqlite3", "cannot be opened"),
])
def test_a_wrong_state_url_stops_start_naming_the_setting(
    url: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_URL", url.format(port=free_port(), tmp=tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        load_store(env_file=None)
    assert "STATE_URL" in caught.value.message
    assert problem in caught.value.message


def test_the_action_server_stops_at_start_on_an_unreachable_state_url(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SANDBOX": "1",
           "STATE_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc = subprocess.run(
        [sys.executable, "-m", "rasa_sdk", "--actions", "rasa_service_desk.actions.cention",
         "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "STATE_URL" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_keys_lists_the_values_of_one_namespace_now(store: StateStore) -> None:
    assert await store.keys("outbox") == []
    for key in ("a1", "b:2", "c 3", "ü*?[x]"):
        await store.put("outbox", key, {"k": key})
    await store.put("outbox_leases", "a1", {"owner": "x"})  # a namespace sharing the prefix
    await store.put("other", "z", {"v": 1})
    await store.append("outbox", "queued", {"v": 1})  # a queue, not a value
    await store.claim("outbox", "claimed", {"v": 1})
    await store.put("outbox", "short", {"v": 1}, ttl=0.2)
    assert sorted(await store.keys("outbox")) == sorted(
        ["a1", "b:2", "c 3", "ü*?[x]", "claimed", "short"])
    await store.delete("outbox", "b:2")
    await asyncio.sleep(0.4)
    assert sorted(await store.keys("outbox")) == sorted(["a1", "c 3", "ü*?[x]", "claimed"])
    assert await store.keys("outbox_leases") == ["a1"]
    assert await store.keys("out") == []


async def test_keys_of_a_namespace_with_glob_characters_are_its_own(
        store: StateStore) -> None:
    await store.put("ns*", "k1", {"v": 1})
    await store.put("ns1", "k2", {"v": 2})
    await store.put("ns?", "k3", {"v": 3})
    assert await store.keys("ns*") == ["k1"]
    assert await store.keys("ns?") == ["k3"]


async def test_keys_of_many_entries_are_all_listed(store: StateStore) -> None:
    for n in range(1200):
        await store.put("many", f"key-{n}", {"n": n})
    assert sorted(await store.keys("many")) == sorted(f"key-{n}" for n in range(1200))


async def test_keys_of_a_down_redis_is_reported_not_hidden(redis_server: RedisServer) -> None:
    dead = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StateUnavailable):
        await dead.keys("outbox")
    await dead.close()

"""Redis (6 or newer) for deployments on several hosts: `redis://` or `rediss://` (TLS).

Uses the maintained async client, `redis.asyncio` (redis-py 4.6, the version Rasa 3.6 pins,
and newer). Keys are `rsd:<namespace>:<key>`: values are JSON strings set with an expiry;
queues are lists whose expiry is renewed on every append. `claim` is one Lua script (`SET NX
PX`, its companion value, the read of `claim_and_read`) and `take_all` reads and deletes a
list in one MULTI/EXEC transaction, so both are atomic however many replicas call them.

Single commands issued in the same turn of the event loop (by concurrent actions) go to
Redis together in one pipeline. A round trip (a send, a wake-up, a read) costs the action
server far more CPU than the command itself; under load about three commands now share
each one. Together with the one-script claim, this took the throughput of exactly-once
submissions on Redis from 68-80% to 80-91% of the same actions without them, about what
SQLite gives (the benchmark's "Exactly-once submissions").

A namespace declared `listed` (the outbox) also keeps the set `rsd:_keys:<namespace>` of its
keys, written in the same transaction as the value, so listing it reads that set instead of
SCANning the whole database. A client is kept per event loop, since redis-py's connections
belong to the loop that opened them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rasa_service_desk.clients.jsoncodec import dumps_stored, loads_stored
from rasa_service_desk.state import (
    LISTED_NAMESPACES,
    JsonDict,
    Put,
    StateStore,
    StateUnavailable,
)
from rasa_service_desk.timeouts import within

PREFIX = "rsd"
#: `claim`: SET NX the claim (KEYS[1]); SET KEYS[2] (`also`) whether or not it succeeded;
#: for the caller that claimed, GET KEYS[3]. An empty key name means "none". Returns
#: [1 or 0, the value read or nil].
_CLAIM = """
local claimed = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
if not claimed then return {0, false} end
if KEYS[3] == '' then return {1, false} end
return {1, redis.call('GET', KEYS[3])}
"""
#: A command waiting for its batch: (method name, args, keyword args, its result).
_Queued = tuple[str, tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]
#: Seconds to connect, and to get all the replies of one round trip: a callback or an action
#: must not hang. One bound per round trip (`within`), not redis-py's `socket_timeout`: that
#: one arms a timer for every reply read and, before Python 3.12, runs every send in a task
#: of its own. A submission's claim and record cost 8-28% less CPU with one bound per round
#: trip (64 concurrent submissions in one process, alternating rounds).
TIMEOUT_SECONDS = 5.0
#: Failures of the connection, not of one command: they fail every command of a batch.
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisStore(StateStore):
    """The state in the Redis database at `url`."""

    def __init__(self, url: str, retention_seconds: float) -> None:
        super().__init__(retention_seconds)
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("names no Redis host")
        self.url = url
        self._description = f"Redis at {parts.hostname}:{parts.port or 6379}{parts.path or ''}"
        self._clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        self._batches: dict[asyncio.AbstractEventLoop, list[_Queued]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def description(self) -> str:
        return self._description

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for stale in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[stale]
                self._batches.pop(stale, None)
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=TIMEOUT_SECONDS, decode_responses=True,
                socket_timeout=None)  # not redis-py 8's default of 5 s: `TIMEOUT_SECONDS`
            self._clients[loop] = client
        return client

    @staticmethod
    def _key(namespace: str, key: str) -> str:
        return f"{PREFIX}:{namespace}:{key}"

    def _ms(self, ttl: float | None) -> int:
        return max(1, int(self.ttl(ttl) * 1000))

    @contextmanager
    def _unavailable_on_error(self) -> Iterator[None]:
        """Redis unreachable, refusing or slow: `StateUnavailable`, naming no key or value."""
        try:
            yield
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise self._failure(exc) from None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await self._queue(name, *args, **kwargs)

    def _queue(self, name: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """The result of `name(*args, **kwargs)`, sent in this event loop's next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        batch = self._batches.get(loop)
        if batch is None:  # the first command of a batch: send it in the loop's next turn
            batch = self._batches[loop] = []
            sending = loop.create_task(self._send_batch(loop))
            self._sending.add(sending)  # a task no one refers to may be collected mid-send
            sending.add_done_callback(self._sending.discard)
        batch.append((name, args, kwargs, future))
        return future

    async def _send_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every command queued since the batch began, in one pipeline; each command's
        future gets its result, or `StateUnavailable` (a command's own error included).
        A batch that fails for one command's arguments (e.g. a key that is not valid text,
        refused while the pipeline is packed) is sent again one command at a time, so only
        that command's caller fails; a failed connection fails them all."""
        batch = self._batches.pop(loop, [])
        try:
            try:
                results = await self._send(batch)
            except _CONNECTION_ERRORS:
                raise
            except Exception:
                if len(batch) == 1:
                    raise
                results = [await self._one_alone(command) for command in batch]
        except BaseException as exc:
            failure = self._failure(exc)
            for *_, future in batch:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise  # cancelled (the loop is closing): the callers were told above
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled; the command was still sent
                continue
            if isinstance(result, BaseException):
                future.set_exception(self._failure(result))
            else:
                future.set_result(result)

    async def _send(self, batch: list[_Queued]) -> list[Any]:
        """The batch's replies, a command's own error (e.g. WRONGTYPE) in its place."""
        if len(batch) == 1:  # a pipeline of one costs more than the command alone
            name, args, kwargs, _ = batch[0]
            return [await within(getattr(self._client(), name)(*args, **kwargs),
                                 TIMEOUT_SECONDS)]
        commands = tuple((name, args, kwargs) for name, args, kwargs, _ in batch)
        return await within(self._executed(commands, atomic=False, raise_on_error=False),
                            TIMEOUT_SECONDS)

    async def _one_alone(self, command: _Queued) -> Any:
        """One command of a batch that could not be packed; its own error as its result."""
        try:
            return (await self._send([command]))[0]
        except _CONNECTION_ERRORS:
            raise
        except Exception as exc:
            return exc

    def _failure(self, exc: BaseException) -> StateUnavailable:
        """What a caller is told: the error's kind, naming no key or value."""
        if isinstance(exc, StateUnavailable):
            return exc
        return StateUnavailable(f"{self._description}: {type(exc).__name__}")

    def _index(self, namespace: str) -> str:
        """The set of a listed namespace's keys (members may have expired: `keys` prunes)."""
        return f"{PREFIX}:_keys:{namespace}"

    async def _transaction(self, *commands: tuple[str, tuple[Any, ...], dict[str, Any]],
                           atomic: bool = True) -> list[Any]:
        """`commands` in one round trip; in one MULTI/EXEC transaction when `atomic`."""
        with self._unavailable_on_error():
            return await within(self._executed(commands, atomic), TIMEOUT_SECONDS)

    async def _executed(self, commands: tuple[tuple[str, tuple[Any, ...], dict[str, Any]], ...],
                        atomic: bool, raise_on_error: bool = True) -> list[Any]:
        """`commands` in one pipeline; without `raise_on_error`, a command's own error is
        its result."""
        async with self._client().pipeline(transaction=atomic) as pipe:
            for name, args, kwargs in commands:
                getattr(pipe, name)(*args, **kwargs)
            return list(await pipe.execute(raise_on_error=raise_on_error))

    async def put(self, namespace: str, key: str, value: JsonDict,
                  ttl: float | None = None) -> None:
        name, body = self._key(namespace, key), dumps_stored(value)
        if namespace in LISTED_NAMESPACES:
            await self._transaction(("set", (name, body), {"px": self._ms(ttl)}),
                                    ("sadd", (self._index(namespace), key), {}))
            return
        await self._call("set", name, body, px=self._ms(ttl))

    async def get(self, namespace: str, key: str) -> JsonDict | None:
        raw = await self._call("get", self._key(namespace, key))
        return None if raw is None else dict(loads_stored(raw))

    async def _claim(self, namespace: str, key: str, value: JsonDict, ttl: float | None,
                     also: Put | None, read: tuple[str, str] | None
                     ) -> tuple[bool, JsonDict | None]:
        """One script (`_CLAIM`), so one command on the submission path: the claim, `also`
        and the read happen together, atomically."""
        keys = [self._key(namespace, key), "", ""]
        args = [dumps_stored(value), self._ms(ttl), "", 0]
        if also is not None:
            keys[1] = self._key(also[0], also[1])
            args[2:] = [dumps_stored(also[2]), self._ms(also[3])]
        if read is not None:
            keys[2] = self._key(*read)
        claimed, found = await self._call("eval", _CLAIM, len(keys), *keys, *args)
        if claimed and namespace in LISTED_NAMESPACES:
            await self._call("sadd", self._index(namespace), key)
        return bool(claimed), (dict(loads_stored(found)) if found is not None else None)

    async def delete(self, namespace: str, key: str) -> None:
        if namespace in LISTED_NAMESPACES:
            await self._transaction(("delete", (self._key(namespace, key),), {}),
                                    ("srem", (self._index(namespace), key), {}))
            return
        await self._call("delete", self._key(namespace, key))

    async def keys(self, namespace: str) -> list[str]:
        if namespace in LISTED_NAMESPACES:
            return await self._indexed_keys(namespace)
        prefix = self._key(namespace, "")
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"  # the namespace is literal
        found: list[str] = []
        cursor = 0
        with self._unavailable_on_error():
            while True:  # SCAN by hand: each step, not the whole walk, within the timeout
                cursor, names = await within(self._client().scan(
                    cursor, match=pattern, count=500, _type="string"), TIMEOUT_SECONDS)
                found.extend(map(str, names))  # decoded: `decode_responses`
                if not cursor:
                    break
        # Values only (`_type`): a queue (`append`) of the same namespace is a list.
        return [name[len(prefix):] for name in found]

    async def _indexed_keys(self, namespace: str) -> list[str]:
        """The live members of the namespace's index; expired ones are removed from it."""
        members = sorted(await self._call("smembers", self._index(namespace)))
        if not members:
            return []
        present = await self._transaction(
            *(("exists", (self._key(namespace, key),), {}) for key in members))
        gone = [key for key, alive in zip(members, present, strict=True) if not alive]
        if gone:
            await self._call("srem", self._index(namespace), *gone)
        return [key for key, alive in zip(members, present, strict=True) if alive]

    async def append(self, namespace: str, key: str, value: JsonDict,
                     ttl: float | None = None) -> None:
        name = self._key(namespace, key)
        await self._transaction(("rpush", (name, dumps_stored(value)), {}),
                                ("pexpire", (name, self._ms(ttl)), {}))

    async def take_all(self, namespace: str, key: str) -> list[JsonDict]:
        name = self._key(namespace, key)
        items, _ = await self._transaction(("lrange", (name, 0, -1), {}),
                                           ("delete", (name,), {}))
        return [dict(loads_stored(item)) for item in items]

    async def check(self) -> None:
        await self._call("ping")
        await self.put("health", "check", {"ok": True}, ttl=60)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            close = getattr(client, "aclose", None) or client.close
            await close()

"""Redis (6 or newer) for deployments on several hosts: `redis://` or `rediss://` (TLS).

Uses the maintained async client, `redis.asyncio` (redis-py 4.6, the version Rasa 3.6 pins,
and newer). Keys are `rsd:<namespace>:<key>`: values are JSON strings set with an expiry;
queues are lists whose expiry is renewed on every append. `claim` is `SET NX PX` and
`take_all` reads and deletes a list in one MULTI/EXEC transaction, so both are atomic
however many replicas call them. A namespace declared `listed` (the outbox) also keeps the
set `rsd:_keys:<namespace>` of its keys, written in the same transaction as the value, so
listing it reads that set instead of SCANning the whole database. A client is kept per
event loop, since redis-py's connections belong to the loop that opened them.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from rasa_service_desk.state import (
    LISTED_NAMESPACES,
    JsonDict,
    Put,
    StateStore,
    StateUnavailable,
)

PREFIX = "rsd"
#: Seconds to connect and to wait for any one reply: a callback or an action must not hang.
SOCKET_TIMEOUT_SECONDS = 5.0


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

    @property
    def description(self) -> str:
        return self._description

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for stale in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[stale]
            client = aioredis.Redis.from_url(
                self.url, socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, decode_responses=True)
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
            raise StateUnavailable(f"{self._description}: {type(exc).__name__}") from None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._unavailable_on_error():
            return await getattr(self._client(), name)(*args, **kwargs)

    def _index(self, namespace: str) -> str:
        """The set of a listed namespace's keys (members may have expired: `keys` prunes)."""
        return f"{PREFIX}:_keys:{namespace}"

    async def _transaction(self, *commands: tuple[str, tuple[Any, ...], dict[str, Any]],
                           atomic: bool = True) -> list[Any]:
        """`commands` in one round trip; in one MULTI/EXEC transaction when `atomic`."""
        with self._unavailable_on_error():
            async with self._client().pipeline(transaction=atomic) as pipe:
                for name, args, kwargs in commands:
                    getattr(pipe, name)(*args, **kwargs)
                return list(await pipe.execute())

    async def put(self, namespace: str, key: str, value: JsonDict,
                  ttl: float | None = None) -> None:
        name, body = self._key(namespace, key), json.dumps(value)
        if namespace in LISTED_NAMESPACES:
            await self._transaction(("set", (name, body), {"px": self._ms(ttl)}),
                                    ("sadd", (self._index(namespace), key), {}))
            return
        await self._call("set", name, body, px=self._ms(ttl))

    async def get(self, namespace: str, key: str) -> JsonDict | None:
        raw = await self._call("get", self._key(namespace, key))
        return None if raw is None else dict(json.loads(raw))

    async def claim(self, namespace: str, key: str, value: JsonDict,
                    ttl: float | None = None, *, also: Put | None = None) -> bool:
        name, body = self._key(namespace, key), json.dumps(value)
        if also is not None:
            extra_ns, extra_key, extra_value, extra_ttl = also
            done, _ = await self._transaction(
                ("set", (name, body), {"px": self._ms(ttl), "nx": True}),
                ("set", (self._key(extra_ns, extra_key), json.dumps(extra_value)),
                 {"px": self._ms(extra_ttl)}), atomic=False)  # the claim is atomic alone
        else:
            done = await self._call("set", name, body, px=self._ms(ttl), nx=True)
        if done and namespace in LISTED_NAMESPACES:
            await self._call("sadd", self._index(namespace), key)
        return bool(done)

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
        with self._unavailable_on_error():
            found = [name async for name in self._client().scan_iter(
                match=pattern, count=500, _type="string")]
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
        await self._transaction(("rpush", (name, json.dumps(value)), {}),
                                ("pexpire", (name, self._ms(ttl)), {}))

    async def take_all(self, namespace: str, key: str) -> list[JsonDict]:
        name = self._key(namespace, key)
        items, _ = await self._transaction(("lrange", (name, 0, -1), {}),
                                           ("delete", (name,), {}))
        return [dict(json.loads(item)) for item in items]

    async def check(self) -> None:
        await self._call("ping")
        await self.put("health", "check", {"ok": True}, ttl=60)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            close = getattr(client, "aclose", None) or client.close
            await close()

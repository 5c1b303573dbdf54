"""Redis (6 or newer) for deployments on several hosts: `redis://` or `rediss://` (TLS).

Uses the maintained async client, `redis.asyncio` (redis-py 4.6, the version Rasa 3.6 pins,
and newer). Keys are `rsd:<namespace>:<key>`: values are JSON strings set with an expiry;
queues are lists whose expiry is renewed on every append. `claim` is `SET NX PX` and
`take_all` reads and deletes a list in one MULTI/EXEC transaction, so both are atomic
however many replicas call them. A client is kept per event loop, since redis-py's
connections belong to the loop that opened them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from rasa_service_desk.state import JsonDict, StateStore, StateUnavailable

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

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client(), name)(*args, **kwargs)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise StateUnavailable(f"{self._description}: {type(exc).__name__}") from None

    async def put(self, namespace: str, key: str, value: JsonDict,
                  ttl: float | None = None) -> None:
        await self._call("set", self._key(namespace, key), json.dumps(value), px=self._ms(ttl))

    async def get(self, namespace: str, key: str) -> JsonDict | None:
        raw = await self._call("get", self._key(namespace, key))
        return None if raw is None else dict(json.loads(raw))

    async def claim(self, namespace: str, key: str, value: JsonDict,
                    ttl: float | None = None) -> bool:
        done = await self._call("set", self._key(namespace, key), json.dumps(value),
                                px=self._ms(ttl), nx=True)
        return bool(done)

    async def delete(self, namespace: str, key: str) -> None:
        await self._call("delete", self._key(namespace, key))

    async def append(self, namespace: str, key: str, value: JsonDict,
                     ttl: float | None = None) -> None:
        name = self._key(namespace, key)
        try:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.rpush(name, json.dumps(value))
                pipe.pexpire(name, self._ms(ttl))
                await pipe.execute()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise StateUnavailable(f"{self._description}: {type(exc).__name__}") from None

    async def take_all(self, namespace: str, key: str) -> list[JsonDict]:
        name = self._key(namespace, key)
        try:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.lrange(name, 0, -1)
                pipe.delete(name)
                items, _ = await pipe.execute()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise StateUnavailable(f"{self._description}: {type(exc).__name__}") from None
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

"""Shared state that outlives a process or is seen by several: one small interface.

What goes here: which conversation owns a Cention errand (written by the action server,
read by the callback connector inside Rasa), callback de-duplication, bot messages
waiting for a channel that cannot push, submission records and the outbox of submissions
waiting for a vendor to come back. Two backends behind the same interface:

- SQLite (the default, `STATE_URL=sqlite:///service_desk_state.sqlite3`): embedded, right
  for one host where Rasa and the action server share a disk;
- Redis 6+ (`STATE_URL=redis://host:6379/0` or `rediss://...`): for Rasa and any number of
  action-server replicas on different hosts; the store Rasa deployments already run for
  their lock store.

Every entry lives in a namespace, has a retention period (`STATE_RETENTION_DAYS`, 90 by
default) unless a shorter one is given, and the operations that decide ownership are atomic
in both backends (`claim` is set-if-absent), so replicas never race with check-then-set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from pydantic import Field

from rasa_service_desk.clients.compat import field_check
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.settings import ENV_FILE, EnvironmentSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: A value to put alongside a claim: (namespace, key, value, ttl).
Put = tuple[str, str, "JsonDict", "float | None"]

DEFAULT_URL = "sqlite:///service_desk_state.sqlite3"
DAY = 86400.0
JsonDict = dict[str, Any]


#: Namespaces whose keys are listed (`StateStore.keys`): a backend that cannot list a
#: namespace cheaply (Redis: SCAN walks every key of the database) keeps an index of these.
LISTED_NAMESPACES: set[str] = set()


def listed(namespace: str) -> str:
    """Declare that `namespace`'s keys will be listed; call at import, before any write."""
    LISTED_NAMESPACES.add(namespace)
    return namespace


class StateUnavailable(Exception):
    """The store could not be reached or refused the operation (e.g. Redis is down)."""


class StateSettings(EnvironmentSettings):
    """`STATE_URL` and `STATE_RETENTION_DAYS`, read like every other setting."""

    env_prefix: ClassVar[str] = "STATE_"

    url: str = DEFAULT_URL
    retention_days: float = Field(default=90.0, gt=0, le=3650)

    @field_check("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("sqlite:///", "redis://", "rediss://")) and "://" in value:
            raise ValueError("must be sqlite:///<path>, redis://host:port/db or "
                             "rediss://host:port/db (or a plain SQLite file path)")
        if value.startswith(("redis://", "rediss://")) and len(value.split("://", 1)[1]) == 0:
            raise ValueError("names no Redis host")
        return value


class StateStore(ABC):
    """Namespaced JSON values with expiry, atomic claims, and per-key queues."""

    def __init__(self, retention_seconds: float) -> None:
        self.retention = retention_seconds

    def ttl(self, seconds: float | None) -> float:
        """The expiry of an entry: `seconds`, capped by the retention period."""
        return self.retention if seconds is None else min(seconds, self.retention)

    @abstractmethod
    async def put(self, namespace: str, key: str, value: JsonDict,
                  ttl: float | None = None) -> None:
        """Store `value` under `key`, replacing what was there."""

    @abstractmethod
    async def get(self, namespace: str, key: str) -> JsonDict | None:
        """The value under `key`, or None (never stored, deleted or expired)."""

    async def claim(self, namespace: str, key: str, value: JsonDict,
                    ttl: float | None = None, *, also: Put | None = None) -> bool:
        """Store `value` only if `key` holds nothing: True for the one caller that did.
        `also` is put in the same write, whether or not the claim succeeds (one round trip
        instead of two on the submission path)."""
        claimed, _ = await self._claim(namespace, key, value, ttl, also, None)
        return claimed

    async def claim_and_read(self, namespace: str, key: str, value: JsonDict,
                             ttl: float | None = None, *, also: Put | None = None,
                             read: tuple[str, str]) -> tuple[bool, JsonDict | None]:
        """`claim`, and for the caller that claimed, the value under `read` (namespace,
        key), read in the same write (one Redis script, one SQLite transaction). The
        submission path reads the "outcome unknown" mark of what it claimed this way."""
        return await self._claim(namespace, key, value, ttl, also, read)

    @abstractmethod
    async def _claim(self, namespace: str, key: str, value: JsonDict, ttl: float | None,
                     also: Put | None, read: tuple[str, str] | None
                     ) -> tuple[bool, JsonDict | None]:
        """What `claim` and `claim_and_read` do, atomically; `read` None reads nothing."""

    @abstractmethod
    async def delete(self, namespace: str, key: str) -> None:
        """Forget `key` (no error when absent)."""

    @abstractmethod
    async def keys(self, namespace: str) -> list[str]:
        """The keys of `namespace` that hold a value now, unordered. For a small namespace
        declared with `listed()` (the outbox), not for every conversation's entries."""

    @abstractmethod
    async def append(self, namespace: str, key: str, value: JsonDict,
                     ttl: float | None = None) -> None:
        """Add `value` at the end of the queue `key` (the queue expires `ttl` after the
        latest append)."""

    @abstractmethod
    async def take_all(self, namespace: str, key: str) -> list[JsonDict]:
        """Remove and return the whole queue `key`, oldest first, atomically: of two
        concurrent callers, one gets the items and the other an empty list."""

    @abstractmethod
    async def check(self) -> None:
        """Raise `StateUnavailable` unless the store can be read and written."""

    async def close(self) -> None:  # noqa: B027 - optional: only Redis holds connections
        """Release connections (the store reopens them on next use)."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the state lives, without credentials (for logs)."""


def open_store(url: str, retention_days: float = 90.0) -> StateStore:
    """A store for `url` (see the module docstring for the forms accepted)."""
    retention = retention_days * DAY
    if url.startswith(("redis://", "rediss://")):
        from rasa_service_desk.state.redis import RedisStore

        return RedisStore(url, retention)
    from rasa_service_desk.state.sqlite import SqliteStore

    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    return SqliteStore(path, retention)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion from synchronous start-up code, whether or not an event
    loop is already running in this thread (then it runs in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def load_store(env_file: str | None = ENV_FILE, **overrides: Any) -> StateStore:
    """The configured store, checked now: a wrong or unreachable `STATE_URL` raises a
    `ConfigurationError` naming the setting, so the process stops at start, not on the first
    customer."""
    settings = StateSettings.load(env_file, **overrides)
    try:
        store = open_store(settings.url, settings.retention_days)
    except (OSError, ValueError, StateUnavailable) as exc:
        raise ConfigurationError(
            "state", f"STATE_URL cannot be opened: {exc}") from None

    async def probe() -> None:
        try:
            await store.check()
        finally:
            await store.close()

    try:
        run_sync(probe())
    except StateUnavailable as exc:
        raise ConfigurationError(
            "state", f"STATE_URL ({store.description}) is not reachable: {exc}") from None
    return store

"""The embedded default: one SQLite file in WAL mode, for processes on one host.

Every call opens its own short-lived connection in a worker thread, so the store is safe
across threads, processes and event loops without shared Python state, and a slow lock
never blocks the event loop. Writers take SQLite's write lock (`BEGIN IMMEDIATE`), which
makes `claim` and `take_all` atomic across processes. Not for network file systems.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any, TypeVar

from rasa_service_desk.state import JsonDict, StateStore, StateUnavailable

T = TypeVar("T")

#: How long a call waits for another process's write lock before giving up (seconds).
BUSY_TIMEOUT_SECONDS = 5.0
#: Expired rows are purged at most this often (seconds), by whichever write comes first.
PURGE_INTERVAL_SECONDS = 600.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        namespace  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    )""",
    """CREATE TABLE IF NOT EXISTS queue (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS queue_by_key ON queue (namespace, key, seq)",
)


class SqliteStore(StateStore):
    """The state in the SQLite file at `path` (created with its folder if missing)."""

    def __init__(self, path: str, retention_seconds: float) -> None:
        super().__init__(retention_seconds)
        if not path.strip():
            raise ValueError("no SQLite file named")
        self.path = os.path.abspath(path)
        if os.path.isdir(self.path):
            raise ValueError(f"{self.path} is a directory, not a SQLite file")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._last_purge = 0.0
        try:
            with self._connection() as connection:
                connection.execute("PRAGMA journal_mode=WAL")
                for statement in _SCHEMA:
                    connection.execute(statement)
        except sqlite3.Error as exc:
            raise StateUnavailable(f"{self.path}: {exc}") from None

    @property
    def description(self) -> str:
        return f"SQLite file {self.path}"

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                     isolation_level=None)
        with closing(connection):
            yield connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            self._purge_now_and_then(connection)

    def _purge_now_and_then(self, connection: sqlite3.Connection) -> None:
        now = time.time()
        if now - self._last_purge < PURGE_INTERVAL_SECONDS:
            return
        self._last_purge = now
        connection.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
        connection.execute("DELETE FROM queue WHERE expires_at <= ?", (now,))

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except sqlite3.Error as exc:
            raise StateUnavailable(f"{self.path}: {exc}") from None

    async def put(self, namespace: str, key: str, value: JsonDict,
                  ttl: float | None = None) -> None:
        row = (namespace, key, json.dumps(value), time.time() + self.ttl(ttl))

        def work() -> None:
            with self._write() as connection:
                connection.execute(
                    "INSERT INTO entries (namespace, key, value, expires_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value, "
                    "expires_at = excluded.expires_at", row)

        await self._run(work)

    async def get(self, namespace: str, key: str) -> JsonDict | None:
        def work() -> Any:
            with self._connection() as connection:
                return connection.execute(
                    "SELECT value FROM entries WHERE namespace = ? AND key = ? "
                    "AND expires_at > ?", (namespace, key, time.time())).fetchone()

        row = await self._run(work)
        return None if row is None else dict(json.loads(row[0]))

    async def claim(self, namespace: str, key: str, value: JsonDict,
                    ttl: float | None = None) -> bool:
        now = time.time()

        def work() -> bool:
            with self._write() as connection:
                connection.execute(
                    "DELETE FROM entries WHERE namespace = ? AND key = ? AND expires_at <= ?",
                    (namespace, key, now))
                cursor = connection.execute(
                    "INSERT OR IGNORE INTO entries (namespace, key, value, expires_at) "
                    "VALUES (?,?,?,?)", (namespace, key, json.dumps(value), now + self.ttl(ttl)))
                return cursor.rowcount == 1

        return await self._run(work)

    async def delete(self, namespace: str, key: str) -> None:
        def work() -> None:
            with self._write() as connection:
                connection.execute("DELETE FROM entries WHERE namespace = ? AND key = ?",
                                   (namespace, key))

        await self._run(work)

    async def append(self, namespace: str, key: str, value: JsonDict,
                     ttl: float | None = None) -> None:
        expires = time.time() + self.ttl(ttl)

        def work() -> None:
            with self._write() as connection:
                connection.execute(
                    "INSERT INTO queue (namespace, key, value, expires_at) VALUES (?,?,?,?)",
                    (namespace, key, json.dumps(value), expires))
                connection.execute(
                    "UPDATE queue SET expires_at = ? WHERE namespace = ? AND key = ?",
                    (expires, namespace, key))

        await self._run(work)

    async def take_all(self, namespace: str, key: str) -> list[JsonDict]:
        def work() -> list[Any]:
            with self._write() as connection:
                rows = connection.execute(
                    "SELECT value FROM queue WHERE namespace = ? AND key = ? AND expires_at > ? "
                    "ORDER BY seq", (namespace, key, time.time())).fetchall()
                connection.execute("DELETE FROM queue WHERE namespace = ? AND key = ?",
                                   (namespace, key))
                return rows

        return [dict(json.loads(row[0])) for row in await self._run(work)]

    async def check(self) -> None:
        await self.put("health", "check", {"ok": True}, ttl=60)
        if await self.get("health", "check") is None:
            raise StateUnavailable(f"{self.path}: a value just written cannot be read back")

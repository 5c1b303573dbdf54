"""Which conversation owns which Cention errand.

The action server records the owner when it creates an errand; the callback connector inside
Rasa looks it up when an agent answers, possibly days later and after restarts of either
process. An embedded SQLite file in WAL mode serves both processes on one host: writers do
not block the reader, and every call opens its own short-lived connection, so the registry
is safe across threads and processes without any shared state in Python.

Deployments where Rasa and the action server run on different hosts need a file both can
reach with working locks (not NFS): in practice, run them on one host or share a volume.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

DEFAULT_PATH = "cention_errands.sqlite3"

#: How long a call waits for another process's write lock before giving up (seconds).
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cention_errands (
        errand_id  TEXT PRIMARY KEY,
        sender_id  TEXT NOT NULL,
        channel    TEXT,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cention_deliveries (
        delivery_key TEXT PRIMARY KEY,
        claimed_at   REAL NOT NULL
    )""",
)


@dataclass(frozen=True)
class ErrandOwner:
    """The conversation an errand belongs to, and the channel it was created from."""

    sender_id: str
    channel: str | None
    created_at: datetime


class ErrandRegistry:
    """Errand id -> owning conversation, persisted in a SQLite file at `path`."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        with self._connection() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                connection.execute(statement)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)
        with closing(connection), connection:  # commits on success, rolls back on error
            yield connection

    def record(self, errand_id: str, sender_id: str, channel: str | None) -> None:
        """Remember that `sender_id` owns `errand_id` (a repeated id takes the latest owner)."""
        errand_id = str(errand_id).strip()
        if not errand_id or not sender_id:
            raise ValueError("an errand id and a sender id are required")
        with self._connection() as connection:
            connection.execute(
                "INSERT INTO cention_errands (errand_id, sender_id, channel, created_at) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT(errand_id) DO UPDATE SET sender_id = excluded.sender_id, "
                "channel = excluded.channel, created_at = excluded.created_at",
                (errand_id, sender_id, channel, time.time()),
            )

    def owner(self, errand_id: str) -> ErrandOwner | None:
        """The conversation that owns `errand_id`, or None when this bot never created it."""
        with self._connection() as connection:
            row = connection.execute(
                "SELECT sender_id, channel, created_at FROM cention_errands WHERE errand_id = ?",
                (str(errand_id).strip(),),
            ).fetchone()
        if row is None:
            return None
        sender_id, channel, created_at = row
        return ErrandOwner(
            sender_id=sender_id,
            channel=channel,
            created_at=datetime.fromtimestamp(created_at, tz=timezone.utc),
        )

    def claim_delivery(self, key: str) -> bool:
        """True the first time `key` (one callback of one errand) is claimed, False for a
        repeat, so a callback Cention sends twice reaches the conversation once."""
        with self._connection() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO cention_deliveries (delivery_key, claimed_at) VALUES (?, ?)",
                (key, time.time()),
            )
            return cursor.rowcount == 1

    def release_delivery(self, key: str) -> None:
        """Forget a claim whose delivery failed, so a repeated callback can deliver it."""
        with self._connection() as connection:
            connection.execute("DELETE FROM cention_deliveries WHERE delivery_key = ?", (key,))

"""The embedded default: one SQLite file in WAL mode, for processes on one host.

Each thread has its own connections (opened on first use, reopened after a fork or an
error), so the store is safe across threads, processes and event loops. A call first runs
right in the event loop without waiting for any lock (most take well under a millisecond,
and handing every one to a thread cost more CPU than the work); only when another process
holds the write lock does it run again in a worker thread, which waits for the lock, so a
slow lock never blocks the event loop. Writers take SQLite's write lock
(`BEGIN IMMEDIATE`), which makes `claim` and `take_all` atomic across processes.

Group commit: the writes that concurrent actions ask for in one turn of the event loop run
in one transaction, at the end of that turn. Each write alone took the lock, wrote its pages
to the WAL and, with several workers on one file, reloaded the pages another process had
changed: about 47 microseconds per claim, against 26 in groups of 4 and 17 in groups of 16.
When another process holds the lock, the group waits for it together, as described above.
When one write fails, each write of the group runs again alone, so that write's error
fails only its caller.

Commits use `synchronous=NORMAL`, WAL's usual setting: a commit survives the process being
killed (it is in the WAL file), and only a power cut can lose the last ones; with the
default (FULL) every commit waited for the disk, several milliseconds per submission. Not
for network file systems.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rasa_service_desk.clients.jsoncodec import dumps_stored, loads_stored
from rasa_service_desk.state import JsonDict, Put, StateStore, StateUnavailable

T = TypeVar("T")
#: A write: runs inside the transaction it is given, returns the caller's result.
Work = Callable[[sqlite3.Connection], Any]
#: A write waiting for its group's commit, and where its caller waits for the result.
_Write = tuple[Work, "asyncio.Future[Any]"]

#: How long a call waits for another process's write lock before giving up (seconds).
BUSY_TIMEOUT_SECONDS = 5.0
#: Pauses (seconds) before each try in the event loop, when another process holds the lock.
IN_LOOP_PAUSES = (0.0, 0.001, 0.003)
#: Expired rows are purged at most this often (seconds), by whichever write comes first.
PURGE_INTERVAL_SECONDS = 600.0

#: This process's id, kept current across forks: asked for on every call, and a system call
#: each time showed in profiles.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

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


_UPSERT = ("INSERT INTO entries (namespace, key, value, expires_at) VALUES (?,?,?,?) "
           "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value, "
           "expires_at = excluded.expires_at")

#: Inserts the row, or replaces it where it has expired: one changed row = claimed.
_CLAIM = _UPSERT + " WHERE entries.expires_at <= ?"

#: A live entry's value.
_READ = "SELECT value FROM entries WHERE namespace = ? AND key = ? AND expires_at > ?"

#: SQLite's result codes (the C API's; the sqlite3 module names them from Python 3.11).
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _is_busy(exc: BaseException) -> bool:
    """Whether SQLite refused because another connection holds the lock (nothing was done:
    the work can run again)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _resolve(batch: list[_Write], results: list[Any], error: Exception | None = None) -> None:
    """Hand each caller of `batch` its result, or `error`, unless it stopped waiting."""
    for index, (_, future) in enumerate(batch):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(results[index])


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
        self._local = threading.local()
        #: Writes waiting for the end of the current loop turn, per event loop.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        #: Groups waiting for another process's lock.
        self._waiting: set[asyncio.Task[None]] = set()
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
        """This thread's connection (one that never waits for a lock inside `_run`'s first
        try); dropped and reopened next time after any error but a busy lock."""
        waits = not getattr(self._local, "nonblocking", False)
        connections: dict[bool, tuple[int, sqlite3.Connection]] = getattr(
            self._local, "connections", None) or {}
        self._local.connections = connections
        pid, connection = connections.get(waits, (0, None))
        if connection is None or pid != _pid:
            connection = sqlite3.connect(self.path, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_SECONDS if waits else 0.0)
            connection.execute("PRAGMA synchronous=NORMAL")
            connections[waits] = (_pid, connection)
        try:
            yield connection
        except BaseException as exc:
            if not _is_busy(exc):
                connections.pop(waits, None)
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
            raise

    def _transaction(self, works: list[Work]) -> list[Any]:
        """Run `works` in one write transaction holding SQLite's write lock from the start;
        nothing of them stays if one fails."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                results = [work(connection) for work in works]
                connection.execute("COMMIT")
            except BaseException:
                # Nothing of the work stays: it may run again (after a busy lock, or alone).
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
        self._purge_now_and_then(connection)
        return results

    async def _write(self, work: Work) -> Any:
        """Run `work` in a write transaction shared with the other writes asked for in this
        turn of the event loop (see "Group commit" above)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._commit_pending, loop)
        pending.append((work, future))
        return await future

    def _commit_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit the writes asked for in the turn that just ended."""
        # A write whose caller was cancelled before the group commits is not done at all.
        batch = [write for write in self._pending.pop(loop, []) if not write[1].done()]
        if batch:
            self._commit(loop, batch)

    def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[_Write]) -> None:
        """`batch` in one transaction, now; when another process holds the lock, in a task
        that waits for it; when a write fails, each write alone, so only its caller fails."""
        self._local.nonblocking = True
        try:
            results = self._transaction([work for work, _ in batch])
        except Exception as exc:
            if _is_busy(exc):
                task = loop.create_task(self._commit_later(loop, batch))
                self._waiting.add(task)  # a task no one refers to may be collected
                task.add_done_callback(self._waiting.discard)
            else:
                self._split(loop, batch, exc)
            return
        finally:
            self._local.nonblocking = False
        _resolve(batch, results)

    async def _commit_later(self, loop: asyncio.AbstractEventLoop, batch: list[_Write]) -> None:
        """`batch` in one transaction once the lock is free (`_run`'s pauses, then a thread)."""
        failed: list[Exception] = []

        def attempt() -> list[Any]:
            try:
                return self._transaction([work for work, _ in batch])
            except Exception as exc:
                if _is_busy(exc):
                    raise  # `_run` waits and tries again
                failed.append(exc)
                return []

        try:
            results = await self._run(attempt)
        except Exception as exc:  # the lock stayed taken: every caller is told
            _resolve(batch, [], exc)
            return
        if failed:
            self._split(loop, batch, failed[0])
        else:
            _resolve(batch, results)

    def _split(self, loop: asyncio.AbstractEventLoop, batch: list[_Write],
               exc: Exception) -> None:
        """A group that failed: each write again alone; a write alone fails its caller."""
        if len(batch) == 1:
            _resolve(batch, [], self._failure(exc))
            return
        for write in batch:
            self._commit(loop, [write])

    def _failure(self, exc: Exception) -> Exception:
        """What a caller is told of a failed call: `StateUnavailable` for the store's own
        errors (naming no key or value); anything else (a bug) as it is."""
        if isinstance(exc, sqlite3.Error):
            return StateUnavailable(f"{self.path}: {exc}")
        if isinstance(exc, UnicodeError):  # a key or value with a lone surrogate
            return StateUnavailable(f"{self.path}: a key or value is not valid text")
        return exc

    def _purge_now_and_then(self, connection: sqlite3.Connection) -> None:
        """Delete expired rows now and then. Best effort, after the work committed: an error
        here must not make `_run` think the work failed (and run it again)."""
        now = time.time()
        if now - self._last_purge < PURGE_INTERVAL_SECONDS:
            return
        self._last_purge = now
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
            connection.execute("DELETE FROM queue WHERE expires_at <= ?", (now,))
            connection.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            self._last_purge = 0.0  # another time

    async def _run(self, work: Callable[[], T]) -> T:
        """`work()` in the event loop if no lock is in the way (tried again after each of
        `IN_LOOP_PAUSES`: another process holds the lock for microseconds, and handing the
        work to a thread costs more), else in a thread that waits for it (up to
        `BUSY_TIMEOUT_SECONDS`)."""
        try:
            for pause in IN_LOOP_PAUSES:
                if pause:
                    await asyncio.sleep(pause)
                self._local.nonblocking = True
                try:
                    return work()
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                finally:
                    self._local.nonblocking = False
            return await asyncio.to_thread(work)
        except (sqlite3.Error, UnicodeError) as exc:
            raise self._failure(exc) from None

    async def put(self, namespace: str, key: str, value: JsonDict,
                  ttl: float | None = None) -> None:
        row = (namespace, key, dumps_stored(value), time.time() + self.ttl(ttl))

        await self._write(lambda connection: connection.execute(_UPSERT, row))

    def _flush_writes(self) -> None:
        """Commit this loop's waiting writes now: a read sees the writes asked for before it
        (as on Redis, where they share the read's pipeline, in order)."""
        loop = asyncio.get_running_loop()
        if self._pending.get(loop):
            self._commit_pending(loop)

    async def get(self, namespace: str, key: str) -> JsonDict | None:
        self._flush_writes()

        def work() -> Any:
            with self._connection() as connection:
                return connection.execute(_READ, (namespace, key, time.time())).fetchone()

        row = await self._run(work)
        return None if row is None else dict(loads_stored(row[0]))

    async def _claim(self, namespace: str, key: str, value: JsonDict, ttl: float | None,
                     also: Put | None, read: tuple[str, str] | None
                     ) -> tuple[bool, JsonDict | None]:
        """The claim, `also` and the read in one transaction (of the turn's group)."""
        now = time.time()
        row = (namespace, key, dumps_stored(value), now + self.ttl(ttl))
        extra = None if also is None else (
            also[0], also[1], dumps_stored(also[2]), now + self.ttl(also[3]))

        def work(connection: sqlite3.Connection) -> tuple[bool, Any]:
            cursor = connection.execute(_CLAIM, (*row, now))
            claimed = cursor.rowcount == 1
            if extra is not None:
                connection.execute(_UPSERT, extra)
            if not claimed or read is None:
                return claimed, None
            return claimed, connection.execute(_READ, (*read, now)).fetchone()

        claimed, found = await self._write(work)
        return bool(claimed), (None if found is None else dict(loads_stored(found[0])))

    async def delete(self, namespace: str, key: str) -> None:
        await self._write(lambda connection: connection.execute(
            "DELETE FROM entries WHERE namespace = ? AND key = ?", (namespace, key)))

    async def keys(self, namespace: str) -> list[str]:
        self._flush_writes()

        def work() -> list[Any]:
            with self._connection() as connection:
                return connection.execute(
                    "SELECT key FROM entries WHERE namespace = ? AND expires_at > ?",
                    (namespace, time.time())).fetchall()

        return [str(row[0]) for row in await self._run(work)]

    async def append(self, namespace: str, key: str, value: JsonDict,
                     ttl: float | None = None) -> None:
        expires = time.time() + self.ttl(ttl)
        item = (namespace, key, dumps_stored(value), expires)

        def work(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO queue (namespace, key, value, expires_at) VALUES (?,?,?,?)", item)
            connection.execute(
                "UPDATE queue SET expires_at = ? WHERE namespace = ? AND key = ?",
                (expires, namespace, key))

        await self._write(work)

    async def take_all(self, namespace: str, key: str) -> list[JsonDict]:
        def work(connection: sqlite3.Connection) -> list[Any]:
            rows = connection.execute(
                "SELECT value FROM queue WHERE namespace = ? AND key = ? AND expires_at > ? "
                "ORDER BY seq", (namespace, key, time.time())).fetchall()
            connection.execute("DELETE FROM queue WHERE namespace = ? AND key = ?",
                               (namespace, key))
            return rows

        return [dict(loads_stored(row[0])) for row in await self._write(work)]

    async def check(self) -> None:
        await self.put("health", "check", {"ok": True}, ttl=60)
        if await self.get("health", "check") is None:
            raise StateUnavailable(f"{self.path}: a value just written cannot be read back")

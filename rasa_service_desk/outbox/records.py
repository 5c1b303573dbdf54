"""Submission records: what the idempotency of `rasa_service_desk.actions.submissions` and
the outbox worker both read and write (namespace `submissions`, key = the submission key).

A record is `sending` (claimed by the request that talks to the vendor now), `queued` (in
the outbox) or `done` (with its outcome: ids and references only). A repeat of a `done`
submission gets its outcome without a vendor call, a repeat of a `queued` one hears that it
is saved; `release` forgets the record so the submission can be sent anew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from rasa_service_desk.state import StateStore, StateUnavailable

logger = logging.getLogger(__name__)

RECORDS = "submissions"
SENDING, QUEUED, DONE = "sending", "queued", "done"
#: How long a recorded outcome answers a repeat of the same submission.
DONE_TTL = 24 * 3600.0


async def mark_done(store: StateStore, key: str, outcome: dict[str, Any],
                    also: Awaitable[None] | None = None) -> None:
    """The submission `key` was filed with `outcome`. `also` (a kind's `remember`) runs
    alongside, so that its write and the record's start in the same turn of the event loop
    and reach the store together (one Redis pipeline, one SQLite commit)."""
    record = store.put(RECORDS, key, {"state": DONE, "outcome": outcome}, ttl=DONE_TTL)
    if also is None:
        await record
        return
    written, kept = await asyncio.gather(record, also, return_exceptions=True)
    if isinstance(kept, BaseException):  # `also` should handle its own: never fail a filed one
        logger.error("submission %s: what is kept with its outcome was not", key[:12],
                     exc_info=kept)
    if isinstance(written, asyncio.CancelledError):  # only the write was: a store failure
        raise StateUnavailable("the write of the submission's record was cancelled")
    if isinstance(written, BaseException):
        raise written


async def mark_queued(store: StateStore, key: str, since: float, ttl: float) -> None:
    """The submission `key` waits in the outbox."""
    await store.put(RECORDS, key, {"state": QUEUED, "since": since}, ttl=ttl)


async def release(store: StateStore, key: str) -> None:
    """Forget the submission `key`: the next identical request sends it again."""
    await store.delete(RECORDS, key)

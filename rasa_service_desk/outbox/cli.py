"""`python -m rasa_service_desk outbox ...`: what an operator does with the outbox.

    outbox list [--json]        the submissions waiting, given up or not yet announced
    outbox retry ID|--all       send again now (a given-up one too: it gets a new period)
    outbox drop ID              forget one for good (the customer is not told)

IDs are the first characters of the entry's key, as `list` shows them (any unique prefix).
The store is the one `STATE_URL` names, so the command works from any host that reaches it;
nothing it prints carries the customer's data or conversation id.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rasa_service_desk.outbox import FAILED, LEASES, NAMESPACE, PENDING
from rasa_service_desk.outbox.records import DONE, QUEUED, RECORDS, mark_queued, release
from rasa_service_desk.outbox.settings import DAY, OutboxSettings
from rasa_service_desk.outbox.worker import entry_summary
from rasa_service_desk.state import StateStore

COLUMNS = ("id", "state", "operation", "attempts", "age_seconds", "next_attempt_in_seconds",
           "conversation_told", "last_error")


async def entries(store: StateStore) -> list[tuple[str, dict[str, Any]]]:
    """Every entry of the outbox, oldest first."""
    found = []
    for key in await store.keys(NAMESPACE):
        entry = await store.get(NAMESPACE, key)
        if entry is not None:
            found.append((key, entry))
    return sorted(found, key=lambda item: float(item[1].get("created") or 0))


async def list_entries(store: StateStore, as_json: bool = False) -> str:
    now = time.time()
    rows = [entry_summary(key, entry, now) for key, entry in await entries(store)]
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return "The outbox is empty: every submission reached its vendor."
    table = [COLUMNS, *([str("-" if row[c] is None else row[c]) for c in COLUMNS]
                        for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
             .rstrip()
             for line in table]
    waiting = sum(1 for row in rows if row["state"] == PENDING)
    return "\n".join([*lines, f"{waiting} waiting, {len(rows) - waiting} other(s)"])


async def _find(store: StateStore, prefix: str) -> tuple[str, dict[str, Any]]:
    prefix = prefix.strip().lower()
    matches = [(k, e) for k, e in await entries(store) if prefix and k.startswith(prefix)]
    if not matches:
        raise LookupError(f"no outbox entry starts with {prefix!r} (see `outbox list`)")
    if len(matches) > 1:
        raise LookupError(f"{len(matches)} outbox entries start with {prefix!r}: give more "
                          "characters")
    return matches[0]


async def retry(store: StateStore, settings: OutboxSettings, prefix: str | None) -> str:
    """Make one entry (or every waiting or given-up one) due now."""
    chosen = [await _find(store, prefix)] if prefix else [
        (k, e) for k, e in await entries(store) if e.get("state") in (PENDING, FAILED)]
    count = 0
    now = time.time()
    for key, entry in chosen:
        if entry.get("state") not in (PENDING, FAILED):
            raise LookupError(f"{key[:12]} was delivered; only the announcement is left")
        if entry.get("state") == FAILED and not entry.get("payload"):
            raise LookupError(f"{key[:12]} no longer holds what was submitted")
        record = await store.get(RECORDS, key)
        if record is not None and record.get("state") == DONE:
            # Given up, then submitted again by the customer and filed: nothing to send.
            await store.delete(NAMESPACE, key)
            if prefix:
                raise LookupError(f"{key[:12]} was filed meanwhile (the customer submitted "
                                  "it again); the entry is removed")
            continue
        updated = {**entry, "state": PENDING, "next_attempt_at": now,
                   "notified": bool(entry.get("notified")) and entry.get("state") == PENDING,
                   "notice_left": False if entry.get("state") == FAILED
                   else entry.get("notice_left", False)}
        if entry.get("state") == FAILED:
            updated["created"] = now  # a new period before it is given up again
        keep = settings.give_up_after_seconds + DAY
        await store.put(NAMESPACE, key, updated, ttl=keep)
        await mark_queued(store, key, now, ttl=keep)
        count += 1
    return f"{count} submission(s) will be sent at the next delivery pass"


async def drop(store: StateStore, prefix: str) -> str:
    """Forget one entry: no further attempt, and the customer may submit it anew."""
    key, entry = await _find(store, prefix)
    await store.delete(NAMESPACE, key)
    await store.delete(LEASES, key)
    record = await store.get(RECORDS, key)
    if record is not None and record.get("state") == QUEUED:
        await release(store, key)
    return f"dropped {key[:12]} ({entry.get('operation')}, {entry.get('state')})"

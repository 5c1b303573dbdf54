"""The outbox: submissions saved while their vendor is down or busy, filed when it is back.

A ticket, errand, survey response or loop that meets a vendor outage (no connection, a
timeout, a 5xx, a 429, a reply that is not what the vendor documents) is not lost and the
customer does not have to come back and say "try again": the action saves it here, with what
is needed to send it again (`payload`), and tells the customer it will be filed. The
delivery worker (`rasa_service_desk.outbox.worker`), running inside every action-server
process, sends it when it is due, and tells the conversation through Rasa's HTTP API.

Everything lives in the shared state store (`rasa_service_desk.state`), so queued
submissions survive restarts of every process, and replicas sharing Redis share one outbox:
each entry is delivered by one replica at a time (a lease, `claim` with an expiry) and,
through the submission record of `rasa_service_desk.actions.submissions`, at most once.

Entries (namespace `outbox`, key = the submission's idempotency key):

- `pending`: waiting for its next attempt (`next_attempt_at`);
- `delivered`: filed; the payload (the customer's data) is dropped at once, the entry stays
  only until the conversation has been told;
- `failed`: given up (after `OUTBOX_GIVE_UP_AFTER_SECONDS`, or refused by the vendor); the
  payload is kept `OUTBOX_FAILED_RETENTION_DAYS` for an operator's `outbox retry`.

What a vendor client needs to send a submission again is registered once per kind of
submission (`register`): the outbox itself knows no vendor and no Rasa SDK.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa_service_desk.state import StateStore, listed

JsonDict = dict[str, Any]

#: Listed by every delivery pass (so Redis keeps an index of it rather than SCANning).
NAMESPACE = listed("outbox")
LEASES = "outbox_leases"
NOTICES = "submission_notices"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

Send = Callable[[JsonDict], Awaitable[JsonDict]]
Reconcile = Callable[[JsonDict, float], Awaitable["JsonDict | None"]]
Remember = Callable[[JsonDict, JsonDict], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    """One kind of submission (e.g. `benti.create_ticket`) and how to file it from its
    saved payload. `send` returns the outcome (ids and references, with at least `id`);
    `reconcile(payload, since)` finds a submission the vendor may already hold after an
    attempt whose outcome is unknown (None where the vendor offers no lookup); `intent` is
    the one Rasa is asked to run in the conversation when it was filed or given up.

    `remember(payload, outcome)` keeps what the project itself needs about a filed
    submission (e.g. which conversation owns a Cention errand) and may do what follows the
    filing (Cention's contact card). It runs beside the write of the submission's record
    (`records.mark_done`): a store write it issues before its first await goes in the same
    round trip, where writing one after the other would cost the action a second one. The
    action's reply (and the worker's notice) waits for it. It handles its own failures:
    the submission is filed whatever happens to it (a failure that escapes is logged)."""

    operation: str
    vendor: str
    send: Send
    intent: str
    reconcile: Reconcile | None = None
    remember: Remember | None = None


_kinds: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make `kind` deliverable by this process's worker (called by each vendor's actions)."""
    _kinds[kind.operation] = kind
    return kind


def kind_of(operation: str) -> Kind | None:
    """The registered kind of `operation`, or None when this process does not serve it."""
    return _kinds.get(operation)


def conversation_key(sender_id: str) -> str:
    """A conversation's key in the store: its whole SHA-256 (never the raw id)."""
    return hashlib.sha256(str(sender_id).encode()).hexdigest()


def notice_key(sender_id: str, vendor: str) -> str:
    """Where the notices of one vendor's submissions wait for their conversation."""
    return f"{conversation_key(sender_id)}:{vendor}"


def new_entry(kind: Kind, sender_id: str, payload: JsonDict, *, uncertain_since: float | None,
              error: str, first_wait: float = 2.0) -> JsonDict:
    """A pending entry for a submission whose first attempt failed just now; its next
    attempt in `first_wait` seconds."""
    now = time.time()
    return {
        "state": PENDING,
        "operation": kind.operation,
        "vendor": kind.vendor,
        "intent": kind.intent,
        "sender_id": sender_id,
        "payload": payload,
        "created": now,
        "attempts": 1,
        "next_attempt_at": now + first_wait,
        "uncertain_since": uncertain_since,
        "last_error": error,
        "outcome": None,
        "notified": False,
    }


async def take_notices(store: StateStore, sender_id: str, vendor: str) -> list[JsonDict]:
    """The notices waiting for this conversation about `vendor`'s submissions, oldest first,
    taken (shown once)."""
    return await store.take_all(NOTICES, notice_key(sender_id, vendor))

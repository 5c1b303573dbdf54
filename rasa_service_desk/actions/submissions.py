"""One submission, one object at the vendor: idempotency records in the shared state.

A customer who double-clicks, two replicas given the same request, Rasa re-running an action
after a lock timeout, "try again" after the reply to Rasa was lost: each used to file a
second ticket, errand, survey response or loop. Every submitting action now goes through
`submit_once`:

- The idempotency key is a hash of the conversation, the action and the content the
  customer submitted (never the transcript, which grows with every turn): the same ticket
  text is the same submission, a ticket with other text is a new one.
- The key is claimed atomically in the shared state (`StateStore.claim`, SQLite or Redis)
  before anything is sent, so of any number of concurrent identical requests, on any
  number of replicas, exactly one talks to the vendor. The others wait for its outcome
  (up to `patience` seconds) and answer with the same reference.
- The outcome (ids and references only, no personal data) is kept for `DONE_TTL`: a repeat
  within it gets the recorded outcome without a vendor call.
- A failed attempt releases the claim, so "try again" sends again. A claim whose owner
  crashed expires after `SENDING_TTL`.
- A failure after which the vendor may still have filed the submission (a timeout, a 5xx,
  a reply that is not what the vendor documents, a dropped connection: see
  `may_have_been_processed`) is remembered as uncertain. The next attempt first asks the
  vendor, where it can answer (`reconcile`, e.g. Loop's loops of a customer), and takes the
  submission found instead of filing a second one. Where no vendor lookup exists, it sends
  again: a possible duplicate an agent can merge is better than a request lost.

With the outbox on (`OUTBOX_ENABLED`, the default), a submission whose vendor is down or
busy is not failed back to the customer: `enqueue` saves it in the outbox
(`rasa_service_desk.outbox`), its record becomes `queued`, and `SubmissionQueued` tells the
action to say so. A repeat while it waits hears the same; once the delivery worker filed it,
a repeat gets its outcome like any other.

The conversation's latest submission is also pointed at (`latest_submission`: the action,
the slot it sets from the outcome's `id`, the submission key), written with the claim in one
store operation: when the slot does not hold the recorded outcome, the action's reply never
reached Rasa, and "try again" (`action_retry_pending`) runs the action once more, which
answers from the record instead of filing again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.clients.errors import IntegrationError, MalformedReply, VendorUnavailable
from rasa_service_desk.outbox import conversation_key
from rasa_service_desk.outbox.records import DONE, DONE_TTL, QUEUED, RECORDS, SENDING, mark_done
from rasa_service_desk.outbox.worker import queueable
from rasa_service_desk.state import Put
from rasa_service_desk.timeouts import within

logger = logging.getLogger(__name__)

NAMESPACE = RECORDS
UNCERTAIN_NAMESPACE = "uncertain_submissions"
LATEST_NAMESPACE = "latest_submission"
#: How long a claim outlives an owner that crashed mid-request (well past any deadline).
SENDING_TTL = 120.0
#: How often a waiting request looks for the outcome of the one that is sending.
POLL_SECONDS = 0.05

JsonDict = dict[str, Any]


class SubmissionInProgress(IntegrationError):
    """The same submission is being sent by another request and had no outcome in time."""

    def __init__(self) -> None:
        super().__init__("submission", "the same submission is still being sent")


class SubmissionQueued(Exception):
    """The submission waits in the outbox: the vendor is down or busy; it is filed (and the
    customer told) when the vendor is back."""


def submission_key(sender_id: str, action: str, content: Mapping[str, Any]) -> str:
    """A stable key for `content` submitted by `action` in conversation `sender_id`."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(f"{sender_id}\0{action}\0{canonical}".encode()).hexdigest()


Reconcile = Callable[[float], Awaitable["JsonDict | None"]]
#: Keeps what the project needs about a filed submission: `remember(outcome)`.
Remember = Callable[[JsonDict], Awaitable[None]]
#: Who submits: (conversation id, action name, the slot the outcome's `id` goes into).
Latest = tuple[str, str, str]
#: Saves a failed submission in the outbox: `enqueue(error, uncertain_since)`.
Enqueue = Callable[[BaseException, "float | None"], Awaitable[None]]


def may_have_been_processed(exc: BaseException) -> bool:
    """Whether the vendor may have filed the submission although the attempt failed: the
    request reached it (or may have) and no reply proved it refused. A refusal (4xx, 429,
    credentials) or a failure before sending is certain."""
    if isinstance(exc, MalformedReply):
        return True
    if isinstance(exc, VendorUnavailable):
        return exc.reached
    return isinstance(exc, asyncio.CancelledError)  # the deadline cut a request in flight


async def submit_once(key: str, send: Callable[[], Awaitable[JsonDict]], patience: float,
                      reconcile: Reconcile | None = None, enqueue: Enqueue | None = None,
                      budget: float | None = None, latest: Latest | None = None,
                      remember: Remember | None = None) -> JsonDict:
    """The outcome of the submission `key`: `send()`'s, or the recorded one of an earlier or
    concurrent identical request. Raises what `send()` raises (the claim is released), or
    `SubmissionInProgress` after `patience` seconds of waiting for another request.

    `reconcile(since)` looks at the vendor for this submission filed at or after `since`
    (Unix time) and returns its outcome, or None; it runs only after an uncertain failure.
    With `enqueue`, a vendor outage saves the submission in the outbox and raises
    `SubmissionQueued` (so does a repeat while it waits). `budget` bounds `send()` in
    seconds: past it, the attempt counts as a timeout (and is queued), so the action still
    has time to answer. `latest` makes this the conversation's latest submission.
    `remember(outcome)` is written together with the outcome's record, once it is filed
    (`Kind.remember`).
    """
    store = shared_state()
    give_up = time.monotonic() + patience
    pointer = None if latest is None else (
        LATEST_NAMESPACE, _conversation_key(latest[0]),
        {"action": latest[1], "slot": latest[2], "key": key}, DONE_TTL)
    while True:
        claimed, uncertain = await _claim(key, pointer, reconcile is not None)
        if claimed:
            found = None if reconcile is None or uncertain is None else await _reconciled(
                key, reconcile, float(uncertain.get("since") or 0.0))
            if found is not None:
                await asyncio.shield(_record_filed(key, found, remember))
                return found
            return await _send(key, send, enqueue, budget, remember)
        record = await store.get(NAMESPACE, key)
        if record is not None and record.get("state") == DONE:
            logger.info("submission %s: answered from its record, not sent again", key[:12])
            return dict(record.get("outcome") or {})
        if record is not None and record.get("state") == QUEUED:
            raise SubmissionQueued()
        if time.monotonic() >= give_up:
            raise SubmissionInProgress()
        await asyncio.sleep(POLL_SECONDS)


async def _claim(key: str, pointer: Put | None,
                 uncertain: bool) -> tuple[bool, JsonDict | None]:
    """Claim `key` (and point the conversation at it); with `uncertain`, also the mark an
    earlier attempt of unknown outcome left, read with the claim (one round trip on Redis)."""
    store = shared_state()
    value = {"state": SENDING, "since": time.time()}
    if not uncertain:
        return await store.claim(NAMESPACE, key, value, ttl=SENDING_TTL, also=pointer), None
    return await store.claim_and_read(NAMESPACE, key, value, ttl=SENDING_TTL, also=pointer,
                                      read=(UNCERTAIN_NAMESPACE, key))


async def _reconciled(key: str, reconcile: Reconcile, since: float) -> JsonDict | None:
    """After an uncertain failure (at `since`), what the vendor says it holds for this
    submission."""
    found = await reconcile(since)
    logger.info("submission %s: the last attempt's outcome was unknown; the vendor %s",
                key[:12], "has it, so it is not sent again" if found else
                "does not have it, so it is sent again")
    await shared_state().delete(UNCERTAIN_NAMESPACE, key)
    return found


async def _bounded(send: Callable[[], Awaitable[JsonDict]], budget: float | None) -> JsonDict:
    if budget is None:
        return await send()
    try:
        return await within(send(), max(budget, 0.1))
    except asyncio.TimeoutError:
        raise VendorUnavailable("submission", f"no outcome within {budget:.1f} s (the share of "
                                "ACTION_DEADLINE_SECONDS kept for filing)",
                                reached=True) from None


async def _send(key: str, send: Callable[[], Awaitable[JsonDict]],
                enqueue: Enqueue | None = None, budget: float | None = None,
                remember: Remember | None = None) -> JsonDict:
    store = shared_state()
    started = time.time()
    try:
        outcome = await _bounded(send, budget)
    except BaseException as exc:
        if enqueue is not None and isinstance(exc, Exception) and queueable(exc):
            try:
                # Shielded: the entry is saved even if the action is cancelled meanwhile.
                await asyncio.shield(enqueue(
                    exc, started if may_have_been_processed(exc) else None))
            except Exception as failure:
                logger.error("submission %s: could not be queued (%s); the customer is told "
                             "to try again", key[:12], type(failure).__name__)
            else:
                raise SubmissionQueued() from None
        # Failed, or cancelled by the action's deadline: the next attempt sends again (after
        # asking the vendor, when it may have the submission already).
        if may_have_been_processed(exc):
            try:
                await asyncio.shield(store.put(UNCERTAIN_NAMESPACE, key, {"since": started},
                                               ttl=DONE_TTL))
            except Exception:
                logger.warning("submission %s: unknown outcome not recorded", key[:12])
        try:
            await asyncio.shield(store.delete(NAMESPACE, key))
        except Exception:
            logger.warning("submission %s: claim not released (it expires in %.0f s)",
                           key[:12], SENDING_TTL)
        raise
    # Shielded: filed, so recorded even if the action's deadline cancels it meanwhile (a
    # repeat then answers from the record instead of filing again).
    await asyncio.shield(_record_filed(key, outcome, remember))
    return outcome


async def _record_filed(key: str, outcome: JsonDict, remember: Remember | None) -> None:
    """Record the outcome of a filed submission (with what `remember` keeps). A failure is
    logged here, since the caller may be gone (cancelled by the action's deadline)."""
    try:
        await mark_done(shared_state(), key, outcome,
                        None if remember is None else remember(outcome))
    except Exception as exc:
        logger.error("submission %s: filed, but its record was not written (%s); a repeat "
                     "within %.0f s waits, a later one files it again", key[:12],
                     type(exc).__name__, SENDING_TTL)
        raise


def _conversation_key(sender_id: str) -> str:
    """The store key of a conversation: its whole SHA-256 (the 8-digit log hash collides)."""
    return conversation_key(sender_id)


async def unacknowledged_action(sender_id: str, slots: Mapping[str, Any]) -> str | None:
    """The action whose last submission in this conversation was filed but whose reply Rasa
    never applied (its slot does not hold the outcome's `id`), or None."""
    try:
        store = shared_state()
        pointer = await store.get(LATEST_NAMESPACE, _conversation_key(sender_id))
        if not pointer or not isinstance(pointer.get("key"), str):
            return None
        record = await store.get(NAMESPACE, pointer["key"])
    except Exception as exc:
        logger.warning("latest submission not readable: %s", type(exc).__name__)
        return None
    if record is None or record.get("state") != DONE or not isinstance(pointer.get("slot"), str):
        return None
    outcome = record.get("outcome")
    if not isinstance(outcome, dict) or slots.get(pointer["slot"]) == outcome.get("id"):
        return None
    action = pointer.get("action")
    return action if isinstance(action, str) else None

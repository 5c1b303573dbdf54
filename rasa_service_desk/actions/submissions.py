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

The conversation's latest outcome is also kept (`latest_submission`), with the slot the
action sets from it: when that slot does not hold it, the action's reply never reached
Rasa, and "try again" (`action_retry_pending`) runs the action once more, which answers
from the record instead of filing again.
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

logger = logging.getLogger(__name__)

NAMESPACE = "submissions"
UNCERTAIN_NAMESPACE = "uncertain_submissions"
LATEST_NAMESPACE = "latest_submission"
#: How long a recorded outcome answers a repeat of the same submission.
DONE_TTL = 24 * 3600.0
#: How long a claim outlives an owner that crashed mid-request (well past any deadline).
SENDING_TTL = 120.0
#: How often a waiting request looks for the outcome of the one that is sending.
POLL_SECONDS = 0.05

JsonDict = dict[str, Any]


class SubmissionInProgress(IntegrationError):
    """The same submission is being sent by another request and had no outcome in time."""

    def __init__(self) -> None:
        super().__init__("submission", "the same submission is still being sent")


def submission_key(sender_id: str, action: str, content: Mapping[str, Any]) -> str:
    """A stable key for `content` submitted by `action` in conversation `sender_id`."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(f"{sender_id}\0{action}\0{canonical}".encode()).hexdigest()


Reconcile = Callable[[float], Awaitable["JsonDict | None"]]


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
                      reconcile: Reconcile | None = None) -> JsonDict:
    """The outcome of the submission `key`: `send()`'s, or the recorded one of an earlier or
    concurrent identical request. Raises what `send()` raises (the claim is released), or
    `SubmissionInProgress` after `patience` seconds of waiting for another request.

    `reconcile(since)` looks at the vendor for this submission filed at or after `since`
    (Unix time) and returns its outcome, or None; it runs only after an uncertain failure.
    """
    store = shared_state()
    give_up = time.monotonic() + patience
    while True:
        if await store.claim(NAMESPACE, key, {"state": "sending", "since": time.time()},
                             ttl=SENDING_TTL):
            found = await _reconciled(key, reconcile)
            if found is not None:
                await store.put(NAMESPACE, key, {"state": "done", "outcome": found},
                                ttl=DONE_TTL)
                return found
            return await _send(key, send)
        record = await store.get(NAMESPACE, key)
        if record is not None and record.get("state") == "done":
            logger.info("submission %s: answered from its record, not sent again", key[:12])
            return dict(record.get("outcome") or {})
        if time.monotonic() >= give_up:
            raise SubmissionInProgress()
        await asyncio.sleep(POLL_SECONDS)


async def _reconciled(key: str, reconcile: Reconcile | None) -> JsonDict | None:
    """After an uncertain failure, what the vendor says it holds for this submission."""
    if reconcile is None:
        return None
    store = shared_state()
    uncertain = await store.get(UNCERTAIN_NAMESPACE, key)
    if uncertain is None:
        return None
    since = float(uncertain.get("since") or 0.0)
    found = await reconcile(since)
    logger.info("submission %s: the last attempt's outcome was unknown; the vendor %s",
                key[:12], "has it, so it is not sent again" if found else
                "does not have it, so it is sent again")
    await store.delete(UNCERTAIN_NAMESPACE, key)
    return found


async def _send(key: str, send: Callable[[], Awaitable[JsonDict]]) -> JsonDict:
    store = shared_state()
    started = time.time()
    try:
        outcome = await send()
    except BaseException as exc:
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
    await store.put(NAMESPACE, key, {"state": "done", "outcome": outcome}, ttl=DONE_TTL)
    return outcome


def _conversation_key(sender_id: str) -> str:
    """The store key of a conversation: its whole SHA-256 (the 8-digit log hash collides)."""
    return hashlib.sha256(str(sender_id).encode()).hexdigest()


async def record_latest(sender_id: str, action: str, slot: str, value: Any) -> None:
    """Remember that `action` set `slot` to `value` in this conversation (see the module
    docstring); a failure only costs the lost-reply recovery, so it is logged, not raised."""
    try:
        await shared_state().put(LATEST_NAMESPACE, _conversation_key(sender_id),
                                 {"action": action, "slot": slot, "value": value},
                                 ttl=DONE_TTL)
    except Exception as exc:
        logger.warning("latest submission not recorded: %s", type(exc).__name__)


async def unacknowledged_action(sender_id: str, slots: Mapping[str, Any]) -> str | None:
    """The action whose last submission in this conversation succeeded but whose reply Rasa
    never applied (its slot does not hold the outcome), or None."""
    try:
        record = await shared_state().get(LATEST_NAMESPACE, _conversation_key(sender_id))
    except Exception as exc:
        logger.warning("latest submission not readable: %s", type(exc).__name__)
        return None
    if not record or not isinstance(record.get("slot"), str):
        return None
    if slots.get(record["slot"]) == record.get("value"):
        return None
    action = record.get("action")
    return action if isinstance(action, str) else None

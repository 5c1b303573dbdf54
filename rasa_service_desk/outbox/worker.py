"""The delivery worker: files the outbox's submissions when their vendor is back.

One worker runs in every action-server process (started with the server by the plugin
hook, or by the first action run where no plugin is installed). Every `OUTBOX_POLL_SECONDS`
it lists the outbox and, for each entry that is due, takes the entry's lease (an atomic
`claim` with an expiry): of any number of replicas, one delivers it. A replica killed
mid-delivery leaves a lease that expires after `LEASE_SECONDS`; whoever delivers next knows
an attempt was in flight and first asks the vendor whether it arrived, where the vendor can
tell (`Kind.reconcile`).

After each attempt:

- filed: the submission record answers repeats with its outcome, the payload is dropped,
  a notice is left for the conversation and Rasa is asked to run the vendor's update intent
  (`trigger_intent`, `output_channel=latest`); the update action shows the reference. What
  Rasa collects instead of pushing (REST-like channels) is held for the customer's next
  message (`rasa_service_desk.state.held_messages`);
- the vendor still down or busy: the next attempt waits twice as long (from 2 s up to
  `OUTBOX_MAX_BACKOFF_SECONDS`), or what the vendor's `Retry-After` asks;
- refused by the vendor, or no success within `OUTBOX_GIVE_UP_AFTER_SECONDS`: failed; the
  conversation is told, and the submission record is released so the customer can try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
import socket
import time
from typing import Any

from rasa_service_desk.clients.errors import (
    IntegrationError,
    MalformedReply,
    RateLimited,
    VendorUnavailable,
)
from rasa_service_desk.observability.metrics import OUTBOX, OUTBOX_OLDEST, OUTBOX_WAITING
from rasa_service_desk.outbox import (
    DELIVERED,
    FAILED,
    LEASES,
    NAMESPACE,
    NOTICES,
    PENDING,
    JsonDict,
    kind_of,
    notice_key,
)
from rasa_service_desk.outbox.rasa_api import RasaApi, RasaUnavailable
from rasa_service_desk.outbox.records import DONE, RECORDS, mark_done, release
from rasa_service_desk.outbox.settings import DAY, OutboxSettings
from rasa_service_desk.state import StateStore, StateUnavailable
from rasa_service_desk.state.held_messages import hold

logger = logging.getLogger(__name__)

#: Longest one delivery attempt may take (the vendor client's own timeouts are shorter).
DELIVERY_TIMEOUT_SECONDS = 60.0
#: A lease outlives a delivery attempt; a crashed holder's lease expires after this.
LEASE_SECONDS = DELIVERY_TIMEOUT_SECONDS + 30.0
#: Entries delivered at once by one process.
CONCURRENCY = 8
#: First wait after a failed attempt (seconds); it doubles with every attempt.
FIRST_BACKOFF_SECONDS = 2.0
#: How often the number of waiting submissions is logged while it stays the same.
REPORT_INTERVAL_SECONDS = 60.0


def queueable(exc: BaseException) -> bool:
    """Failures that say the vendor is down or busy now, not that the submission is wrong:
    worth another attempt later."""
    return isinstance(exc, (VendorUnavailable, RateLimited, MalformedReply))


def uncertain(exc: BaseException) -> bool:
    """Whether the vendor may have filed the submission although the attempt failed."""
    if isinstance(exc, MalformedReply):
        return True
    if isinstance(exc, VendorUnavailable):
        return exc.reached
    return isinstance(exc, asyncio.TimeoutError)


def error_summary(exc: BaseException) -> str:
    """What went wrong, for `outbox list` and logs: the error's type and HTTP status, never
    its message (a vendor's message can quote what the customer wrote)."""
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


class DeliveryWorker:
    """Delivers the outbox of one store from this process (see the module docstring)."""

    def __init__(self, store: StateStore, settings: OutboxSettings,
                 rasa: RasaApi | None = None) -> None:
        self.store = store
        self.settings = settings
        self.rasa = rasa or RasaApi(settings.rasa_url, settings.rasa_token)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_report = (-1, 0.0)

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in the background of the current event loop until `stop()`."""
        if self._task is None or self._task.done():
            # In a fresh context: started from inside an action, the task would otherwise
            # inherit that action's deadline (`set_wait_deadline`) and start time.
            loop = asyncio.get_running_loop()
            self._task = contextvars.Context().run(loop.create_task, self._loop(),
                                                   name="outbox-delivery")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop once the delivery pass in flight ends (up to `grace` seconds), else cancel
        it: its leases expire and the next holder asks the vendor before sending again."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except asyncio.TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        self._stopping.clear()
        while not self._stopping.is_set():
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except StateUnavailable as exc:
                logger.error("outbox: shared state unavailable (%s); trying again", exc)
            except Exception:
                logger.exception("outbox: delivery pass failed; trying again")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.poll_seconds)

    async def run_pass(self) -> int:
        """Deliver (or notify) every entry that is due; returns how many were handled."""
        now = time.time()
        entries: list[tuple[str, JsonDict]] = []
        for key in await self.store.keys(NAMESPACE):
            entry = await self.store.get(NAMESPACE, key)
            if entry is not None:
                entries.append((key, entry))
        self._report(entries, now)
        due = [key for key, entry in entries if self._due(entry, now)]
        if not due:
            return 0
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(key: str) -> bool:
            async with limit:
                return await self.handle(key)

        return sum(await asyncio.gather(*(one(key) for key in due)))

    @staticmethod
    def _due(entry: JsonDict, now: float) -> bool:
        if entry.get("state") == PENDING:
            return float(entry.get("next_attempt_at") or 0) <= now
        if entry.get("state") in (DELIVERED, FAILED) and not entry.get("notified"):
            return float(entry.get("next_attempt_at") or 0) <= now
        return False

    def _report(self, entries: list[tuple[str, JsonDict]], now: float) -> None:
        """The number of waiting submissions: in the metrics at every pass, in the log when
        it changes and once a minute while any wait."""
        waiting: dict[str, int] = {}
        oldest = 0.0
        for _, entry in entries:
            if entry.get("state") == PENDING:
                vendor = str(entry.get("vendor"))
                waiting[vendor] = waiting.get(vendor, 0) + 1
                oldest = max(oldest, now - float(entry.get("created") or now))
        for vendor in {*waiting, "benti", "cention", "loop"}:
            OUTBOX_WAITING.labels(vendor).set(waiting.get(vendor, 0))
        OUTBOX_OLDEST.set(oldest)
        total = sum(waiting.values())
        count, at = self._last_report
        if total != count or (total and now - at >= REPORT_INTERVAL_SECONDS):
            self._last_report = (total, now)
            if total or count > 0:
                detail = ", ".join(f"{vendor} {n}" for vendor, n in sorted(waiting.items()))
                logger.info("outbox: %d submission(s) waiting for their vendor%s", total,
                            f" ({detail}; oldest {oldest:.0f} s)" if total else "")

    # -- one entry --------------------------------------------------------------------------

    async def handle(self, key: str) -> bool:
        """Deliver or notify the entry `key` if this process gets its lease; True if it did
        anything."""
        if not await self.store.claim(LEASES, key, {"owner": self.owner}, ttl=LEASE_SECONDS):
            return False
        try:
            entry = await self.store.get(NAMESPACE, key)  # again: another may have finished it
            if entry is None or not self._due(entry, time.time()):
                return False
            if entry.get("state") == PENDING:
                await self._deliver(key, entry)
            else:
                await self._notify(key, entry)
            return True
        finally:
            try:
                await asyncio.shield(self.store.delete(LEASES, key))
            except Exception:
                logger.warning("outbox %s: lease not released (it expires in %.0f s)",
                               key[:12], LEASE_SECONDS)

    async def _deliver(self, key: str, entry: JsonDict) -> None:
        kind = kind_of(str(entry.get("operation")))
        if kind is None:
            # A replica that does not serve this vendor; one that does will deliver it.
            logger.debug("outbox %s: %s not served by this process", key[:12],
                         entry.get("operation"))
            return
        record = await self.store.get(RECORDS, key)
        if record is not None and record.get("state") == DONE:
            # Filed meanwhile (the customer submitted it again after it was given up, and an
            # operator retried the old entry): never a second time.
            logger.info("outbox %s: already filed; entry dropped", key[:12])
            await self.store.delete(NAMESPACE, key)
            return
        payload = dict(entry.get("payload") or {})
        started = time.time()
        # An attempt whose outcome is unknown: one that failed that way, or one in flight
        # when its process died (its `sending_since` is still there).
        unknown_since = entry.get("uncertain_since") or entry.get("sending_since")
        # Recorded first: if this process dies mid-request, the next attempt knows one was
        # in flight and asks the vendor before filing again.
        await self.store.put(NAMESPACE, key, {**entry, "sending_since": started},
                             ttl=self._pending_ttl(entry))
        try:
            outcome = None
            if unknown_since is not None and kind.reconcile is not None:
                outcome = await asyncio.wait_for(kind.reconcile(payload, float(unknown_since)),
                                                 DELIVERY_TIMEOUT_SECONDS)
                logger.info("outbox %s: an earlier attempt's outcome was unknown; %s", key[:12],
                            "the vendor has it" if outcome else "the vendor does not have it")
                unknown_since = None  # answered: only this attempt can leave a doubt now
            if outcome is None:
                outcome = await asyncio.wait_for(kind.send(payload), DELIVERY_TIMEOUT_SECONDS)
        except asyncio.CancelledError:
            raise  # the server is stopping: the lease expires, the next holder reconciles
        except Exception as exc:
            if uncertain(exc):
                unknown_since = unknown_since or started
            await self._attempt_failed(key, entry, exc, unknown_since)
            return
        await mark_done(self.store, key, outcome,
                        None if kind.remember is None else kind.remember(payload, outcome))
        OUTBOX.labels(kind.vendor, "delivered").inc()
        logger.info("outbox %s: %s filed after %d attempt(s), %.0f s after it was queued",
                    key[:12], kind.operation, int(entry.get("attempts") or 0) + 1,
                    time.time() - float(entry.get("created") or started))
        delivered = {name: value for name, value in entry.items()
                     if name not in ("payload", "sending_since", "uncertain_since")}
        delivered.update(state=DELIVERED, outcome=outcome, notified=False,
                         delivered_at=time.time(), next_attempt_at=0)
        await self.store.put(NAMESPACE, key, delivered, ttl=self._kept(delivered))
        await self._notify(key, delivered)

    async def _attempt_failed(self, key: str, entry: JsonDict, exc: Exception,
                              unknown_since: float | None) -> None:
        vendor = str(entry.get("vendor"))
        attempts = int(entry.get("attempts") or 0) + 1
        updated = {k: v for k, v in entry.items() if k != "sending_since"}
        updated.update(attempts=attempts, last_error=error_summary(exc),
                       uncertain_since=unknown_since)
        expired = time.time() - float(entry.get("created") or 0) >= \
            self.settings.give_up_after_seconds
        if not isinstance(exc, IntegrationError) or queueable(exc):
            if not isinstance(exc, IntegrationError):
                logger.error("outbox %s: attempt failed unexpectedly (%s)", key[:12],
                             error_summary(exc), exc_info=exc)
            if not expired:
                wait = self.backoff(attempts, getattr(exc, "retry_after", None))
                updated["next_attempt_at"] = time.time() + wait
                OUTBOX.labels(vendor, "retried").inc()
                logger.info("outbox %s: %s still not filed (%s); attempt %d in %.0f s",
                            key[:12], entry.get("operation"), updated["last_error"],
                            attempts + 1, wait)
                await self.store.put(NAMESPACE, key, updated, ttl=self._pending_ttl(updated))
                return
        await self._give_up(key, updated, f"not filed within "
                            f"{self.settings.give_up_after_seconds:g} s" if expired
                            else "refused by the vendor")

    async def _give_up(self, key: str, entry: JsonDict, why: str) -> None:
        await release(self.store, key)  # "try again" may send it anew
        failed = {**entry, "state": FAILED, "notified": False, "next_attempt_at": 0,
                  "failed_at": time.time()}
        OUTBOX.labels(str(entry.get("vendor")), "failed").inc()
        logger.error("outbox %s: %s given up after %d attempt(s): %s (%s)", key[:12],
                     entry.get("operation"), int(entry.get("attempts") or 0), why,
                     entry.get("last_error"))
        await self.store.put(NAMESPACE, key, failed,
                             ttl=self.settings.failed_retention_days * DAY)
        await self._notify(key, failed)

    async def _notify(self, key: str, entry: JsonDict) -> None:
        """Leave the notice for the conversation (once) and ask Rasa to run the vendor's
        update intent there; a Rasa that cannot be reached is asked again later."""
        sender_id = str(entry.get("sender_id"))
        vendor = str(entry.get("vendor"))
        if not entry.get("notice_left"):
            await self.store.append(NOTICES, notice_key(sender_id, vendor), {
                "operation": entry.get("operation"), "state": entry.get("state"),
                "outcome": entry.get("outcome")}, ttl=self.settings.give_up_after_seconds + DAY)
            entry = {**entry, "notice_left": True}
            await self.store.put(NAMESPACE, key, entry, ttl=self._kept(entry))
        try:
            messages = await self.rasa.trigger_intent(sender_id, str(entry.get("intent")))
        except RasaUnavailable as exc:
            pushes = int(entry.get("pushes") or 0) + 1
            since = float(entry.get("delivered_at") or entry.get("failed_at") or time.time())
            if time.time() - since < self.settings.give_up_after_seconds:
                wait = self.backoff(pushes, None)
                logger.warning("outbox %s: Rasa not told yet (%s); again in %.0f s", key[:12],
                               exc, wait)
                await self.store.put(NAMESPACE, key, {
                    **entry, "pushes": pushes, "next_attempt_at": time.time() + wait},
                    ttl=self._kept(entry))
                return
            logger.error("outbox %s: Rasa could not be told within %g s (%s); the notice "
                         "waits in the shared state", key[:12],
                         self.settings.give_up_after_seconds, exc)
            messages = []
        if messages:
            await hold(self.store, sender_id, messages)
        OUTBOX.labels(vendor, "notified").inc()
        if entry.get("state") == DELIVERED:
            await self.store.delete(NAMESPACE, key)
        else:
            await self.store.put(NAMESPACE, key, {**entry, "notified": True},
                                 ttl=self._kept(entry))

    # -- timing -----------------------------------------------------------------------------

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before attempt `attempts + 1`: 2 s doubled per attempt, with 20% jitter so
        replicas do not retry in step, up to `OUTBOX_MAX_BACKOFF_SECONDS`; never less than
        the vendor's `Retry-After` (calling earlier only meets another refusal), up to a
        day."""
        cap = self.settings.max_backoff_seconds
        if retry_after is not None and retry_after > 0:
            return min(DAY, max(retry_after, min(cap, FIRST_BACKOFF_SECONDS)))
        wait = FIRST_BACKOFF_SECONDS * 2 ** min(max(attempts - 1, 0), 20)
        return min(cap, wait) * random.uniform(0.8, 1.2)

    def _pending_ttl(self, entry: JsonDict) -> float:
        """A pending entry is kept until well past its give-up time."""
        created = float(entry.get("created") or time.time())
        return max(60.0, created + self.settings.give_up_after_seconds + DAY - time.time())

    def _kept(self, entry: JsonDict) -> float:
        if entry.get("state") == FAILED:
            return self.settings.failed_retention_days * DAY
        return self.settings.give_up_after_seconds + DAY


def entry_summary(key: str, entry: JsonDict, now: float | None = None) -> dict[str, Any]:
    """An entry as `outbox list` shows it: no payload, no conversation id."""
    now = time.time() if now is None else now
    return {
        "id": key[:12],
        "state": entry.get("state"),
        "operation": entry.get("operation"),
        "attempts": entry.get("attempts"),
        "age_seconds": round(now - float(entry.get("created") or now)),
        "next_attempt_in_seconds": (max(0, round(float(entry.get("next_attempt_at") or 0)
                                                 - now))
                                    if entry.get("state") == PENDING else None),
        "last_error": entry.get("last_error"),
        "conversation_told": bool(entry.get("notified")),
    }

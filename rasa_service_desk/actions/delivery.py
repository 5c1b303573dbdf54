"""The action server's side of the outbox (`rasa_service_desk.outbox`).

- `Submission`: one kind of submission as a vendor's actions declare it: how to file it
  from its saved payload (`outbox.Kind`), the slot that holds its id, what the customer
  hears when it is queued or given up, and `confirm` (the responses and slot events of a
  filed one), shared by the action that files it at once and by the update action that
  announces it later.
- `ActionSubmissionUpdate`: the base of each vendor's `action_<vendor>_submission_update`,
  run by Rasa when the worker triggers `<vendor>_submission_update`. It shows only what the
  worker left for this conversation in the shared state: a customer typing the intent
  (`/benti_submission_update`) is shown nothing.
- The worker's life: started with the server by the plugin hook, or by the first action
  run where no plugin is installed; one per process and event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.shared_state import shared_state
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.observability.metrics import OUTBOX
from rasa_service_desk.outbox import DELIVERED, NAMESPACE, Kind, new_entry, register, take_notices
from rasa_service_desk.outbox.records import mark_queued
from rasa_service_desk.outbox.settings import DAY, OutboxSettings
from rasa_service_desk.outbox.worker import DeliveryWorker, error_summary

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
EventList = list[dict[str, Any]]
Confirm = Callable[[JsonDict, CollectingDispatcher, Tracker], EventList]


@dataclass(frozen=True)
class Submission:
    """A kind of submission, as its vendor's actions declare it (see the module docstring)."""

    kind: Kind
    confirm_slot: str
    queued_response: str
    failed_response: str
    confirm: Confirm


_submissions: dict[str, Submission] = {}


def declare(submission: Submission) -> Submission:
    """Register `submission` with the outbox and for its vendor's update action (at import:
    the outbox settings are checked then, so a wrong one stops the server at start)."""
    outbox_settings()
    register(submission.kind)
    _submissions[submission.kind.operation] = submission
    return submission


_settings: list[OutboxSettings] = []


def outbox_settings() -> OutboxSettings:
    """`OUTBOX_*`, read and checked once per process; a wrong value stops the server."""
    if not _settings:
        try:
            _settings.append(OutboxSettings.load())
        except ConfigurationError as exc:
            print(f"\nThe action server cannot start (outbox): {exc.message}\n"
                  "Set these variables in the environment or in .env (see .env.example).\n",
                  file=sys.stderr)
            raise SystemExit(2) from None
    return _settings[0]


def enqueuer(submission: Submission, sender_id: str, key: str,
             payload: JsonDict) -> Callable[[BaseException, float | None], Any] | None:
    """What saves this submission in the outbox after a vendor outage, or None when the
    outbox is off."""
    settings = outbox_settings()
    if not settings.enabled:
        return None

    async def enqueue(error: BaseException, uncertain_since: float | None) -> None:
        store = shared_state()
        worker = ensure_delivery_worker()
        wait = worker.backoff(1, getattr(error, "retry_after", None)) if worker else 2.0
        entry = new_entry(submission.kind, sender_id, payload, uncertain_since=uncertain_since,
                          error=error_summary(error), first_wait=wait)
        keep = settings.give_up_after_seconds + DAY
        await store.put(NAMESPACE, key, entry, ttl=keep)
        await mark_queued(store, key, time.time(), ttl=keep)
        OUTBOX.labels(submission.kind.vendor, "queued").inc()
        logger.warning("outbox %s: %s queued, the vendor is unavailable (%s)", key[:12],
                       submission.kind.operation, entry["last_error"])

    return enqueue


# -- the worker's life ------------------------------------------------------------------------

_workers: dict[asyncio.AbstractEventLoop, DeliveryWorker] = {}


def ensure_delivery_worker() -> DeliveryWorker | None:
    """Start this process's delivery worker in the running loop (once); None when the
    outbox is off or no integration of this process files submissions (Imbee alone)."""
    if not _submissions or not outbox_settings().enabled:
        return None
    loop = asyncio.get_running_loop()
    worker = _workers.get(loop)
    if worker is None:
        for stale in [lp for lp in _workers if lp.is_closed()]:
            del _workers[stale]
        worker = _workers[loop] = DeliveryWorker(shared_state(), outbox_settings())
    if not worker.running:
        worker.start()
    return worker


async def stop_delivery_worker() -> None:
    """Stop the running loop's worker (the server is stopping)."""
    worker = _workers.pop(asyncio.get_running_loop(), None)
    if worker is not None:
        await worker.stop()


# -- the update action ------------------------------------------------------------------------


class ActionSubmissionUpdate(Action, ABC):
    """Announce what the outbox did with this conversation's submissions to `vendor`.

    Triggered by the worker as an intent (`trigger_intent`), it may arrive while a form is
    asking its questions: no form takes it as an answer, and this action hands back to the
    form, which asks its question again.
    """

    #: The integration whose notices this action shows.
    vendor: ClassVar[str]

    @abstractmethod
    def name(self) -> str:
        """`action_<vendor>_submission_update` (abstract: rasa-sdk registers no base class)."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> EventList:
        events: EventList = []
        try:
            notices = await take_notices(shared_state(), tracker.sender_id, self.vendor)
        except Exception as exc:
            logger.error("%s: notices not readable (%s); they stay for the next time",
                         self.name(), type(exc).__name__)
            notices = []
        for notice in notices:
            submission = _submissions.get(str(notice.get("operation")))
            if submission is None:
                continue
            if notice.get("state") == DELIVERED and isinstance(notice.get("outcome"), dict):
                events.extend(submission.confirm(notice["outcome"], dispatcher, tracker))
            else:
                dispatcher.utter_message(response=submission.failed_response)
        if not notices:
            logger.info("%s: nothing to announce (not triggered by the outbox)", self.name())
        form = (tracker.active_loop or {}).get("name")
        if isinstance(form, str) and form and form in (domain.get("forms") or {}):
            events.append(FollowupAction(form))
        return events

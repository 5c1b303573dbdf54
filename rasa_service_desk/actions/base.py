"""Base class of every vendor action: typed vendor errors become domain responses.

An exception escaping `run()` makes rasa-sdk answer HTTP 500 with a body that echoes the
tracker (customer data included) and leaves the customer without a reply. `IntegrationAction`
catches everything: vendor errors are mapped to a response from `domain/shared.yml` (or the
action's own `error_responses`), unexpected ones to `utter_something_went_wrong`. No events
are returned on failure but `pending_action`, so the conversation keeps every slot and
"try again" (`action_retry_pending`) runs the failed action again without retyping.

Every run has a deadline (`ACTION_DEADLINE_SECONDS`, 8 s by default) below the time Rasa
waits for the action server: past it the vendor call is abandoned and the customer hears
that the vendor is unavailable, exactly as after a vendor timeout, instead of Rasa giving up
on the call with no reply at all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.delivery import Submission, enqueuer, ensure_delivery_worker
from rasa_service_desk.actions.runtime import action_deadline
from rasa_service_desk.actions.submissions import (
    JsonDict,
    SubmissionInProgress,
    SubmissionQueued,
    submission_key,
    submit_once,
)
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    IntegrationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import set_wait_deadline
from rasa_service_desk.timeouts import within

logger = logging.getLogger(__name__)

EventList = list[dict[str, Any]]
DomainDict = dict[str, Any]

DEFAULT_ERROR_RESPONSES: dict[type[IntegrationError], str] = {
    SubmissionInProgress: "utter_submission_in_progress",
    VendorUnavailable: "utter_vendor_unavailable",
    MalformedReply: "utter_vendor_unavailable",
    RateLimited: "utter_vendor_busy",
    RejectedInput: "utter_vendor_rejected",
    AuthenticationError: "utter_integration_unavailable",
    ConfigurationError: "utter_integration_unavailable",
    IntegrationError: "utter_vendor_unavailable",
}
UNEXPECTED_ERROR_RESPONSE = "utter_something_went_wrong"
PENDING_ACTION_SLOT = "pending_action"
#: Share of the action's deadline a request waits for an identical one in flight.
SUBMISSION_PATIENCE = 0.75
#: Share of the action's deadline a submission's first attempt may take; past it the
#: submission is queued in the outbox, with time left to tell the customer.
SUBMISSION_BUDGET = 0.8

#: Event-loop time the current action run started (for the submission budget).
_run_started: ContextVar[float] = ContextVar("rsd_run_started", default=0.0)


class IntegrationAction(Action, ABC):
    """Subclasses implement `act()`; `run()` adds the error handling."""

    #: Per-action overrides, e.g. `{RejectedInput: "utter_benti_ticket_rejected"}`.
    error_responses: ClassVar[dict[type[IntegrationError], str]] = {}
    #: Other actions (e.g. its form) this action may record in `pending_action` instead of
    #: itself; "try again" runs only these and the `IntegrationAction`s themselves.
    retry_targets: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        """Do the action's work; raise `IntegrationError`s freely."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        deadline = action_deadline()
        started = asyncio.get_running_loop().time()
        _run_started.set(started)
        ensure_delivery_worker()  # where no plugin started it with the server
        set_wait_deadline(deadline)  # no vendor-asked wait beyond it: "busy" at once instead
        try:
            try:
                events = await within(self.act(dispatcher, tracker, domain), deadline)
            except asyncio.TimeoutError:
                if asyncio.get_running_loop().time() - started < deadline:
                    raise  # not the deadline: a timeout inside the action itself
                raise VendorUnavailable(
                    "deadline", f"no result within {deadline:g} s (ACTION_DEADLINE_SECONDS)"
                ) from None
        except IntegrationError as exc:
            logger.warning("%s: %s (%s)", self.name(), exc, type(exc).__name__)
            dispatcher.utter_message(response=self.response_for(exc))
            return [*self.failure_events(exc, tracker), SlotSet(PENDING_ACTION_SLOT, self.name())]
        except Exception as exc:
            logger.error("%s failed unexpectedly: %s", self.name(), type(exc).__name__,
                         exc_info=True)
            dispatcher.utter_message(response=UNEXPECTED_ERROR_RESPONSE)
            return [SlotSet(PENDING_ACTION_SLOT, self.name())]
        # `slots.get`, not `get_slot`: no INFO line per request when a bot lacks the slot.
        if tracker.slots.get(PENDING_ACTION_SLOT) == self.name():
            events = [*events, SlotSet(PENDING_ACTION_SLOT, None)]
        return events

    def response_for(self, exc: IntegrationError) -> str:
        """The response for an error: the most specific class wins, own mapping first."""
        for cls in type(exc).__mro__:
            for mapping in (self.error_responses, DEFAULT_ERROR_RESPONSES):
                if cls in mapping:
                    return mapping[cls]
        return UNEXPECTED_ERROR_RESPONSE

    async def file_once(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                        submission: Submission, payload: JsonDict,
                        identity: Mapping[str, Any]) -> JsonDict | None:
        """File `payload` as a `submission` at most once for this action in this
        conversation (`rasa_service_desk.actions.submissions`) and return its outcome.

        `identity` is what makes two requests the same submission (the customer's words,
        never the transcript). When the vendor is down or busy, the submission is saved in
        the outbox, the customer hears the submission's queued response, and None is
        returned: the outbox files it later and the conversation is told then."""
        key = submission_key(tracker.sender_id, self.name(), identity)
        kind = submission.kind
        reconcile = kind.reconcile
        started = _run_started.get()
        elapsed = asyncio.get_running_loop().time() - started if started else 0.0
        try:
            outcome = await submit_once(
                key, lambda: kind.send(payload), action_deadline() * SUBMISSION_PATIENCE,
                None if reconcile is None else lambda since: reconcile(payload, since),
                enqueuer(submission, tracker.sender_id, key, payload),
                budget=action_deadline() * SUBMISSION_BUDGET - elapsed,
                latest=(tracker.sender_id, self.name(), submission.confirm_slot),
                remember=None if kind.remember is None else partial(kind.remember, payload))
        except SubmissionQueued:
            dispatcher.utter_message(response=submission.queued_response)
            return None
        return outcome

    def failure_events(self, exc: IntegrationError, tracker: Tracker) -> EventList:
        """Extra events to return after a failure. None by default, so every slot is kept."""
        return []


def time_left(margin: float = 1.0) -> float | None:
    """Seconds left of the current action run's deadline, less `margin`; None outside an
    action run (the outbox's worker filing a queued submission has no customer waiting)."""
    started = _run_started.get()
    if not started:
        return None
    elapsed = asyncio.get_running_loop().time() - started
    return max(0.0, action_deadline() - elapsed - margin)


def _subclasses(cls: type[Any]) -> list[type[Any]]:
    found: list[type[Any]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def retryable_action_names() -> frozenset[str]:
    """The names of the `IntegrationAction`s loaded in this process and their declared
    `retry_targets`: the only actions "try again" may run (the ones that can leave a
    `pending_action` behind)."""
    names = set()
    for cls in _subclasses(IntegrationAction):
        if inspect.isabstract(cls):
            continue
        concrete: Any = cls  # not abstract (checked above)
        name = concrete().name()  # rasa-sdk builds every action class the same way
        if isinstance(name, str) and name:
            names.add(name)
        names.update(target for target in cls.retry_targets if isinstance(target, str))
    return frozenset(names)

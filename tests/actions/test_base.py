"""IntegrationAction: every failure becomes a friendly response and no slot is lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions import base
from rasa_service_desk.actions.base import IntegrationAction, retryable_action_names
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    IntegrationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)


class FailingAction(IntegrationAction):
    error: ClassVar[BaseException | None] = None
    error_responses: ClassVar[dict[type[IntegrationError], str]] = {
        RejectedInput: "utter_acme_rejected"
    }

    def name(self) -> str:
        return "action_acme_test"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        dispatcher.utter_message(response="utter_acme_done")
        return [{"event": "slot", "name": "acme_id", "value": "42"}]


def tracker(slots: dict[str, Any] | None = None) -> Tracker:
    return Tracker("conv-1", slots or {}, {}, [], False, None, {}, "action_listen")


async def run(error: BaseException | None, slots: dict[str, Any] | None = None
              ) -> tuple[list[str], list[dict[str, Any]]]:
    FailingAction.error = error
    dispatcher = CollectingDispatcher()
    events = await FailingAction().run(dispatcher, tracker(slots), {})
    return [m["response"] for m in dispatcher.messages], events


@pytest.mark.parametrize(
    ("error", "response"),
    [
        (VendorUnavailable("acme", "timed out"), "utter_vendor_unavailable"),
        (MalformedReply("acme", "not json"), "utter_vendor_unavailable"),
        (RateLimited("acme", "429"), "utter_vendor_busy"),
        (AuthenticationError("acme", "401"), "utter_integration_unavailable"),
        (RejectedInput("acme", "422"), "utter_acme_rejected"),
        (KeyError("boom"), "utter_something_went_wrong"),
    ],
)
async def test_failures_become_responses_and_keep_the_slots(error: BaseException,
                                                            response: str) -> None:
    uttered, events = await run(error, {"customer_email": "a@b.example"})
    assert uttered == [response]
    assert events == [{"event": "slot", "timestamp": None, "name": "pending_action",
                       "value": "action_acme_test"}]


async def test_success_clears_the_pending_retry() -> None:
    uttered, events = await run(None, {"pending_action": "action_acme_test"})
    assert uttered == ["utter_acme_done"]
    assert events[-1]["name"] == "pending_action" and events[-1]["value"] is None


async def test_success_without_pending_retry_returns_only_the_action_events() -> None:
    _, events = await run(None)
    assert events == [{"event": "slot", "name": "acme_id", "value": "42"}]


# -- the action deadline (ACTION_DEADLINE_SECONDS) -------------------------------------------


class SlowAction(FailingAction):
    delay: ClassVar[float] = 10.0

    def name(self) -> str:
        return "action_acme_slow"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        dispatcher.utter_message(response="utter_acme_working")
        await asyncio.sleep(self.delay)
        return []


async def test_past_the_deadline_the_customer_hears_the_vendor_is_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "action_deadline", lambda: 0.05)
    dispatcher = CollectingDispatcher()
    started = time.monotonic()
    events = await SlowAction().run(dispatcher, tracker({"customer_email": "a@b.example"}), {})
    assert time.monotonic() - started < 1
    assert [m["response"] for m in dispatcher.messages][-1] == "utter_vendor_unavailable"
    assert events == [{"event": "slot", "timestamp": None, "name": "pending_action",
                       "value": "action_acme_slow"}]


async def test_a_timeout_raised_by_the_action_itself_is_not_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "action_deadline", lambda: 30.0)
    uttered, events = await run(asyncio.TimeoutError())
    assert uttered == ["utter_something_went_wrong"]
    assert events[-1]["value"] == "action_acme_test"


def test_the_deadline_is_the_checked_global_setting() -> None:
    from rasa_service_desk.actions.runtime import action_deadline, global_settings

    assert action_deadline() == global_settings().action_deadline_seconds > 0


# -- what "try again" may run -------------------------------------------------------------


class ActionAcmeForm(IntegrationAction):
    """Records its form as the thing to retry, as the Loop survey question does."""

    retry_targets = ("acme_form",)

    def name(self) -> str:
        return "action_ask_acme"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        return []


def test_retryable_actions_are_the_integration_actions_and_their_declared_targets() -> None:
    names = retryable_action_names()
    assert {"action_acme_test", "action_acme_slow", "action_ask_acme", "acme_form"} <= names
    assert "action_retry_pending" not in names
    assert not any(name.startswith(("utter_", "validate_")) for name in names)

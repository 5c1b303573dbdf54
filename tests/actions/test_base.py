"""IntegrationAction: every failure becomes a friendly response and no slot is lost."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import IntegrationAction
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

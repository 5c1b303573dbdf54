"""`action_retry_pending`: the customer says "try again" after a vendor failure.

`IntegrationAction` records the failed action in the `pending_action` slot; this action runs
it again with every slot as the customer left it, so nothing has to be retyped. With no
failure recorded, it still re-runs a submission whose reply never reached Rasa (see
`rasa_service_desk.actions.submissions`): the customer gets the reference that was filed.

The slot comes back from the client side of the conversation (a tracker can be edited, a
channel can set slots), so it is trusted only when it names one of this process's
`IntegrationAction`s. Anything else (another action, a list, a number, a long text) is
refused: the customer hears there is nothing to retry and the slot is cleared.
"""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import (
    PENDING_ACTION_SLOT,
    DomainDict,
    EventList,
    retryable_action_names,
)
from rasa_service_desk.actions.submissions import unacknowledged_action

logger = logging.getLogger(__name__)

#: Longer than any action name; a longer value is refused before any lookup.
MAX_ACTION_NAME_LENGTH = 200


class ActionRetryPending(Action):
    def name(self) -> str:
        return "action_retry_pending"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        # `slots.get`, not `get_slot`: no INFO line per request when a bot lacks the slot.
        pending = tracker.slots.get(PENDING_ACTION_SLOT)
        if pending is None or pending == "":
            # Nothing failed; but a submission may have succeeded with its reply to Rasa
            # lost: run it again, and it answers from its record (actions.submissions).
            unacknowledged = await unacknowledged_action(tracker.sender_id, tracker.slots)
            if unacknowledged in retryable_action_names():
                dispatcher.utter_message(response="utter_retrying")
                return [FollowupAction(unacknowledged)]
            dispatcher.utter_message(response="utter_nothing_to_retry")
            return []
        if not (isinstance(pending, str) and len(pending) <= MAX_ACTION_NAME_LENGTH
                and pending in retryable_action_names()):
            # Neither the value nor its start is logged: it may be anything a client sent.
            logger.warning("%s: %s is not a retryable action (%s of length %s); cleared",
                           self.name(), PENDING_ACTION_SLOT, type(pending).__name__,
                           len(pending) if isinstance(pending, (str, list, dict)) else "-")
            dispatcher.utter_message(response="utter_nothing_to_retry")
            return [SlotSet(PENDING_ACTION_SLOT, None)]
        dispatcher.utter_message(response="utter_retrying")
        return [FollowupAction(pending)]

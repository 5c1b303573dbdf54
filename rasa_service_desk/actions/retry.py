"""`action_retry_pending`: the customer says "try again" after a vendor failure.

`IntegrationAction` records the failed action in the `pending_action` slot; this action runs
it again with every slot as the customer left it, so nothing has to be retyped.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import PENDING_ACTION_SLOT, DomainDict, EventList


class ActionRetryPending(Action):
    def name(self) -> str:
        return "action_retry_pending"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        pending = tracker.get_slot(PENDING_ACTION_SLOT)
        if not pending:
            dispatcher.utter_message(response="utter_nothing_to_retry")
            return []
        dispatcher.utter_message(response="utter_retrying")
        return [FollowupAction(pending)]

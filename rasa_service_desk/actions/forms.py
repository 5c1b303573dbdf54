"""Form validators whose free-text slots are filled from what the customer types.

The domain maps these slots with `custom`, not `from_text`: Rasa's `from_text` would also
take a message that the customer did not type, such as a Cention agent's answer arriving
through the callback connector in Rasa's intent syntax (`/cention_agent_answer{...}`), and
file it as a ticket description or a survey answer. Here a slot is filled only from the
customer's own latest message, and only when the form asked for that slot
(`validation.answer_to`); otherwise the form is rejected and the conversation's rules handle
the message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.validation import answer_to

DomainDict = dict[str, Any]


class TextSlotForm(FormValidationAction, ABC):
    """A form validator that fills `text_slots` from the customer's answers."""

    #: Slots of this form filled with the customer's answer as typed (then validated).
    text_slots: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def name(self) -> str:
        """The validator's action name, `validate_<form>`."""

    async def get_extraction_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = await super().get_extraction_events(
            dispatcher, tracker, domain)
        requested = tracker.get_slot("requested_slot")
        if requested in self.text_slots and not any(
            event.get("name") == requested for event in events
        ):
            extracted = answer_to(tracker, requested)
            if extracted:
                tracker.slots.update(extracted)
                events.append(SlotSet(requested, extracted[requested]))
        return events

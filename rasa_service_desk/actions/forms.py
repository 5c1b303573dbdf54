"""Form validators whose free-text slots are filled from what the customer types.

The domain maps these slots with `custom`, not `from_text`: Rasa's `from_text` would also
take a message that the customer did not type, such as a Cention agent's answer arriving
through the callback connector in Rasa's intent syntax (`/cention_agent_answer{...}`), and
file it as a ticket description or a survey answer. Here a slot is filled only from the
customer's own latest message, and only when the form asked for that slot
(`validation.answer_to`); otherwise the form is rejected and the conversation's rules handle
the message.

A value of another type than the domain declares for its slot (a list in a text slot, set by
some custom action or story) is never validated as an answer: it is answered None, so the
form asks again, with a warning naming the slot (`validation.fits_domain_type`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.validation import answer_to, fits_domain_type, wrong_type

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

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[dict[str, Any]]:
        """The SDK's validation, after candidates of the wrong type are made absent: the
        slot's `validate_<slot>` still runs (and asks again), and whatever it answers the
        slot is emptied. rasa-sdk would otherwise keep a candidate of a slot the form does
        not require now, or one without a `validate_<slot>` method, as it came."""
        misfits = [slot for slot, value in tracker.slots_to_validate().items()
                   if not fits_domain_type(domain, slot, value)]
        for slot in misfits:
            wrong_type(slot, tracker.slots_to_validate()[slot], "the slot's domain type")
            tracker.slots[slot] = None
        events: list[dict[str, Any]] = await super().get_validation_events(
            dispatcher, tracker, domain)
        if not misfits:
            return events
        kept = [event for event in events if event.get("name") not in misfits]
        return [*kept, *(SlotSet(slot, None) for slot in misfits)]

"""Which location a survey, a loop or an invite link is about.

By default everything goes to `LOOP_LOCATION`, as before. With
`LOOP_LET_CUSTOMER_CHOOSE_LOCATION=true`, the Loop forms (`loop_survey_form`,
`loop_feedback_form`, `loop_invite_form`) first ask for `loop_location`: one button per
location of the account (`GET /locations`, cached by the client), titled in the customer's
language. An account with a single location skips the question (and uses `LOOP_LOCATION`).

The customer may press a button or type: the location's title (or a unique part of it, e.g.
"costa rica"), its shortcode or its id. The slot keeps the location's id for the rest of the
conversation, so a second survey or request does not ask again; the actions check the slot
against the account's locations before using it (`chosen_location`).
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import (
    DEFAULT_ERROR_RESPONSES,
    UNEXPECTED_ERROR_RESPONSE,
    DomainDict,
    EventList,
    IntegrationAction,
)
from rasa_service_desk.actions.loop.common import (
    FORMS,
    choose_location_enabled,
    end_form_after_failure,
    loop_client,
    settings,
)
from rasa_service_desk.actions.validation import text_slot
from rasa_service_desk.clients.errors import IntegrationError
from rasa_service_desk.clients.loop.models import Location, localized

LOCATION_SLOT = "loop_location"
LANGUAGE_SLOT = "language"
#: The shortest typed text matched against a part of a location's title.
MIN_PARTIAL = 3
_SPACES = re.compile(r"\s+")


def _norm(text: Any) -> str:
    """Text without case or extra spaces; "" for anything but text (it names nothing)."""
    return _SPACES.sub(" ", text).strip().casefold() if isinstance(text, str) else ""


def location_title(location: Location, language: str | None) -> str:
    """The location's title in `language` (then `LOOP_FALLBACK_LANGUAGE`, then any), or its
    shortcode or id when it has no title."""
    return (localized(location.title, language, settings().fallback_language)
            or location.shortcode or location.id)


def match_location(text: Any, locations: list[Location]) -> Location | None:
    """The location the customer means: its id, shortcode or title (in any language),
    ignoring case and spacing; else the one location whose title contains the text."""
    wanted = _norm(text)
    if not wanted:
        return None
    for location in locations:
        names = [location.id, location.shortcode or "", *location.title.values()]
        if wanted in {_norm(name) for name in names if name}:
            return location
    if len(wanted) < MIN_PARTIAL:
        return None
    partial = [loc for loc in locations
               if any(wanted in _norm(title) for title in loc.title.values())]
    return partial[0] if len(partial) == 1 else None


async def chosen_location(tracker: Tracker) -> Location | None:
    """The location the customer chose, when choosing is on and the slot names one of the
    account's locations; None means `LOOP_LOCATION`."""
    if not choose_location_enabled():
        return None
    return await location_by_id(text_slot(tracker, LOCATION_SLOT))


def chosen_location_id(tracker: Tracker) -> str | None:
    """The location id the customer chose (checked when it is used: `location_by_id`), or
    None for `LOOP_LOCATION`; read without calling Loop, so a submission can be queued
    while Loop is down."""
    if not choose_location_enabled():
        return None
    return text_slot(tracker, LOCATION_SLOT) or None


async def location_by_id(value: str | None) -> Location | None:
    """One of the account's locations by id, or None (none named, or not the account's:
    then `LOOP_LOCATION`)."""
    if not value:
        return None
    return next((loc for loc in await loop_client().locations() if loc.id == value), None)


def error_response(exc: IntegrationError) -> str:
    for cls in type(exc).__mro__:
        if cls in DEFAULT_ERROR_RESPONSES:
            return DEFAULT_ERROR_RESPONSES[cls]
    return UNEXPECTED_ERROR_RESPONSE


class LocationChoice:
    """Mixed into the Loop form validators: `loop_location` is asked only when needed, and
    what the customer answers is checked against the account's locations."""

    async def needs_location(self, tracker: Tracker) -> bool:
        """Whether the form must ask for the location now."""
        if not choose_location_enabled():
            return False
        if LOCATION_SLOT in tracker.slots_to_validate():
            # Answered in this very turn: it must stay in the list to be validated (and
            # kept), even when it already reads like a location id.
            return True
        try:
            locations = await loop_client().locations()
        except IntegrationError:
            return True  # `action_ask_loop_location` reports the failure and ends the form
        value = text_slot(tracker, LOCATION_SLOT)
        if any(loc.id == value for loc in locations):
            return False
        return len(locations) > 1

    async def location_slots(self, domain_slots: list[str], tracker: Tracker) -> list[str]:
        """`domain_slots` without `loop_location` unless the form must ask for it."""
        if await self.needs_location(tracker):
            return domain_slots
        return [slot for slot in domain_slots if slot != LOCATION_SLOT]

    async def validate_loop_location(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        try:
            locations = await loop_client().locations()
        except IntegrationError as exc:
            dispatcher.utter_message(response=error_response(exc))
            return {LOCATION_SLOT: None}
        found = match_location(slot_value, locations)
        if found is None:
            dispatcher.utter_message(response="utter_loop_invalid_location")
            return {LOCATION_SLOT: None}
        return {LOCATION_SLOT: found.id}


class ActionAskLoopLocation(IntegrationAction):
    """Ask which location it is about: `utter_loop_ask_location` with one button per
    location, whose payload is the title the customer reads (the id when two titles are the
    same), so a pressed button reads like a typed answer.

    If Loop cannot be reached the form ends with the shared error response and "try again"
    restarts it.
    """

    retry_targets = FORMS

    def name(self) -> str:
        return "action_ask_loop_location"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        events = await super().run(dispatcher, tracker, domain)
        return end_form_after_failure(events, self.name(), tracker)

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        locations = await loop_client().locations()
        language = text_slot(tracker, LANGUAGE_SLOT)
        titles = [location_title(loc, language) for loc in locations]
        buttons = [
            {"title": title,
             "payload": title if titles.count(title) == 1 and not title.startswith("/")
             else loc.id}
            for loc, title in zip(locations, titles, strict=True)
        ]
        dispatcher.utter_message(response="utter_loop_ask_location", buttons=buttons)
        return []

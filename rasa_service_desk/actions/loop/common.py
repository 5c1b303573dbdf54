"""What the Loop actions share: settings, the client, the options, the customer's identity.

Options added with the follow-up features are read with `getattr(settings, name, default)`,
so the actions work (with the defaults) on a `LoopSettings` that does not declare them yet:

- `let_customer_choose_location` (`LOOP_LET_CUSTOMER_CHOOSE_LOCATION`, default off): the
  forms ask which location the survey, the loop or the invite link is about;
- `verified_email_metadata_key` (`LOOP_VERIFIED_EMAIL_METADATA_KEY`, default empty = off):
  where the front end puts the e-mail address it has authenticated, in the metadata of each
  customer message (a dotted path such as `user.email` reaches into nested objects).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, SlotSet

from rasa_service_desk.actions.base import PENDING_ACTION_SLOT, EventList
from rasa_service_desk.actions.runtime import client, enable, integration
from rasa_service_desk.actions.validation import clean_email
from rasa_service_desk.clients.loop.client import LoopClient
from rasa_service_desk.clients.loop.settings import LoopSettings

#: Importing this module enables Loop: its settings are read and checked now.
enable("loop")

REQUESTED_SLOT = "requested_slot"
#: The forms of the Loop integration: an "ask" action that fails ends the active one and
#: records it in `pending_action`, so "try again" restarts it.
FORMS = ("loop_survey_form", "loop_feedback_form", "loop_invite_form")


def settings() -> LoopSettings:
    return integration("loop").settings  # type: ignore[no-any-return,unused-ignore]


def loop_client() -> LoopClient:
    return client("loop", LoopClient)


def choose_location_enabled() -> bool:
    """`LOOP_LET_CUSTOMER_CHOOSE_LOCATION`: whether the customer picks the location."""
    return bool(getattr(settings(), "let_customer_choose_location", False))


def verified_email_key() -> str:
    """`LOOP_VERIFIED_EMAIL_METADATA_KEY`: empty when no front end vouches for an address."""
    value = getattr(settings(), "verified_email_metadata_key", "")
    return value.strip() if isinstance(value, str) else ""


def latest_user_metadata(tracker: Tracker) -> dict[str, Any]:
    """The metadata the channel attached to the customer's latest message (Rasa keeps it on
    the `user` event, not in `latest_message`)."""
    for event in reversed(tracker.events or []):
        if isinstance(event, dict) and event.get("event") == "user":
            metadata = event.get("metadata")
            return metadata if isinstance(metadata, dict) else {}
    return {}


def verified_email(tracker: Tracker) -> str | None:
    """The e-mail address the front end authenticated, from the latest message's metadata
    under `LOOP_VERIFIED_EMAIL_METADATA_KEY`; None when the option is off or the message
    carries none. Never the `customer_email` slot: anyone can type any address."""
    key = verified_email_key()
    if not key:
        return None
    value: Any = latest_user_metadata(tracker)
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return clean_email(value)


def end_form_after_failure(events: EventList, action_name: str, tracker: Tracker) -> EventList:
    """After a failed "ask" action of a Loop form: end the active form (it would otherwise
    wait for an answer to a question never asked) and record the form in `pending_action`,
    so "try again" restarts it where it was. Successful runs pass through, clearing a
    `pending_action` that named the form."""
    form = (tracker.active_loop or {}).get("name")
    failed = SlotSet(PENDING_ACTION_SLOT, action_name)
    if failed in events:
        kept = [event for event in events if event != failed]
        if form in FORMS:
            return [*kept, SlotSet(REQUESTED_SLOT, None), ActiveLoop(None),
                    SlotSet(PENDING_ACTION_SLOT, form)]
        return events
    if form in FORMS and tracker.slots.get(PENDING_ACTION_SLOT) == form:
        return [*events, SlotSet(PENDING_ACTION_SLOT, None)]
    return events

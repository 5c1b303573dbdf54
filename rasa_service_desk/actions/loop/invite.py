"""Loop invite link: "send me the survey link" gives the customer Loop's own web page for
the location (`POST /invite/url`), to answer there instead of in the chat.

`loop_invite_form` asks only for the location, and only when the customer chooses it (see
`location`); otherwise it completes at once. `action_loop_invite_link` then asks Loop for
the URL of that location (or `LOOP_LOCATION`) and utters `utter_loop_invite_link` with
`{url}`.

Loop personalises the URL for a guest when given a name, email or sms, reusing the guest
profile with that address (and overwriting its custom fields). A typed address is not proof
of identity, so the bot personalises only for a verified email (the front end's, under
`LOOP_VERIFIED_EMAIL_METADATA_KEY`); everyone else gets the generic URL of the location, for
which Loop creates no guest. The customer's name is never sent (it would rename the guest).
"""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction
from rasa_service_desk.actions.forms import TextSlotForm
from rasa_service_desk.actions.loop.common import loop_client, verified_email
from rasa_service_desk.actions.loop.location import (
    LOCATION_SLOT,
    LocationChoice,
    chosen_location,
)
from rasa_service_desk.clients.loop.client import LoopUser

FORM = "loop_invite_form"


class ActionLoopInviteLink(IntegrationAction):
    """Give the customer the invite URL of the location."""

    def name(self) -> str:
        return "action_loop_invite_link"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        email = verified_email(tracker)
        link = await loop_client().invite_url(
            location=await chosen_location(tracker),
            user=LoopUser(email=email) if email else None,
        )
        dispatcher.utter_message(response="utter_loop_invite_link", url=link.url)
        return []


class ValidateLoopInviteForm(LocationChoice, TextSlotForm):
    """The location, when the customer chooses it; nothing else to ask."""

    text_slots = (LOCATION_SLOT,)

    def name(self) -> str:
        return "validate_loop_invite_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        return await self.location_slots(domain_slots, tracker)

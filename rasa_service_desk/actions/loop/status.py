"""Loop status: "What's the status of my complaint?" answered from Loop, most recent first.

A chat customer is not authenticated, so an address they merely type never reveals anyone's
loops. `action_loop_status` shows:

- the loops this conversation created (`loop_created_loops`, recorded by
  `action_loop_create_loop` with the email or mobile number each was created with). Loop
  documents no lookup of a loop by id, only `GET /loops?customer=<user id>`, so the bot
  finds the guest account by that email or number (`GET /users/?email=|sms=`), lists its
  loops, and keeps only the recorded ones: anyone else's loops under the same address stay
  hidden. Loops created without an email or number cannot be looked up;
- every loop of the guest accounts of a verified email address: one the front end
  authenticated and sent in the message metadata under `LOOP_VERIFIED_EMAIL_METADATA_KEY`
  (off by default).

Each loop is one response, by state: `utter_loop_status_open`, `utter_loop_status_closed`,
or `utter_loop_status_other` with Loop's own word, with the loop's date (in the location's
time zone when Loop gives it), the start of its description and its location.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone, tzinfo

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions.base import DomainDict, EventList, IntegrationAction
from rasa_service_desk.actions.loop.common import loop_client, verified_email
from rasa_service_desk.actions.loop.feedback import recorded_loops
from rasa_service_desk.actions.validation import clean_line
from rasa_service_desk.clients.loop.client import recent_first
from rasa_service_desk.clients.loop.models import LoopSummary

logger = logging.getLogger(__name__)

#: How many loops one answer lists (the most recent ones).
MAX_SHOWN = 5
#: Longest part of a loop's description quoted back to the customer.
MAX_QUOTED = 80
#: Loop's states in plain words. The documentation shows only `open`; the others are the
#: words a ticketing system commonly uses, and anything else is shown as Loop says it.
OPEN_STATES = frozenset({"open", "new", "opened", "reopened", "pending", "in progress",
                         "in_progress", "assigned"})
CLOSED_STATES = frozenset({"closed", "resolved", "done", "completed", "archived"})
#: Shown where Loop gives no date or location.
UNKNOWN = "-"


def state_response(state: str | None) -> str:
    word = (state or "").strip().casefold()
    if word in OPEN_STATES:
        return "utter_loop_status_open"
    if word in CLOSED_STATES:
        return "utter_loop_status_closed"
    return "utter_loop_status_other"


def _zone(name: str | None) -> tzinfo:
    if name:
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name)
        except Exception:  # unknown zone, or no time zone database on this host
            logger.debug("loop: unknown time zone %r, dates in UTC", name)
    return timezone.utc


def loop_date(loop: LoopSummary) -> str:
    """The day the loop was created (`YYYY-MM-DD`), in the location's time zone."""
    millis = loop.created_on if loop.created_on is not None else loop.updated_on
    if millis is None:
        return UNKNOWN
    moment = datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
    return moment.astimezone(_zone(loop.location_timezone)).strftime("%Y-%m-%d")


def quoted(text: str) -> str:
    line = clean_line(text, 100_000) or ""
    return line if len(line) <= MAX_QUOTED else line[: MAX_QUOTED - 1].rstrip() + "…"


class ActionLoopStatus(IntegrationAction):
    """Tell the customer where their loops stand (see the module docstring)."""

    def name(self) -> str:
        return "action_loop_status"

    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> EventList:
        recorded = recorded_loops(tracker)
        email = verified_email(tracker)
        # (query, value) -> whether every loop of the accounts found may be shown
        lookups: dict[tuple[str, str], bool] = {}
        if email:
            lookups[("email", email)] = True
        for record in recorded:
            for kind in ("email", "sms"):
                if record.get(kind):
                    lookups.setdefault((kind, record[kind]), False)
                    break
        if not lookups:
            dispatcher.utter_message(response="utter_loop_status_untraceable" if recorded
                                     else "utter_loop_status_none")
            return []
        loops = await self._find(lookups, {record["id"] for record in recorded})
        shown = loops[:MAX_SHOWN]
        found_ids = {loop.id for loop in loops}
        untraced = [record for record in recorded if record["id"] not in found_ids]
        if not shown:
            dispatcher.utter_message(response="utter_loop_status_untraceable" if untraced
                                     else "utter_loop_status_none")
            return []
        dispatcher.utter_message(response="utter_loop_status_intro", count=len(loops))
        for loop in shown:
            dispatcher.utter_message(
                response=state_response(loop.state),
                description=quoted(loop.description or loop.summary or ""),
                date=loop_date(loop),
                location=quoted(loop.location_title) or UNKNOWN,
                state=(loop.state or UNKNOWN).replace("_", " "),
            )
        if len(loops) > MAX_SHOWN:
            dispatcher.utter_message(response="utter_loop_status_more",
                                     count=len(loops) - MAX_SHOWN)
        if untraced:
            dispatcher.utter_message(response="utter_loop_status_some_untraceable")
        return []

    @staticmethod
    async def _find(lookups: dict[tuple[str, str], bool], recorded_ids: set[str]
                    ) -> list[LoopSummary]:
        """The loops the customer may see, most recent first."""
        client = loop_client()
        keys = list(lookups)
        found = await asyncio.gather(*(client.users(**{kind: value}) for kind, value in keys))
        everything: dict[str, bool] = {}
        for (key, accounts) in zip(keys, found, strict=True):
            for account in accounts:
                everything[account.id] = everything.get(account.id, False) or lookups[key]
        owners = list(everything)
        listings = await asyncio.gather(*(client.loops_for_customer(uid) for uid in owners))
        loops: dict[str, LoopSummary] = {}
        for owner, listing in zip(owners, listings, strict=True):
            for loop in listing:
                if everything[owner] or loop.id in recorded_ids:
                    loops.setdefault(loop.id, loop)
        return recent_first(list(loops.values()))

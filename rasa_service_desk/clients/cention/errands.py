"""Errand follow-ups: what Cention's errand report says, closing an errand, contact cards.

Plain data and parsing, free of Rasa, used by `CentionClient` and the Cention actions:

- `ErrandReport`: the errand's state in the customer's terms (`waiting`, `in_progress`,
  `answered`, `closed`) read from `c3_errand_reports/<id>`, never from its HTML `status`
  icon; the time of the last action, and the agent's name (shown only when allowed).
- `ErrandAnswer`: the `answer` object of `c3_end_errands` (close an errand) and of
  `c3_new_errands` (create an errand that is already closed): the Cention user who closes
  it and the answer text.
- `ContactCard`: the `contacts` of `c3_contact_cards`.
- `FollowUpOptions`: the operator's follow-up settings, read with defaults so that the
  follow-ups work whatever `CentionSettings` declares.
- `WithdrawalLog`: which errands a customer withdrew, in the shared state store, so a later
  "any news?" says "you withdrew it" rather than Cention's "answered".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rasa_service_desk.clients.cention.models import Resource
from rasa_service_desk.clients.errors import MalformedReply
from rasa_service_desk.state import StateStore

logger = logging.getLogger(__name__)

REPORT_TYPE = "c3_errand_reports"
#: The report attributes the bot reads (sparse fieldset): the rest (`extended` with the
#: answer text and tags, `sla`) is not needed and not fetched.
REPORT_FIELDS = ("actions", "basic", "changed")
#: The simulator's user the sandbox closes errands as, until the settings provide one.
SANDBOX_CLOSING_USER_ID = "1"
#: Conversations resolved by the bot are recorded with a sender under this reserved domain
#: (RFC 2606: no mail can ever be delivered to it), never the customer's address.
RECORD_SENDER_DOMAIN = "chat.invalid"
WITHDRAWALS = "cention-withdrawn"

ErrandState = Literal["waiting", "in_progress", "answered", "closed"]


@dataclass(frozen=True)
class ClosingUser:
    """The Cention user the bot closes errands as (`answer.user_type` / `answer.user_id`)."""

    user_id: str
    user_type: str = "cention"


@dataclass(frozen=True)
class ErrandAnswer:
    """The `answer` object: who closes the errand, and the answer's subject and text."""

    user: ClosingUser
    subject: str = ""
    body: str = ""
    html_body: str = ""

    def as_json(self) -> dict[str, str]:
        return {"user_type": self.user.user_type, "user_id": self.user.user_id,
                "subject": self.subject, "body": self.body, "html_body": self.html_body}


@dataclass(frozen=True)
class ContactCard:
    """A customer's contacts, as `c3_contact_cards` takes them. Empty fields are left out,
    so an update never sends an empty list."""

    name: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    def contacts(self) -> dict[str, Any]:
        contacts: dict[str, Any] = {}
        if self.emails:
            contacts["email"] = list(dict.fromkeys(self.emails))
        if self.phones:
            contacts["voice"] = list(dict.fromkeys(self.phones))
        if self.name:
            contacts["name"] = self.name
        return contacts


@dataclass(frozen=True)
class ErrandReport:
    """One errand as the customer may hear about it."""

    errand_id: str
    state: ErrandState
    #: When the last action on the errand happened (None: no action recorded yet).
    last_action_at: datetime | None
    #: The agent handling it, as Cention names them ("" when none): not for customers
    #: unless the operator allows it.
    agent: str
    subject: str
    #: Cention's dirty flag before this read cleared it (None: the report did not say).
    changed: bool | None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _line(value: Any, limit: int = 200) -> str:
    """A short single line of plain text (agent names and subjects are not HTML in the
    documented sample; control characters are removed all the same)."""
    if not isinstance(value, str):
        return ""
    text = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(text.split())[:limit]


def _last_action(actions: Any) -> datetime | None:
    stamps = [a.get("timeStamp") for a in actions if isinstance(a, Mapping)] if isinstance(
        actions, list) else []
    valid = [s for s in stamps if isinstance(s, (int, float)) and not isinstance(s, bool)
             and s > 0]
    return datetime.fromtimestamp(max(valid), tz=timezone.utc) if valid else None


def parse_report(resource: Resource, errand_id: str) -> ErrandReport:
    """The customer's view of a `c3_errand_reports` resource.

    - `answered` when `basic.data.answered` is true (an answered errand is closed too);
    - `closed` when `basic.data.closed` (or `deleted`) is true without an answer;
    - `in_progress` when an agent has acquired it (`basic.acquired`);
    - `waiting` otherwise.
    The `status` attribute is an HTML icon for Cention's own pages and is never read.
    """
    attributes = resource.attributes
    basic = attributes.get("basic")
    if not isinstance(basic, Mapping) or not isinstance(basic.get("data"), Mapping):
        raise MalformedReply("cention", "errand report without basic.data")
    data = basic["data"]
    if data.get("answered") is True:
        state: ErrandState = "answered"
    elif data.get("closed") is True or data.get("deleted") is True:
        state = "closed"
    elif basic.get("acquired") is True:
        state = "in_progress"
    else:
        state = "waiting"
    changed = attributes.get("changed")
    return ErrandReport(
        errand_id=errand_id,
        state=state,
        last_action_at=_last_action(attributes.get("actions")),
        agent=_line(data.get("agent")) if state != "waiting" else "",
        subject=_line(data.get("subject"), 150),
        changed=changed if isinstance(changed, bool) else None,
    )


# -- the operator's follow-up settings ---------------------------------------------------


@dataclass(frozen=True)
class FollowUpOptions:
    show_agent_names: bool = False
    closing_user: ClosingUser | None = None
    contact_card: bool = False
    cuid_slot: str = ""
    record_resolved: bool = False
    timezone: tzinfo = timezone.utc


def _setting(settings: Any, name: str, default: Any) -> Any:
    value = getattr(settings, name, default)
    return default if value is None else value


def _time_zone(name: str) -> tzinfo:
    if not name or name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("CENTION_TIMEZONE: unknown time zone %r, using UTC", name[:64])
        return timezone.utc


def follow_up_options(settings: Any, sandboxed: bool = False) -> FollowUpOptions:
    """The follow-up settings of `CentionSettings`, each with its default when the settings
    do not declare it. The sandbox closes errands as the simulator's demo user unless a
    closing user is configured."""
    user_id = str(_setting(settings, "closing_user_id", "")).strip()
    if not user_id and sandboxed:
        user_id = SANDBOX_CLOSING_USER_ID
    user_type = str(_setting(settings, "closing_user_type", "cention")).strip() or "cention"
    return FollowUpOptions(
        show_agent_names=bool(_setting(settings, "show_agent_names", False)),
        closing_user=ClosingUser(user_id, user_type) if user_id else None,
        contact_card=bool(_setting(settings, "contact_card", False)),
        cuid_slot=str(_setting(settings, "contact_card_cuid_slot", "")).strip(),
        record_resolved=bool(_setting(settings, "record_resolved", False)),
        timezone=_time_zone(str(_setting(settings, "timezone", "UTC")).strip()),
    )


def format_time(moment: datetime, zone: tzinfo) -> str:
    """`2015-07-17 11:08 CEST`: unambiguous in any language, in the operator's time zone."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or 'UTC'}"


# -- withdrawals ----------------------------------------------------------------------------


class WithdrawalLog:
    """Errand id -> when its customer withdrew it, in the shared state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def record(self, errand_id: str, sender_id: str) -> None:
        await self.store.put(WITHDRAWALS, str(errand_id), {
            "sender_id": sender_id, "at": time.time()})

    async def withdrawn_at(self, errand_id: str) -> datetime | None:
        value = await self.store.get(WITHDRAWALS, str(errand_id))
        stamp = value.get("at") if value else None
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
            return None
        return datetime.fromtimestamp(stamp, tz=timezone.utc)

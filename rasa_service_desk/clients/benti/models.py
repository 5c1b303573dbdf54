"""Benti replies (validated with pydantic) and the client's own input/output types.

Reply models use only the pydantic API shared by versions 1.10 and 2 (see `clients.compat`).
Identifiers come back as strings or numbers depending on the endpoint. Both are accepted and
kept as sent: a user id goes back to Benti as a ticket's `creator` in the type Benti gave it
(pydantic 1.10, Rasa 3.6's, turned `str | int` numbers into strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field, StrictInt, StrictStr

#: Strict, so that neither pydantic version converts one type into the other.
Identifier = StrictInt | StrictStr


class AuthReply(BaseModel):
    """`POST /v1/auth` and `POST /v1/refreshToken` (the latter without `apis`)."""

    access_token: str = Field(alias="accessToken", min_length=1)
    expiration: float
    expires_in: float | None = None
    apis: dict[str, str] | None = None


class ApisReply(BaseModel):
    """`GET /v1/apis`: product name -> base URL (without the version)."""

    apis: dict[str, str]


class UserRef(BaseModel):
    id: Identifier


class UserList(BaseModel):
    """`GET /v1/users?address=...`."""

    data: list[UserRef] = Field(default_factory=list)


class CreatedObject(BaseModel):
    """`POST /v1/users` and `POST /v1/media`: the new object's UUID."""

    uuid: Identifier | None = None
    id: Identifier | None = None

    def identifier(self) -> str | None:
        value = self.uuid if self.uuid not in (None, "") else self.id
        return None if value in (None, "") else str(value)


class TicketReply(BaseModel):
    """`POST /v1/tickets`: Inbenta's own client reads `full_uuid`; `id` is the short number."""

    full_uuid: str | None = None
    uuid: str | None = None
    id: Identifier | None = None


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name as the agent will see it, and its bytes."""

    name: str
    content: bytes


@dataclass(frozen=True)
class NewTicket:
    """What the bot knows when it opens a ticket."""

    title: str
    message: str
    customer_name: str
    customer_email: str
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(frozen=True)
class Ticket:
    """A created ticket: `id` for API calls, `reference` to quote to the customer."""

    id: str
    reference: str
    attachment_count: int = 0

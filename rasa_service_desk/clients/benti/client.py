"""Async client of the Benti (Inbenta ticketing) API.

`create_ticket()` does what an agent needs in one call: it finds (or registers) the customer
as a Benti user, uploads the attachments, and opens the ticket referencing both. The user
lookup and the uploads do not depend on each other, so they run concurrently; when one of
them fails the others are cancelled (the ticket has failed, nothing should keep calling
Benti after the customer was answered).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from rasa_service_desk.clients.benti.auth import VENDOR, TokenKeeper
from rasa_service_desk.clients.benti.models import (
    Attachment,
    CreatedObject,
    Identifier,
    NewTicket,
    Ticket,
    TicketReply,
    UserList,
)
from rasa_service_desk.clients.benti.settings import BentiSettings
from rasa_service_desk.clients.compat import parse_model
from rasa_service_desk.clients.errors import AuthenticationError, MalformedReply, RejectedInput
from rasa_service_desk.clients.http import HttpClient, HttpResponse, RetryPolicy

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def gather_or_cancel(*steps: Awaitable[T]) -> list[T]:
    """`asyncio.gather`, but the first failure cancels the other steps (and waits for them to
    stop) before it is raised, like a `TaskGroup` on Python 3.10."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def error_message(body: Any) -> str:
    """Benti's explanation in an error body.

    The API answers `{"error": {"code", "message"}}`; its gateway answers `{"Message": ...}`.
    """
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or "")
    if isinstance(error, str):
        return error
    for key in ("Message", "message"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return ""


class BentiClient:
    """One per process (see `actions.runtime.client`): it owns the token and its renewals."""

    def __init__(self, settings: BentiSettings, *, http: HttpClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._http = http or HttpClient(
            VENDOR,
            timeout=settings.timeout_seconds,
            retry=RetryPolicy(attempts=settings.retry_attempts),
            error_message=error_message,
        )
        self._tokens = TokenKeeper(settings, self._http, clock)

    # -- tickets -----------------------------------------------------------------
    async def create_ticket(self, ticket: NewTicket) -> Ticket:
        """Open a ticket for the customer with its attachments; return its id and reference."""
        for attachment in ticket.attachments:
            self.check_attachment(attachment)
        creator, *media = await gather_or_cancel(
            self.find_or_create_user(ticket.customer_name, ticket.customer_email),
            *(self.upload(attachment) for attachment in ticket.attachments),
        )
        body: dict[str, Any] = {
            "title": ticket.title,
            "message": ticket.message,
            "creator": creator,
            "attachments": media,
        }
        if self.settings.queue is not None:
            body["queue"] = self.settings.queue
        if self.settings.source is not None:
            body["source"] = self.settings.source
        reply = parse_model(TicketReply, (await self._call("POST", "/tickets", body,
                                                         operation="create_ticket")).json(),
                            VENDOR)
        ticket_id = reply.full_uuid or reply.uuid or (
            str(reply.id) if reply.id not in (None, "") else None)
        if not ticket_id:
            raise MalformedReply(VENDOR, "ticket reply carries no id")
        reference = str(reply.id) if reply.id not in (None, "") else ticket_id
        logger.info("benti: ticket %s created with %d attachment(s)", reference, len(media))
        return Ticket(id=ticket_id, reference=reference, attachment_count=len(media))

    # -- users -------------------------------------------------------------------
    async def find_user(self, address: str) -> Identifier | None:
        """The id of the Benti user with this address, if there is one."""
        reply = await self._call("GET", "/users", params={"address": address},
                                 operation="find_user")
        users = parse_model(UserList, reply.json(), VENDOR).data
        return users[0].id if users else None

    async def create_user(self, name: str, address: str) -> Identifier:
        reply = parse_model(
            CreatedObject,
            (await self._call("POST", "/users", {"name": name, "address": address},
                              operation="create_user")).json(),
            VENDOR,
        )
        user_id = reply.uuid if reply.uuid not in (None, "") else reply.id
        if user_id in (None, ""):
            raise MalformedReply(VENDOR, "user reply carries no id")
        assert user_id is not None
        return user_id

    async def find_or_create_user(self, name: str, address: str) -> Identifier:
        """Reuse the customer's Benti user so agents see all their tickets together.

        Two first tickets of one customer (two tabs, two action servers) may both find no
        user and both create it; Benti refuses the second creation. A refused creation is
        therefore followed by a second lookup, and only when that finds nothing either is
        the refusal the answer.
        """
        existing = await self.find_user(address)
        if existing is not None:
            return existing
        try:
            return await self.create_user(name, address)
        except RejectedInput:
            existing = await self.find_user(address)
            if existing is None:
                raise
            logger.info("benti: user created meanwhile by another request, reusing it")
            return existing

    # -- attachments -------------------------------------------------------------
    def check_attachment(self, attachment: Attachment) -> None:
        """Refuse a file Benti would refuse, before sending anything."""
        limit = self.settings.max_attachment_bytes
        if len(attachment.content) > limit:
            raise RejectedInput(
                VENDOR,
                f"attachment of {len(attachment.content)} bytes exceeds the limit of "
                f"{limit} bytes (Benti takes files up to 7 MiB)",
            )

    async def upload(self, attachment: Attachment) -> str:
        """Upload one file through `/v1/media` and return its id.

        Marked idempotent: a repeated upload only leaves an unused copy, which Benti
        deletes after an hour.
        """
        self.check_attachment(attachment)
        body = {"name": attachment.name,
                "content": base64.b64encode(attachment.content).decode("ascii")}
        reply = parse_model(
            CreatedObject,
            (await self._call("POST", "/media", body, idempotent=True,
                              operation="upload_media")).json(),
            VENDOR,
        )
        media_id = reply.identifier()
        if media_id is None:
            raise MalformedReply(VENDOR, "media reply carries no id")
        return media_id

    # -- transport ---------------------------------------------------------------
    async def _call(self, method: str, path: str, json_body: Any = None, *,
                    params: Mapping[str, str] | None = None,
                    idempotent: bool | None = None, operation: str) -> HttpResponse:
        """A ticketing call with the current token; on 401/403 the token is dropped, a new
        one obtained by authenticating again, and the call repeated once.

        Benti's gateway words an expired or revoked token like any other refusal (403 "User
        is not authorized to access this resource with an explicit deny", or 401
        "Unauthorized"), so every 401/403 gets one renewal. The gateway refused the request
        before it reached the API, so repeating even a ticket creation cannot duplicate it.
        """
        session = await self._tokens.session()
        try:
            return await self._http.request(
                method, session.ticketing_url + path, json_body=json_body, params=params,
                headers=self._tokens.headers(session), idempotent=idempotent,
                operation=operation)
        except AuthenticationError as exc:
            logger.info("benti: token refused (HTTP %s), authenticating again and retrying once",
                        exc.status)
            self._tokens.invalidate(session)
        session = await self._tokens.session()
        try:
            return await self._http.request(
                method, session.ticketing_url + path, json_body=json_body, params=params,
                headers=self._tokens.headers(session), idempotent=idempotent,
                operation=operation)
        except AuthenticationError as exc:
            raise AuthenticationError(
                VENDOR, f"ticketing API refused a new token (HTTP {exc.status}); check that "
                "BENTI_API_KEY has access to the ticketing API",
                status=exc.status, vendor_message=exc.vendor_message) from None

"""Async client of the Benti (Inbenta ticketing) API.

`create_ticket()` does what an agent needs in one call: it finds (or registers) the customer
as a Benti user, uploads the attachments, and opens the ticket referencing both. The user
lookup and the uploads do not depend on each other, so they run concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

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
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import HttpClient, HttpResponse, RetryPolicy, shared_session

logger = logging.getLogger(__name__)

#: What a 401/403 says when a fresh token would fix it (as opposed to a wrong API key).
_TOKEN_REFUSED = re.compile(r"expired|token", re.IGNORECASE)
_DOWNLOAD_CHUNK = 64 * 1024


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


def token_refused(exc: AuthenticationError) -> bool:
    """Did Benti refuse the token itself (expired/invalid), so re-authenticating helps?"""
    return bool(_TOKEN_REFUSED.search(exc.vendor_message))


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
        creator, *media = await asyncio.gather(
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
        reply = parse_model(TicketReply, (await self._call("POST", "/tickets", body)).json(),
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
        reply = await self._call("GET", "/users", params={"address": address})
        users = parse_model(UserList, reply.json(), VENDOR).data
        return users[0].id if users else None

    async def create_user(self, name: str, address: str) -> Identifier:
        reply = parse_model(
            CreatedObject,
            (await self._call("POST", "/users", {"name": name, "address": address})).json(),
            VENDOR,
        )
        user_id = reply.uuid if reply.uuid not in (None, "") else reply.id
        if user_id in (None, ""):
            raise MalformedReply(VENDOR, "user reply carries no id")
        assert user_id is not None
        return user_id

    async def find_or_create_user(self, name: str, address: str) -> Identifier:
        """Reuse the customer's Benti user so agents see all their tickets together."""
        existing = await self.find_user(address)
        return existing if existing is not None else await self.create_user(name, address)

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
            CreatedObject, (await self._call("POST", "/media", body, idempotent=True)).json(),
            VENDOR,
        )
        media_id = reply.identifier()
        if media_id is None:
            raise MalformedReply(VENDOR, "media reply carries no id")
        return media_id

    async def fetch_file(self, url: str, max_bytes: int | None = None) -> bytes:
        """Download a file the customer shared, refusing it once it exceeds `max_bytes`.

        The body is read in chunks, so a huge file is abandoned early rather than held in
        memory. Only http(s) URLs are fetched.
        """
        limit = max_bytes or self.settings.max_attachment_bytes
        if urlsplit(url).scheme not in ("http", "https"):
            raise RejectedInput(VENDOR, "shared file URL is not http(s)")
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        too_big = RejectedInput(VENDOR, f"shared file exceeds {limit} bytes")
        try:
            async with shared_session().get(url, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise RejectedInput(VENDOR, f"shared file answered HTTP {resp.status}",
                                        status=resp.status)
                if resp.content_length is not None and resp.content_length > limit:
                    raise too_big
                data = bytearray()
                async for chunk in resp.content.iter_chunked(_DOWNLOAD_CHUNK):
                    data.extend(chunk)
                    if len(data) > limit:
                        raise too_big
                return bytes(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise VendorUnavailable(
                VENDOR, f"shared file download failed: {type(exc).__name__}") from None

    # -- transport ---------------------------------------------------------------
    async def _call(self, method: str, path: str, json_body: Any = None, *,
                    params: Mapping[str, str] | None = None,
                    idempotent: bool | None = None) -> HttpResponse:
        """A ticketing call with the current token, retried once if Benti refuses the token.

        A refused token means the gateway rejected the request before it reached the API,
        so repeating even a ticket creation cannot duplicate it.
        """
        session = await self._tokens.session()
        try:
            return await self._http.request(
                method, session.ticketing_url + path, json_body=json_body, params=params,
                headers=self._tokens.headers(session), idempotent=idempotent)
        except AuthenticationError as exc:
            if not token_refused(exc):
                raise
            logger.info("benti: token refused (HTTP %s), renewing it and retrying once",
                        exc.status)
            self._tokens.invalidate(session)
        session = await self._tokens.session()
        return await self._http.request(
            method, session.ticketing_url + path, json_body=json_body, params=params,
            headers=self._tokens.headers(session), idempotent=idempotent)

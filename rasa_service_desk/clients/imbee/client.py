"""Async client of Imbee's REST API: external user, chat, access token.

Identity: the external user's `uniqueIdSha` is HMAC-SHA256(`IMBEE_USER_ID_SALT`, conversation
id), hex-encoded. It is stable for a conversation, reveals nothing about the customer (no email
or phone goes into it) and cannot be reversed or guessed without the salt.

Agents: with several agent ids configured, a conversation always goes to the same one, picked
by a hash of the user id. That spreads chats evenly and keeps re-requests on the
chat that already exists (Imbee keys chats by their members).

Order: user, chat, access token, one after the other. The token needs nothing from the
chat, and requesting both at once would save one round trip, but Imbee mails or texts the
link as soon as the token exists: the link is requested only once the chat it opens exists,
so a failed chat never leaves the customer with a link to nothing.

Retries: all three POSTs are sent as idempotent. Imbee keys users by `uniqueIdSha`, chats by
their members and tokens by user and bot, and answers a repeat with `previously_registered` /
`previously_created` and the existing object, so a repeated request never creates a duplicate.

Errors: a reply whose envelope `code` is not 0 is an error whatever the HTTP status. Refusals
(`code` != 0, or a 4xx other than 401/403/429) of the user and chat calls carry nothing the
customer typed, so they are reported as the vendor being unavailable; a refused token request
carries the customer's email or phone, so it is `RejectedInput`. The vendor's `message` is
kept on the error and logged only as a summary (`vendor_message_summary`: redacted, and
nothing but the vocabulary of API errors).
Never logged: the auth and corporate tokens, the user's `pass`/`apikey`, the access link.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from pydantic import BaseModel

from rasa_service_desk.clients.compat import parse_model
from rasa_service_desk.clients.errors import (
    ConfigurationError,
    IntegrationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import HttpClient, RetryPolicy
from rasa_service_desk.clients.imbee.models import AccessToken, Chat, Envelope, ExternalUser
from rasa_service_desk.clients.imbee.settings import ImbeeSettings
from rasa_service_desk.logs import vendor_message_summary

logger = logging.getLogger(__name__)

VENDOR = "imbee"
USER_PATH = "/third_parties/user/new"
CHAT_PATH = "/chat/create"
TOKEN_PATH = "/token/new"  # noqa: S105 (a URL path, not a secret)

#: How the external user's "device" is described: the customer reaches Imbee via the web link.
DEVICE = {"platform": "web", "deviceName": "Rasa assistant", "osVersion": "web"}

M = TypeVar("M", bound=BaseModel)


def envelope_message(body: Any) -> str:
    """The vendor's `message` from an envelope-shaped error body (for `HttpClient`)."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return ""


def require_contact(email: str | None, phone: str | None) -> None:
    """Imbee sends the access link by mail or SMS: without either nothing is created."""
    if not email and not phone:
        raise RejectedInput(VENDOR, "an email address or a mobile number is required")


@dataclass(frozen=True)
class ChatAccess:
    """What the customer needs: the link, until when and how often it works."""

    url: str = field(repr=False)
    conversation_id: str
    agent_id: str
    valid_until: date
    uses: int
    #: True when Imbee already had this chat and token (the customer asked before).
    reused: bool


class ImbeeClient:
    """One per process (see `actions.runtime.client`); holds no per-customer state."""

    def __init__(
        self,
        settings: ImbeeSettings,
        *,
        today: Callable[[], date] | None = None,
    ) -> None:
        if not settings.host or not settings.agent_pool or not settings.bot_id:
            raise ConfigurationError(
                VENDOR, "IMBEE_HOST, IMBEE_BOT_ID and IMBEE_AGENT_IDS must be set"
            )
        self.settings = settings
        self._today = today or (lambda: datetime.now(timezone.utc).date())
        self._http = HttpClient(
            VENDOR,
            timeout=settings.timeout_seconds,
            retry=RetryPolicy(attempts=settings.retry_attempts),
            error_message=envelope_message,
        )

    # -- identity ------------------------------------------------------------------
    def external_user_id(self, conversation_id: str) -> str:
        """The stable, non-reversible Imbee user id of a conversation."""
        key = self.settings.user_id_salt.get_secret_value().encode()
        return hmac.new(key, conversation_id.encode(), hashlib.sha256).hexdigest()

    def agent_for(self, user_id: str) -> str:
        """The agent of the pool who serves this user, always the same one."""
        pool = self.settings.agent_pool
        digest = hashlib.sha256(user_id.encode()).digest()
        return pool[int.from_bytes(digest[:8], "big") % len(pool)]

    # -- the three calls -----------------------------------------------------------
    async def create_external_user(self, user_id: str) -> ExternalUser:
        """Register (or find again) the external user `user_id`."""
        body = {"uniqueIdSha": user_id, "hardwareId": user_id, **DEVICE}
        return await self._post(
            USER_PATH, body, self._corporate_headers(), ExternalUser, VendorUnavailable,
            "create_external_user",
        )

    async def create_chat(self, user: ExternalUser, agent_id: str) -> Chat:
        """Open (or find again) the chat between `user` and the agent."""
        headers = self._headers(user.apikey.get_secret_value())
        body = {"type": "chat", "contacts": [{"idsha": agent_id}]}
        return await self._post(CHAT_PATH, body, headers, Chat, VendorUnavailable,
                                "create_chat")

    async def create_access_token(
        self,
        user_id: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        max_retries: int | None = None,
        valid_until: date | None = None,
    ) -> AccessToken:
        """Generate the web access link of `user_id`; Imbee also sends it by mail or SMS."""
        require_contact(email, phone)
        body: dict[str, Any] = {
            "virtual_user": user_id,
            "bot_idsha": self.settings.bot_id,
            "max_retries": max_retries or self.settings.max_retries,
            "date_limit": (valid_until or self.default_valid_until()).isoformat(),
        }
        if email:
            body["mail"] = email
        if phone:
            body["celullar"] = phone  # the API's own spelling
        token = await self._post(
            TOKEN_PATH, body, self._corporate_headers(), AccessToken, RejectedInput,
            "create_access_token",
        )
        if not token.url.startswith(("https://", "http://")):
            raise MalformedReply(VENDOR, f"{TOKEN_PATH} returned a link that is not a web URL")
        return token

    def default_valid_until(self) -> date:
        """The last day the link works: today (UTC) plus `IMBEE_VALIDITY_DAYS`."""
        return self._today() + timedelta(days=self.settings.validity_days)

    async def open_chat(
        self, conversation_id: str, *, email: str | None = None, phone: str | None = None
    ) -> ChatAccess:
        """Everything the customer needs to chat with an agent, created once per conversation.

        Asking again for the same conversation gives the same chat and link back.
        """
        require_contact(email, phone)
        user_id = self.external_user_id(conversation_id)
        agent_id = self.agent_for(user_id)
        user = await self.create_external_user(user_id)
        chat = await self.create_chat(user, agent_id)
        token = await self.create_access_token(user_id, email=email, phone=phone)
        access = ChatAccess(
            url=token.url,
            conversation_id=chat.conversation_id,
            agent_id=agent_id,
            valid_until=token.date_limit,
            uses=token.max_retries,
            reused=chat.previously_created and token.previously_created,
        )
        logger.info(
            "imbee chat %s with agent %s ready (user %s..., link valid until %s, %d uses, %s)",
            access.conversation_id, agent_id, user_id[:8], access.valid_until, access.uses,
            "reused" if access.reused else "new",
        )
        return access

    # -- plumbing ------------------------------------------------------------------
    def _headers(self, key: str) -> dict[str, str]:
        return {
            "Authorization": self.settings.auth_token.get_secret_value(),
            "X-WOOS-KEY": key,
            "Content-Type": "application/json",
        }

    def _corporate_headers(self) -> dict[str, str]:
        return self._headers(self.settings.corporate_token.get_secret_value())

    async def _post(
        self,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        model: type[M],
        refusal: type[IntegrationError],
        operation: str,
    ) -> M:
        try:
            reply = await self._http.request(
                "POST", self.settings.host + path, json_body=dict(body), headers=headers,
                idempotent=True, operation=operation,
            )
        except RejectedInput as exc:
            if refusal is RejectedInput:
                raise
            raise refusal(
                VENDOR, exc.message, status=exc.status, vendor_message=exc.vendor_message
            ) from None
        data = reply.json()
        envelope = parse_model(Envelope, data if isinstance(data, dict) else {}, VENDOR)
        if envelope.code != 0:
            logger.warning(
                "imbee %s refused the request (code %s): %s",
                path, envelope.code, vendor_message_summary(envelope.message) or "no message",
            )
            raise refusal(
                VENDOR, f"{path} answered code {envelope.code}",
                status=reply.status, vendor_message=envelope.message,
            )
        if not isinstance(envelope.body, dict):
            raise MalformedReply(VENDOR, f"{path} answered code 0 without a body")
        return parse_model(model, envelope.body, VENDOR)

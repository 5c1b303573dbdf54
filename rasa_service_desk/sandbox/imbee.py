"""Simulator of Imbee's REST API: external users, chats between users, access tokens.

Faithful to the vendor's documentation: every reply is the envelope
`{"time", "code", "message", "body"}` and a refused request answers `code: 1` with HTTP 200;
every request needs `Content-Type: application/json` and `Authorization: <auth token>`;
`X-WOOS-KEY` is the corporate token, except for chat creation where it is the creating
user's own `apikey`. Users are keyed by `uniqueIdSha`, chats by their members and tokens by
user and bot, so repeating a request returns the existing object with `previously_registered`
/ `previously_created` set. Where the documentation is silent the simulator is strict:
credential problems answer 401/403 (still with the envelope), a wrong Content-Type 415.

`GET /web/access/<token>` stands for the page the customer opens: each visit uses the link
once, and an expired or used-up link answers 410.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from rasa_service_desk.clients.imbee.settings import (
    SANDBOX_AGENT_IDS,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_BOT_ID,
    SANDBOX_CORPORATE_TOKEN,
)
from rasa_service_desk.sandbox.core import Fault, Routes, Simulator, origin

USER_PATH = "/third_parties/user/new"
CHAT_PATH = "/chat/create"
TOKEN_PATH = "/token/new"
ACCESS_PATH = "/web/access/"

DATE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAIL_FORMAT = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CELLULAR_FORMAT = re.compile(r"^\+?\d{6,15}$")


class Refused(Exception):
    """A request the API refuses: answered with the envelope, `code` 1."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class User:
    unique_id: str
    idsha: str
    password: str
    apikey: str
    platform: str = ""
    device_name: str = ""
    hardware_id: str = ""
    os_version: str = ""
    registrations: int = 1


@dataclass
class ChatRoom:
    conversation_id: str
    creator: str
    contacts: list[str]
    requests: int = 1


@dataclass
class Token:
    value: str
    url: str
    virtual_user: str
    user_idsha: str
    bot_idsha: str
    date_limit: date
    max_retries: int
    mail: str | None
    celullar: str | None
    uses: int = 0
    requests: int = 1


def _today() -> date:
    return datetime.now(timezone.utc).date()


class ImbeeSimulator(Simulator):
    name = "imbee"

    def __init__(
        self,
        latency: float = 0.0,
        *,
        auth_token: str = SANDBOX_AUTH_TOKEN,
        corporate_token: str = SANDBOX_CORPORATE_TOKEN,
        bots: tuple[str, ...] = (SANDBOX_BOT_ID,),
        agents: tuple[str, ...] = SANDBOX_AGENT_IDS,
        default_max_retries: int = 5,
        default_validity_days: int = 30,
    ) -> None:
        self.auth_token = auth_token
        self.corporate_token = corporate_token
        self.bots = bots
        self.agents = agents
        self.default_max_retries = default_max_retries
        self.default_validity_days = default_validity_days
        self.users: dict[str, User] = {}
        self.user_by_apikey: dict[str, User] = {}  # each request's key, found without a scan
        self.chats: dict[frozenset[str], ChatRoom] = {}
        self.tokens: dict[tuple[str, str], Token] = {}
        super().__init__(latency)

    # -- Simulator hooks -------------------------------------------------------------
    def reset_state(self) -> None:
        self.users = {}
        self.user_by_apikey = {}
        self.chats = {}
        self.tokens = {}

    def add_routes(self, routes: Routes) -> None:
        routes.add_post(USER_PATH, self._create_user)
        routes.add_post(CHAT_PATH, self._create_chat)
        routes.add_post(TOKEN_PATH, self._create_token)
        routes.add_get(ACCESS_PATH + "{token}", self._open_link)

    def state(self) -> dict[str, Any]:
        return {
            "users": [asdict(user) for user in self.users.values()],
            "chats": [asdict(chat) for chat in self.chats.values()],
            "tokens": [asdict(token) for token in self.tokens.values()],
        }

    def expire_tokens(self) -> None:
        for token in self.tokens.values():
            token.date_limit = _today() - timedelta(days=1)

    async def fault_reply(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """An injected failure in Imbee's envelope; `status: 200` gives `code: 1` with HTTP 200.

        A dict `body` is merged into the envelope (e.g. `{"code": 7, "message": "..."}`);
        any other `body` replaces it.
        """
        status = fault.status or 500
        headers = dict(fault.headers)
        if status == 429:
            headers.setdefault("Retry-After", "0")
        body: Any = self._envelope(time.perf_counter(), 1, f"Injected error ({status})", None)
        if isinstance(fault.body, dict):
            body.update(fault.body)
        elif fault.body is not None:
            body = fault.body
        return web.json_response(body, status=status, headers=headers)

    # -- endpoints ---------------------------------------------------------------------
    async def _create_user(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            self._check_credentials(request, corporate=True)
            data = await self._json(request)
            unique_id = data.get("uniqueIdSha")
            if not isinstance(unique_id, str) or not unique_id.strip():
                raise Refused("uniqueIdSha can not be null or empty")
            details = {}
            for field_name in ("platform", "deviceName", "hardwareId", "osVersion"):
                value = data.get(field_name, "")
                if not isinstance(value, str):
                    raise Refused(f"{field_name} must be a string")
                details[field_name] = value
        except Refused as exc:
            return self._refuse(started, exc)
        user = self.users.get(unique_id)
        if user is None:
            user = self.users[unique_id] = User(
                unique_id=unique_id,
                idsha=secrets.token_hex(16),
                password=secrets.token_urlsafe(12),
                apikey=secrets.token_hex(20),
                platform=details["platform"],
                device_name=details["deviceName"],
                hardware_id=details["hardwareId"],
                os_version=details["osVersion"],
                registrations=0,
            )
            self.user_by_apikey[user.apikey] = user
            previously = False
        else:
            previously = True
        user.registrations += 1
        return self._ok(started, {"virtualUser": user.idsha, "pass": user.password,
                                  "apikey": user.apikey, "previously_registered": previously})

    async def _create_chat(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            creator = self._check_credentials(request, corporate=False)
            assert creator is not None
            data = await self._json(request)
            if data.get("type") != "chat":
                raise Refused('type must be "chat"')
            contacts = data.get("contacts")
            if not isinstance(contacts, list) or not contacts:
                raise Refused("contacts can not be empty")
            members: list[str] = []
            known = set(self.agents) | {user.idsha for user in self.users.values()}
            for contact in contacts:
                idsha = contact.get("idsha") if isinstance(contact, dict) else None
                if not isinstance(idsha, str) or idsha not in known:
                    raise Refused("Contact not found")
                if idsha == creator.idsha:
                    raise Refused("A user can not open a chat with themselves")
                if idsha not in members:
                    members.append(idsha)
        except Refused as exc:
            return self._refuse(started, exc)
        key = frozenset([creator.idsha, *members])
        chat = self.chats.get(key)
        previously = chat is not None
        if chat is None:
            chat = self.chats[key] = ChatRoom(
                conversation_id=secrets.token_hex(12), creator=creator.idsha, contacts=members,
                requests=0,
            )
        chat.requests += 1
        contact_list = [{"idsha": chat.creator, "isadmin": 1}] + [
            {"idsha": idsha, "isadmin": 0} for idsha in chat.contacts
        ]
        return self._ok(started, {"contacts": contact_list, "conversationId": chat.conversation_id,
                                  "previously_created": previously})

    async def _create_token(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            self._check_credentials(request, corporate=True)
            data = await self._json(request)
            virtual_user = data.get("virtual_user")
            if not isinstance(virtual_user, str) or not virtual_user.strip():
                raise Refused("virtual_user can not be null or empty")
            user = self.users.get(virtual_user)
            if user is None:
                raise Refused("virtual_user not found")
            bot = data.get("bot_idsha")
            if bot not in self.bots:
                raise Refused("bot_idsha not found")
            mail = self._optional(data, "mail", MAIL_FORMAT)
            celullar = self._optional(data, "celullar", CELLULAR_FORMAT)
            if mail is None and celullar is None:
                raise Refused("mail or celullar is required")
            max_retries = data.get("max_retries", self.default_max_retries)
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or \
                    max_retries < 1:
                raise Refused("max_retries must be a positive integer")
            date_limit = self._date_limit(data.get("date_limit"))
        except Refused as exc:
            return self._refuse(started, exc)
        key = (virtual_user, str(bot))
        token = self.tokens.get(key)
        if token is not None and token.date_limit >= _today() and token.uses < token.max_retries:
            token.requests += 1
            return self._token_reply(started, token, previously=True)
        value = secrets.token_urlsafe(24)
        prefix = request.path[: -len(TOKEN_PATH)]
        token = self.tokens[key] = Token(
            value=value,
            url=f"{origin(request)}{prefix}{ACCESS_PATH}{value}",
            virtual_user=virtual_user,
            user_idsha=user.idsha,
            bot_idsha=str(bot),
            date_limit=date_limit,
            max_retries=max_retries,
            mail=mail,
            celullar=celullar,
        )
        return self._token_reply(started, token, previously=False)

    async def _open_link(self, request: web.Request) -> web.Response:
        value = request.match_info["token"]
        token = next((t for t in self.tokens.values() if t.value == value), None)
        if token is None:
            return web.Response(status=404, text="Unknown link")
        if token.date_limit < _today() or token.uses >= token.max_retries:
            return web.Response(status=410, text="This link has expired")
        token.uses += 1
        return web.Response(text="<html><body>Imbee chat (simulator)</body></html>",
                            content_type="text/html")

    # -- helpers -----------------------------------------------------------------------
    def _check_credentials(self, request: web.Request, *, corporate: bool) -> User | None:
        """Check Content-Type and keys; for chat creation return the user the apikey is of."""
        if request.content_type != "application/json":
            raise Refused("Content-Type must be application/json", status=415)
        if not secrets.compare_digest(request.headers.get("Authorization", ""), self.auth_token):
            raise Refused("Unauthorized", status=401)
        key = request.headers.get("X-WOOS-KEY", "")
        if corporate:
            if not secrets.compare_digest(key, self.corporate_token):
                raise Refused("Invalid X-WOOS-KEY", status=403)
            return None
        user = self.user_by_apikey.get(key)
        if user is None:
            raise Refused("Invalid X-WOOS-KEY", status=403)
        return user

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise Refused("Malformed JSON") from None
        if not isinstance(data, dict):
            raise Refused("Malformed JSON")
        return data

    @staticmethod
    def _optional(data: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str | None:
        value = data.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not pattern.match(value):
            raise Refused(f"{name} is not valid")
        return value

    def _date_limit(self, value: Any) -> date:
        if value is None:
            return _today() + timedelta(days=self.default_validity_days)
        if not isinstance(value, str) or not DATE_FORMAT.match(value):
            raise Refused("date_limit must have the format YYYY-MM-DD")
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise Refused("date_limit must have the format YYYY-MM-DD") from None
        if parsed < _today():
            raise Refused("date_limit can not be in the past")
        return parsed

    def _token_reply(self, started: float, token: Token, *, previously: bool) -> web.Response:
        return self._ok(started, {
            "url": token.url,
            "user_idsha": token.user_idsha,
            "date_limit": token.date_limit.isoformat(),
            "max_retries": token.max_retries,
            "previously_created": previously,
        })

    @staticmethod
    def _envelope(started: float, code: int, message: str, body: Any) -> dict[str, Any]:
        return {"time": round(time.perf_counter() - started, 5), "code": code,
                "message": message, "body": body}

    def _ok(self, started: float, body: dict[str, Any]) -> web.Response:
        return web.json_response(self._envelope(started, 0, "Ok", body))

    def _refuse(self, started: float, exc: Refused) -> web.Response:
        return web.json_response(self._envelope(started, 1, exc.message, None),
                                 status=exc.status)

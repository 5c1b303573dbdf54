"""Local simulator of Benti (Inbenta ticketing), faithful to the vendor's documentation.

Two parts, as at Inbenta: the authentication API (`/v1/auth`, `/v1/refreshToken`,
`/v1/apis`) at the root, and the ticketing API under `/ticketing/v1/...`, whose URL the
auth reply and `/v1/apis` hand out (built from the request's own scheme, host and mount
prefix, so it works wherever the simulator is served).

Checks, with the vendor's documented answers (Inbenta's "Gateway Errors" and "API Errors"
pages): the gateway answers a missing or wrong `x-inbenta-key` and an unknown, revoked or
expired bearer token with 403 `{"Message": "User is not authorized to access this resource
with an explicit deny"}`, and a request without an `Authorization` header with 401
`{"Message": "Unauthorized"}`. The API answers `{"error": {"code", "message"}}`: 400
"Secret token not valid" for a wrong or missing secret on `/v1/auth` (the documented
example), and, in wording the documentation does not give, bodies over 10 MiB (413), missing
fields (400), undecodable base64 (400), unknown creators or attachment ids (422) and a
second user with an address already registered (422; the status and message of a duplicate
user are not documented, only that Benti refuses it).

Every reply carries the rate-limit headers: `x-quota-usage` / `x-throttle-usage` (percent of
the limit used) and `x-quota-reset` / `x-throttle-reset`, documented as "a timestamp that
indicates when your rate limit will be reset" (sent as Unix seconds). Above
`throttle_per_second` requests the answer is 429 with those headers and no `Retry-After`
(Inbenta documents none).

Settings beyond the base control API: `POST /_sandbox/config` with `token_lifetime` (seconds)
and/or `throttle_per_second` (0 = unlimited).
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rasa_service_desk.clients.benti.settings import SANDBOX_API_KEY, SANDBOX_API_SECRET
from rasa_service_desk.sandbox.core import CONTROL_PREFIX, Fault, Routes, Simulator

PAYLOAD_LIMIT = 10 * 1024 * 1024
QUOTA_PER_DAY = 100_000
PREVIEW_CHARS = 4000
DEFAULT_TOKEN_LIFETIME = 1200.0
#: The gateway's documented refusals (developers.inbenta.io, "Gateway Errors").
EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"
UNAUTHORIZED = "Unauthorized"
#: The API's documented refusal of a wrong secret ("API Errors" example).
SECRET_NOT_VALID = "Secret token not valid"
DUPLICATE_USER = "A user with this address already exists"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_error(status: int, message: str) -> web.Response:
    """An error as the ticketing API words it."""
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


def gateway_error(status: int, message: str) -> web.Response:
    """An error as Inbenta's API gateway words it."""
    return web.json_response({"Message": message}, status=status)


class BentiSimulator(Simulator):
    name = "benti"

    def __init__(self, latency: float = 0.0, token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
                 throttle_per_second: int = 0) -> None:
        self.token_lifetime = token_lifetime
        self.throttle_per_second = throttle_per_second
        super().__init__(latency)

    # -- state -------------------------------------------------------------------
    def reset_state(self) -> None:
        self.tokens: dict[str, float] = {}
        self.users: dict[str, dict[str, Any]] = {}
        #: address -> user (addresses are unique): a lookup that does not scan every user.
        self.user_by_address: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.tickets: list[dict[str, Any]] = []
        self.quota_used = 0
        self.window_start = 0.0
        self.window_count = 0

    def state(self) -> dict[str, Any]:
        return {
            "users": list(self.users.values()),
            "media": [
                {key: item[key] for key in ("id", "name", "size", "preview", "used")}
                for item in self.media.values()
            ],
            "tickets": self.tickets,
            "active_tokens": sum(1 for exp in self.tokens.values() if exp > time.time()),
            "token_lifetime": self.token_lifetime,
        }

    def expire_tokens(self) -> None:
        past = time.time() - 1
        self.tokens = dict.fromkeys(self.tokens, past)

    # -- routes ------------------------------------------------------------------
    def add_routes(self, routes: Routes) -> None:
        routes.add_post("/v1/auth", self._guard(self.auth, bearer=False))
        routes.add_post("/v1/refreshToken", self._guard(self.refresh))
        routes.add_get("/v1/apis", self._guard(self.apis))
        routes.add_get("/ticketing/v1/users", self._guard(self.find_users))
        routes.add_post("/ticketing/v1/users", self._guard(self.create_user))
        routes.add_post("/ticketing/v1/media", self._guard(self.upload_media))
        routes.add_post("/ticketing/v1/tickets", self._guard(self.create_ticket))
        routes.add_post(CONTROL_PREFIX + "config", self._post_config)

    async def _post_config(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "token_lifetime" in data:
            self.token_lifetime = float(data["token_lifetime"])
        if "throttle_per_second" in data:
            self.throttle_per_second = int(data["throttle_per_second"])
        return web.json_response({"token_lifetime": self.token_lifetime,
                                  "throttle_per_second": self.throttle_per_second})

    # -- gateway checks ----------------------------------------------------------
    def _guard(self, handler: Handler, bearer: bool = True) -> Handler:
        """Wrap an endpoint with the gateway's checks and the rate-limit headers."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            limited = self._throttle()
            if limited is not None:
                return limited
            # `is None`, not `or`: aiohttp before 3.10 makes an empty response falsy.
            refused = await self._check(request, bearer)
            reply = refused if refused is not None else await handler(request)
            reply.headers.update(self._rate_headers())
            return reply

        return guarded

    async def _check(self, request: web.Request, bearer: bool) -> web.StreamResponse | None:
        if request.headers.get("x-inbenta-key") != SANDBOX_API_KEY:
            return gateway_error(403, EXPLICIT_DENY)
        if request.can_read_body and len(await request.read()) > PAYLOAD_LIMIT:
            return api_error(413, "Payload too large: the limit is 10MB")
        if not bearer:
            return None
        authorization = request.headers.get("Authorization")
        if not authorization:
            return gateway_error(401, UNAUTHORIZED)
        scheme, _, token = authorization.partition(" ")
        expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None or expires <= time.time():
            return gateway_error(403, EXPLICIT_DENY)
        return None

    def _throttle(self) -> web.Response | None:
        now = time.time()
        if now - self.window_start >= 1.0:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        self.quota_used += 1
        if self.throttle_per_second and self.window_count > self.throttle_per_second:
            reply = api_error(429, "Too many requests")
            reply.headers.update(self._rate_headers())
            return reply
        return None

    def _rate_headers(self, throttled: bool = False) -> dict[str, str]:
        """Usage in percent; resets as the Unix time (seconds) the limit resets at."""
        now = time.time()
        limit = self.throttle_per_second or 0
        usage = 100 * self.window_count / limit if limit else 0.0
        return {
            "x-quota-usage": f"{100 * self.quota_used / QUOTA_PER_DAY:.2f}",
            "x-quota-reset": str(int(now - now % 86400 + 86400)),
            "x-throttle-usage": f"{max(usage, 100.01) if throttled else usage:.2f}",
            "x-throttle-reset": str(math.ceil(max(self.window_start + 1.0, now))),
        }

    async def fault_reply(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        status = fault.status or 500
        if fault.body is not None:
            reply = web.json_response(fault.body, status=status)
        elif status in (401, 403):
            reply = gateway_error(status, UNAUTHORIZED if status == 401 else EXPLICIT_DENY)
        else:
            reply = api_error(status, f"injected error {status}")
        reply.headers.update(self._rate_headers(throttled=status == 429))
        reply.headers.update(fault.headers)
        return reply

    # -- authentication API ------------------------------------------------------
    def _issue(self) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        expiration = time.time() + self.token_lifetime
        self.tokens[token] = expiration
        return {"accessToken": token, "expiration": int(expiration),
                "expires_in": int(self.token_lifetime)}

    @staticmethod
    def _ticketing_base(request: web.Request) -> str:
        """`<scheme>://<host><mount prefix>/ticketing`, as seen by the caller."""
        mount = request.path[: request.path.rindex("/v1/")]
        return f"{request.scheme}://{request.host}{mount}/ticketing"

    async def auth(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if data is None:
            data = dict(await request.post())
        if data.get("secret") != SANDBOX_API_SECRET:
            return api_error(400, SECRET_NOT_VALID)
        return web.json_response(
            {**self._issue(), "apis": {"ticketing": self._ticketing_base(request)}})

    async def refresh(self, request: web.Request) -> web.Response:
        return web.json_response(self._issue())

    async def apis(self, request: web.Request) -> web.Response:
        return web.json_response({"apis": {"ticketing": self._ticketing_base(request)}})

    # -- ticketing API -----------------------------------------------------------
    async def find_users(self, request: web.Request) -> web.Response:
        address = request.query.get("address", "").strip().lower()
        if address:
            found = [self.user_by_address[address]] if address in self.user_by_address else []
        else:
            found = list(self.users.values())
        return web.json_response({"data": found})

    async def create_user(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if not data or not data.get("name") or "@" not in str(data.get("address", "")):
            return api_error(400, "name and a valid address are required")
        address = str(data["address"]).strip().lower()
        if address in self.user_by_address:
            return api_error(422, DUPLICATE_USER)
        user = {"id": str(uuid.uuid4()), "name": str(data["name"]), "address": address}
        self.users[user["id"]] = user
        self.user_by_address[address] = user
        return web.json_response({"uuid": user["id"]}, status=201)

    async def upload_media(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if not data or not data.get("name") or not isinstance(data.get("content"), str):
            return api_error(400, "name and content are required")
        try:
            content = base64.b64decode(data["content"], validate=True)
        except (binascii.Error, ValueError):
            return api_error(400, "content is not valid base64")
        media_id = str(uuid.uuid4())
        self.media[media_id] = {
            "id": media_id, "name": str(data["name"]), "size": len(content),
            "preview": content[:PREVIEW_CHARS].decode("utf-8", errors="replace"),
            "used": False,
        }
        return web.json_response({"uuid": media_id}, status=201)

    async def create_ticket(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if not data or not data.get("message") or data.get("creator") in (None, ""):
            return api_error(400, "message and creator are required")
        if str(data["creator"]) not in self.users:
            return api_error(422, f"creator {data['creator']} does not exist")
        attachments = data.get("attachments") or []
        if not isinstance(attachments, list):
            return api_error(400, "attachments must be a list of media ids")
        unknown = [a for a in attachments if str(a) not in self.media]
        if unknown:
            return api_error(422, f"unknown attachment id(s): {', '.join(map(str, unknown))}")
        for field in ("queue", "source"):
            if field in data and not isinstance(data[field], int):
                return api_error(400, f"{field} must be an integer")
        for media_id in attachments:
            self.media[str(media_id)]["used"] = True
        ticket = {
            "id": 1000 + len(self.tickets) + 1, "full_uuid": str(uuid.uuid4()),
            "title": data.get("title") or "", "message": data["message"],
            "creator": str(data["creator"]), "attachments": [str(a) for a in attachments],
            "queue": data.get("queue"), "source": data.get("source"),
        }
        self.tickets.append(ticket)
        return web.json_response({"id": ticket["id"], "full_uuid": ticket["full_uuid"]},
                                 status=201)


async def _body(request: web.Request) -> dict[str, Any] | None:
    """The JSON object of the request, or None when the body is not one."""
    if request.content_type != "application/json":
        return None
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

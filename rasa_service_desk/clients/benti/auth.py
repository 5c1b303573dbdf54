"""Benti access tokens: authenticate, refresh ahead of expiry, discover the ticketing URL.

One `TokenKeeper` per process holds the current `Session` (token + ticketing base URL).
Requests read it without waiting while it is fresh; the first request that finds it missing
or due for renewal takes a lock and renews it, and every request that arrived meanwhile
waits for that one renewal instead of authenticating on its own (no stampede at cold start
or at expiry).

A renewal that fails is shared the same way: for `AUTH_FAILURE_HOLD_SECONDS` every request
gets the same error without calling Benti again, so a wrong secret or an auth outage costs
one `/v1/auth` call per few seconds however many customers are waiting, instead of one (plus
retries) each. A refusal of `/v1/auth` itself is our configuration, not the customer's
input: it becomes an `AuthenticationError` (wrong key or secret) or a `ConfigurationError`
(404: wrong `BENTI_AUTH_URL`) whose message names the setting to check, never its value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from rasa_service_desk.clients.benti.models import ApisReply, AuthReply
from rasa_service_desk.clients.benti.settings import BentiSettings
from rasa_service_desk.clients.compat import parse_model
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    IntegrationError,
    MalformedReply,
    RejectedInput,
)
from rasa_service_desk.clients.http import HttpClient
from rasa_service_desk.logs import error_text

logger = logging.getLogger(__name__)

VENDOR = "benti"
API_VERSION = "v1"
#: How long one failed authentication answers for every request (no new /v1/auth meanwhile).
AUTH_FAILURE_HOLD_SECONDS = 5.0


def _again(exc: IntegrationError) -> IntegrationError:
    """A copy of `exc` for another waiter: one exception object raised by many tasks would
    collect all their tracebacks."""
    copy = IntegrationError.__new__(type(exc))
    Exception.__init__(copy, *exc.args)
    copy.__dict__.update(exc.__dict__)
    return copy


def auth_refused(exc: AuthenticationError | RejectedInput) -> IntegrationError:
    """The error for a refused `/v1/auth`: a setting to fix, named (the customer hears the
    service is unavailable, not that their ticket was rejected)."""
    where = f"HTTP {exc.status}" + (f": {exc.vendor_message}" if exc.vendor_message else "")
    if exc.status == 404:
        return ConfigurationError(
            VENDOR, f"POST /v1/auth not found ({where}); check BENTI_AUTH_URL",
            status=exc.status, vendor_message=exc.vendor_message)
    return AuthenticationError(
        VENDOR, f"authentication refused ({where}); check BENTI_API_KEY and BENTI_API_SECRET",
        status=exc.status, vendor_message=exc.vendor_message)


@dataclass(frozen=True)
class Session:
    """A usable token and the ticketing URL that goes with it."""

    token: str
    ticketing_url: str
    expires_at: float
    refresh_at: float


class TokenKeeper:
    """Owns the process's Benti token; `session()` always returns a usable one."""

    def __init__(self, settings: BentiSettings, http: HttpClient,
                 clock: Callable[[], float]) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._session: Session | None = None
        #: The last failed renewal and until when it is answered for every request.
        self._failure: tuple[IntegrationError, float] | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def auth_url(self) -> str:
        return self._settings.auth_url.rstrip("/")

    def key_header(self) -> dict[str, str]:
        key = self._settings.api_key
        return {"x-inbenta-key": key.get_secret_value() if key is not None else ""}

    def headers(self, session: Session) -> dict[str, str]:
        """What every call after authentication carries: the API key and the bearer token."""
        return {**self.key_header(), "Authorization": f"Bearer {session.token}"}

    async def session(self) -> Session:
        """The current session, renewed first when it is missing or due for renewal.

        Raises the error of a renewal that failed less than `AUTH_FAILURE_HOLD_SECONDS` ago.
        """
        current = self._session
        if current is not None and self._clock() < current.refresh_at:
            return current
        self._raise_recent_failure()
        async with self._renewal_lock():
            current = self._session
            if current is not None and self._clock() < current.refresh_at:
                return current  # another request renewed it while we waited
            self._raise_recent_failure()  # ... or failed to, while we waited
            try:
                self._session = await self._renew(current)
            except IntegrationError as exc:
                self._failure = (exc, self._clock() + AUTH_FAILURE_HOLD_SECONDS)
                raise
            self._failure = None
            return self._session

    def _raise_recent_failure(self) -> None:
        if self._failure is not None:
            error, until = self._failure
            if self._clock() < until:
                raise _again(error)
            self._failure = None

    def invalidate(self, session: Session) -> None:
        """Drop `session` after Benti refused its token (only if nobody renewed it yet)."""
        if self._session is session:
            self._session = None

    def _renewal_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def _renew(self, current: Session | None) -> Session:
        if current is not None and self._clock() < current.expires_at:
            try:
                return await self._open(await self._refresh(current))
            except IntegrationError as exc:
                logger.info("benti: token refresh failed (%s), authenticating again",
                            type(exc).__name__)
        return await self._open(await self._authenticate())

    async def _authenticate(self) -> AuthReply:
        secret = self._settings.api_secret
        try:
            reply = await self._http.request_json(
                "POST", f"{self.auth_url}/{API_VERSION}/auth",
                json_body={"secret": secret.get_secret_value() if secret is not None else ""},
                headers=self.key_header(), idempotent=True, operation="authenticate",
            )
        except (AuthenticationError, RejectedInput) as exc:  # not 429/5xx: those stay as they are
            error = auth_refused(exc)
            logger.error("%s", error_text(error))  # the vendor's words summarised
            raise error from None
        logger.info("benti: authenticated")
        return parse_model(AuthReply, reply, VENDOR)

    async def _refresh(self, current: Session) -> AuthReply:
        reply = await self._http.request_json(
            "POST", f"{self.auth_url}/{API_VERSION}/refreshToken",
            headers=self.headers(current), idempotent=True, operation="refresh_token",
        )
        logger.info("benti: access token refreshed")
        return parse_model(AuthReply, reply, VENDOR)

    async def _discover(self, token: str) -> dict[str, str]:
        reply = await self._http.request_json(
            "GET", f"{self.auth_url}/{API_VERSION}/apis",
            headers={**self.key_header(), "Authorization": f"Bearer {token}"},
            operation="discover_apis",
        )
        return parse_model(ApisReply, reply, VENDOR).apis

    async def _open(self, reply: AuthReply) -> Session:
        """Turn a token reply into a session: lifetime, renewal time, ticketing URL.

        The lifetime comes from `expires_in` when Benti sends it (immune to clock skew),
        else from `expiration`. Renewal starts `token_refresh_margin_seconds` before expiry,
        but never earlier than half-way, so short-lived tokens are not refreshed on every call.
        The ticketing URL is taken from the reply's `apis` map or else fetched from
        `/v1/apis`: once per new token, as Benti asks.
        """
        now = self._clock()
        lifetime = reply.expires_in if reply.expires_in else reply.expiration - now
        lifetime = max(0.0, float(lifetime))
        apis = reply.apis if reply.apis and reply.apis.get("ticketing") else None
        if apis is None:
            apis = await self._discover(reply.access_token)
        base = apis.get("ticketing")
        if not base:
            raise MalformedReply(VENDOR, "no ticketing URL in the apis map")
        margin = min(self._settings.token_refresh_margin_seconds, lifetime / 2)
        return Session(
            token=reply.access_token,
            ticketing_url=f"{base.rstrip('/')}/{API_VERSION}",
            expires_at=now + lifetime,
            refresh_at=now + lifetime - margin,
        )

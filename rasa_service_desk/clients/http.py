"""The HTTP layer every vendor client shares.

One `aiohttp.ClientSession` per process and event loop, opened on first use and closed on
shutdown; per-request timeouts; retries with exponential backoff and jitter (tenacity) that
honour `Retry-After`; and translation of transport failures and HTTP statuses into the typed
errors of `rasa_service_desk.clients.errors`.

Retry rules, chosen so a retry can never create a second ticket, errand or loop:
- idempotent requests (GET, PUT, DELETE, HEAD, or a POST the client marks idempotent) are
  retried after connection errors, timeouts and 429/502/503/504;
- other POSTs are retried only when the vendor cannot have acted on them: the connection was
  never established, or the vendor answered 429 or 503 (it refused the request unprocessed).

The wait before a retry honours the vendor's hint, capped by the policy's `max_wait`:
`Retry-After` (seconds or HTTP date), and the rate-limit reset headers `x-throttle-reset` /
`x-quota-reset` (Inbenta documents them as the timestamp at which that limit resets; read as
Unix seconds, or milliseconds when the number is that large). A reset header counts only
when its limit is the one exhausted: its `x-throttle-usage` / `x-quota-usage` percentage is
at least 100, or absent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from rasa_service_desk.clients.errors import (
    AuthenticationError,
    IntegrationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.redact import redact
from rasa_service_desk.logs import http_fields, safe_url, vendor_error_text

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
UNPROCESSED_STATUSES = frozenset({429, 503})

ErrorMessageExtractor = Callable[[Any], str]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently a request is retried."""

    attempts: int = 3
    initial_wait: float = 0.2
    max_wait: float = 5.0
    jitter: float = 0.2


@dataclass(frozen=True)
class HttpResponse:
    """A fully read reply: status, headers and body, decoupled from the connection."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    vendor: str

    def json(self) -> Any:
        """Decode the body as JSON, or raise `MalformedReply`."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise MalformedReply(
                self.vendor, f"reply to {redact(self.url)} is not JSON (HTTP {self.status})"
            ) from None


class _RetryableStatus(Exception):
    """Internal: a status worth another attempt; carries the reply for the final error."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


class _Transport(Exception):
    """Internal: the request failed below HTTP; `sent` tells whether it may have arrived."""

    def __init__(self, cause: BaseException, sent: bool) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
        self.sent = sent


_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def shared_session() -> aiohttp.ClientSession:
    """Return the process's session for the running loop, opening it on first use."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        for stale in [lp for lp in _sessions if lp.is_closed()]:
            del _sessions[stale]
        connector = aiohttp.TCPConnector(limit=200, limit_per_host=100, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        _sessions[loop] = session
    return session


async def close_shared_sessions() -> None:
    """Close the session of the running loop (called on server shutdown)."""
    loop = asyncio.get_running_loop()
    session = _sessions.pop(loop, None)
    if session is not None and not session.closed:
        await session.close()


#: Rate-limit reset header -> the usage header (a percentage) of the same limit.
RESET_HEADERS = {"x-throttle-reset": "x-throttle-usage", "x-quota-reset": "x-quota-usage"}
_MILLISECOND_EPOCH = 1e11  # a "timestamp" this large counts milliseconds, not seconds


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (a plain dict of headers is case-sensitive)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _reset_wait(headers: Mapping[str, str], name: str, now: float) -> float | None:
    """Seconds until the limit behind reset header `name` resets, if it is the one exhausted."""
    raw, usage = _header(headers, name), _header(headers, RESET_HEADERS[name])
    try:
        if usage is not None and float(usage) < 100:
            return None  # this limit is not what refused the request
        stamp = float(raw) if raw is not None else None
    except ValueError:
        return None
    if stamp is None or not math.isfinite(stamp):
        return None
    if stamp >= _MILLISECOND_EPOCH:
        stamp /= 1000
    # A small number cannot be a timestamp: some gateways send the seconds left instead.
    return max(0.0, stamp - now) if stamp > 1e9 else max(0.0, stamp)


def retry_hint(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long the vendor asks us to wait: the longest of `Retry-After` and the reset
    headers of exhausted limits; None when the reply carries no such hint."""
    now = time.time() if now is None else now
    hints = [_retry_after(headers), *(_reset_wait(headers, name, now) for name in RESET_HEADERS)]
    present = [hint for hint in hints if hint is not None]
    return max(present) if present else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = _header(headers, "Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass
class HttpClient:
    """Sends one vendor's requests with its timeouts and retry policy.

    `error_message` pulls the vendor's own explanation out of an error body (each vendor
    shapes errors differently); it is kept for logs and `RejectedInput.vendor_message`.
    """

    vendor: str
    timeout: float = 10.0
    connect_timeout: float = 3.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    error_message: ErrorMessageExtractor | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
        allow_redirects: bool = True,
        max_body_bytes: int | None = None,
    ) -> HttpResponse:
        """Send a request and return the reply of a 2xx status; raise a typed error otherwise.

        `allow_redirects=False` keeps a request on the host it was checked for (a redirect
        answers as a 3xx error); `max_body_bytes` refuses a larger reply as malformed
        without reading it whole.
        """
        method = method.upper()
        safe_to_repeat = method in IDEMPOTENT_METHODS if idempotent is None else idempotent

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableStatus):
                return safe_to_repeat or exc.response.status in UNPROCESSED_STATUSES
            if isinstance(exc, _Transport):
                return safe_to_repeat or not exc.sent
            return False

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(
                        method, url, json_body, data, params, headers, timeout,
                        allow_redirects, max_body_bytes,
                    )
        except _RetryableStatus as exc:
            raise self._status_error(exc.response) from None
        except _Transport as exc:
            if isinstance(exc.cause, asyncio.TimeoutError):
                raise VendorUnavailable(self.vendor, f"{method} timed out") from None
            raise VendorUnavailable(
                self.vendor, f"{method} failed: {type(exc.cause).__name__}"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """`request()` and decode the JSON reply."""
        return (await self.request(method, url, **kwargs)).json()

    def _wait(self, state: RetryCallState) -> float:
        exponential = self.retry.initial_wait * 2 ** (state.attempt_number - 1)
        backoff = min(self.retry.max_wait, exponential) + random.uniform(0, self.retry.jitter)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _RetryableStatus):
            hint = retry_hint(exc.response.headers)
            if hint is not None:
                return min(self.retry.max_wait, max(backoff, hint))
        return backoff

    async def _send_once(
        self,
        method: str,
        url: str,
        json_body: Any,
        data: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        allow_redirects: bool = True,
        max_body_bytes: int | None = None,
    ) -> HttpResponse:
        started = time.perf_counter()
        client_timeout = aiohttp.ClientTimeout(
            total=timeout or self.timeout, sock_connect=self.connect_timeout
        )
        try:
            async with shared_session().request(
                method,
                url,
                json=json_body,
                data=data,
                params=params,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=allow_redirects,
            ) as resp:
                if max_body_bytes is None:
                    body = await resp.read()
                else:
                    body = await resp.content.read(max_body_bytes + 1)
                    if len(body) > max_body_bytes:
                        raise MalformedReply(
                            self.vendor, f"{method} reply larger than {max_body_bytes} bytes")
                reply = HttpResponse(
                    resp.status, dict(resp.headers), body, str(resp.url), self.vendor
                )
        except (aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch) as exc:
            raise _Transport(exc, sent=False) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _Transport(exc, sent=True) from None
        if logger.isEnabledFor(logging.DEBUG):  # redacting costs; skip it when not logged
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.debug(
                "%s %s %s -> %s in %.0f ms",
                self.vendor, method, safe_url(reply.url), reply.status, elapsed_ms,
                extra=http_fields(self.vendor, method, reply.url, reply.status, elapsed_ms),
            )
        if reply.status in RETRYABLE_STATUSES:
            raise _RetryableStatus(reply)
        if reply.status >= 400:
            raise self._status_error(reply)
        if 300 <= reply.status < 400:  # only reached with allow_redirects=False
            raise RejectedInput(self.vendor, f"{method} answered a redirect, not followed",
                                status=reply.status)
        return reply

    def _vendor_message(self, reply: HttpResponse) -> str:
        if self.error_message is None:
            return ""
        try:
            return self.error_message(json.loads(reply.body)) or ""
        except Exception:
            return ""

    def _status_error(self, reply: HttpResponse) -> IntegrationError:
        where = f"HTTP {reply.status}"
        vendor_message = self._vendor_message(reply)
        if vendor_message:
            # Not verbatim: a vendor may echo what we sent (the customer's name, text).
            logger.warning("%s %s", self.vendor,
                           vendor_error_text(reply.status, reply.body, vendor_message),
                           extra=http_fields(self.vendor, "", reply.url, reply.status))
        details = {"status": reply.status, "vendor_message": vendor_message}
        if reply.status == 429:
            return RateLimited(
                self.vendor, where, retry_after=retry_hint(reply.headers), **details
            )
        if reply.status in (401, 403):
            return AuthenticationError(self.vendor, where, **details)  # type: ignore[arg-type]
        if 400 <= reply.status < 500:
            return RejectedInput(self.vendor, where, **details)  # type: ignore[arg-type]
        return VendorUnavailable(self.vendor, where, **details)  # type: ignore[arg-type]

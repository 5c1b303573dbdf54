"""The HTTP layer every vendor client shares.

One `aiohttp.ClientSession` per process and event loop, opened on first use and closed on
shutdown; per-request timeouts; retries with exponential backoff and jitter (tenacity) that
honour `Retry-After`; and translation of transport failures and HTTP statuses into the typed
errors of `rasa_service_desk.clients.errors`.

Retry rules, chosen so a retry can never create a second ticket, errand or loop:
- idempotent requests (GET, PUT, DELETE, HEAD, or a POST the client marks idempotent) are
  retried after connection errors, timeouts and 429/502/503/504;
- other POSTs are retried only when the vendor cannot have acted on them: the connection was
  never established, or the vendor answered 429 (it refused the request unprocessed). Not
  503: a gateway may answer 503 after the vendor processed the request (a second ticket).

The wait before a retry honours the vendor's hint: `Retry-After` (seconds or HTTP date), and
the rate-limit reset headers `x-throttle-reset` / `x-quota-reset` (Inbenta documents them as
the timestamp at which that limit resets; read as Unix seconds, or milliseconds when the
number is that large). A reset header counts only when its limit is the one exhausted: its
`x-throttle-usage` / `x-quota-usage` percentage is at least 100, or absent. A hint longer
than the customer can be kept waiting (the policy's `max_wait`, and never past the action's
deadline, see `set_wait_deadline`) is not waited for: the request is not retried and the
error (`RateLimited` for a 429, with `retry_after`) is raised at once, so the customer hears
now that the service is busy instead of the vendor being asked again too early.

Every call is observed here, the one place all vendor calls pass: metrics by vendor,
operation and outcome (`rasa_service_desk.observability.metrics`), the vendor's last outcome
for `/ready`, and a child span of the action's span when tracing is on. Clients name each
call (`operation="create_ticket"`): a low-cardinality label without personal data.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
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

from rasa_service_desk.clients import jsoncodec
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    IntegrationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.pool import new_session
from rasa_service_desk.clients.redact import redact
from rasa_service_desk.clients.retrying import FirstTry
from rasa_service_desk.logs import http_fields, safe_url, vendor_error_text
from rasa_service_desk.observability import readiness, tracing
from rasa_service_desk.observability.metrics import (
    CANCELLED,
    OK,
    CallMetrics,
    call_metrics,
    outcome_of,
)

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: Statuses that prove a request was refused unprocessed (a non-idempotent POST may repeat).
UNPROCESSED_STATUSES = frozenset({429})

#: Event-loop time by which the current action must have its answer (see set_wait_deadline).
_wait_deadline: ContextVar[float | None] = ContextVar("rsd_wait_deadline", default=None)


def set_wait_deadline(seconds: float) -> None:
    """Vendor calls of the current task (and the tasks it starts) never wait before a retry
    beyond `seconds` from now: the action's deadline. Called by the action base class."""
    _wait_deadline.set(asyncio.get_running_loop().time() + seconds)

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
            return jsoncodec.loads(self.body)
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
        # Pool sizes from HTTP_POOL_SIZE(_PER_HOST); a full pool is logged (clients.pool).
        session = new_session(raise_for_status=False)
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
    _timeouts: dict[float, aiohttp.ClientTimeout] = field(
        default_factory=dict, init=False, repr=False, compare=False)

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
        operation: str | None = None,
    ) -> HttpResponse:
        """Send a request and return the reply of a 2xx status; raise a typed error otherwise.

        `allow_redirects=False` keeps a request on the host it was checked for (a redirect
        answers as a 3xx error); `max_body_bytes` refuses a larger reply as malformed
        without reading it whole. `operation` names the call in metrics and traces (a
        fixed name such as `create_ticket`, never anything taken from the URL or data).
        """
        method = method.upper()
        safe_to_repeat = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        metrics = call_metrics(self.vendor, operation or method.lower())

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, _RetryableStatus):
                if safe_to_repeat or exc.response.status in UNPROCESSED_STATUSES:
                    # (the last attempt is not retried whatever the vendor asks)
                    return (attempts >= self.retry.attempts
                            or self._wait_acceptable(exc.response, metrics))
                return False
            if isinstance(exc, _Transport):
                return safe_to_repeat or not exc.sent
            return False

        def before_sleep(state: RetryCallState) -> None:
            # tenacity computes a wait even after the last attempt; this runs only before
            # a retry that happens.
            self._count_retry(state, metrics)

        # tenacity is set up only once a first attempt failed (the happy path skips it).
        retrying = FirstTry(lambda: AsyncRetrying(
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            before_sleep=before_sleep,
            reraise=True,
        ), (_RetryableStatus, _Transport))
        span = tracing.start(self.vendor, metrics.operation, method)
        metrics.in_flight.inc()
        outcome, status, attempts = CANCELLED, None, 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    started = time.perf_counter()
                    try:
                        reply = await self._send_once(
                            method, url, json_body, data, params, headers, timeout,
                            allow_redirects, max_body_bytes,
                        )
                    finally:
                        metrics.duration.observe(time.perf_counter() - started)
                    outcome, status = OK, reply.status
                    return reply
        except _RetryableStatus as exc:
            error: IntegrationError = self._status_error(exc.response)
            outcome, status = outcome_of(error), error.status
            raise error from None
        except _Transport as exc:
            outcome = "unavailable"
            if isinstance(exc.cause, asyncio.TimeoutError):
                raise VendorUnavailable(self.vendor, f"{method} timed out",
                                        reached=exc.sent) from None
            raise VendorUnavailable(
                self.vendor, f"{method} failed: {type(exc.cause).__name__}", reached=exc.sent
            ) from None
        except IntegrationError as exc:
            outcome, status = outcome_of(exc), exc.status
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            metrics.in_flight.dec()
            metrics.ended(outcome)
            readiness.record_call(self.vendor, outcome)
            if span is not None:
                tracing.end(span, outcome, status, attempts)
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """`request()` and decode the JSON reply."""
        return (await self.request(method, url, **kwargs)).json()

    def _wait_limit(self) -> float:
        """The longest wait before a retry: the policy's, and never past the deadline."""
        deadline = _wait_deadline.get()
        if deadline is None:
            return self.retry.max_wait
        return min(self.retry.max_wait, deadline - asyncio.get_running_loop().time())

    def _wait_acceptable(self, reply: HttpResponse, metrics: CallMetrics) -> bool:
        """False when the vendor asks for a longer wait than the customer can be given: the
        request is then not retried (the vendor asked not to be called again so soon)."""
        hint = retry_hint(reply.headers)
        if hint is None:
            return True
        limit = self._wait_limit()
        if hint <= limit:
            return True
        metrics.rate_limit_refused.inc()
        logger.info("%s %s: HTTP %d asks to wait %.0f s, more than the %.1f s a customer can "
                    "wait: not retried", self.vendor, metrics.operation, reply.status, hint,
                    max(0.0, limit), extra={"vendor": self.vendor,
                                            "operation": metrics.operation,
                                            "status": reply.status})
        return False

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

    @staticmethod
    def _count_retry(state: RetryCallState, metrics: CallMetrics) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if isinstance(exc, _RetryableStatus):
            if retry_hint(exc.response.headers) is not None:
                metrics.rate_limit_waited.inc()
            metrics.retried("rate_limited" if exc.response.status == 429 else "unavailable",
                            wait)
        elif isinstance(exc, _Transport) and isinstance(exc.cause, asyncio.TimeoutError):
            metrics.retried("timeout", wait)
        else:
            metrics.retried("connection", wait)

    def _client_timeout(self, total: float) -> aiohttp.ClientTimeout:
        """The request's timeouts, built once per distinct value (not once per request)."""
        cached = self._timeouts.get(total)
        if cached is None:
            cached = self._timeouts[total] = aiohttp.ClientTimeout(
                total=total, sock_connect=self.connect_timeout)
        return cached

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
        client_timeout = self._client_timeout(timeout or self.timeout)
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
            return self.error_message(jsoncodec.loads(reply.body)) or ""
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

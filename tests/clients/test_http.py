"""The shared HTTP layer: retries, error mapping, timeouts (aioresponses, no network)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aioresponses import aioresponses

from rasa_service_desk.clients.errors import (
    AuthenticationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import (
    HttpClient,
    RetryPolicy,
    _retry_after,
    retry_hint,
    set_wait_deadline,
    shared_session,
)

URL = "https://vendor.example/api/items"
FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, jitter=0)


def client(**kwargs: object) -> HttpClient:
    return HttpClient("acme", retry=FAST, error_message=lambda b: b["error"]["message"],
                      **kwargs)  # type: ignore[arg-type]


def sent(mocked: aioresponses, method: str = "GET") -> int:
    return sum(len(calls) for (verb, _), calls in mocked.requests.items() if verb == method)


async def test_get_is_retried_after_server_errors_then_succeeds() -> None:
    with aioresponses() as mocked:
        mocked.get(URL, status=502)
        mocked.get(URL, status=503)
        mocked.get(URL, payload={"ok": True})
        assert await client().request_json("GET", URL) == {"ok": True}
        assert sent(mocked) == 3


async def test_get_gives_up_after_the_configured_attempts() -> None:
    with aioresponses() as mocked:
        for _ in range(3):
            mocked.get(URL, status=504)
        with pytest.raises(VendorUnavailable):
            await client().request("GET", URL)
        assert sent(mocked) == 3


async def test_post_that_may_have_reached_the_vendor_is_never_repeated() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=502)
        mocked.post(URL, payload={"id": 1})
        with pytest.raises(VendorUnavailable):
            await client().request("POST", URL, json_body={"x": 1})
        assert sent(mocked, "POST") == 1


async def test_post_timeout_is_not_repeated() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, exception=asyncio.TimeoutError())
        mocked.post(URL, payload={"id": 1})
        with pytest.raises(VendorUnavailable, match="timed out"):
            await client().request("POST", URL, json_body={})
        assert sent(mocked, "POST") == 1


async def test_post_refused_with_429_is_retried() -> None:
    """A 429 is the vendor refusing the request unprocessed: repeating it is safe."""
    with aioresponses() as mocked:
        mocked.post(URL, status=429, headers={"Retry-After": "0"})
        mocked.post(URL, payload={"id": 7})
        assert await client().request_json("POST", URL, json_body={}) == {"id": 7}
        assert sent(mocked, "POST") == 2


async def test_post_answered_503_is_not_repeated() -> None:
    """A gateway may answer 503 after the vendor created the ticket (issue 12): a second
    POST would file it twice, so the 503 is the answer."""
    with aioresponses() as mocked:
        mocked.post(URL, status=503, headers={"Retry-After": "0"})
        mocked.post(URL, payload={"id": 7})
        with pytest.raises(VendorUnavailable):
            await client().request("POST", URL, json_body={})
        assert sent(mocked, "POST") == 1


async def test_idempotent_post_answered_503_is_retried() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=503, headers={"Retry-After": "0"})
        mocked.post(URL, payload={"id": 7})
        assert await client().request_json("POST", URL, idempotent=True) == {"id": 7}
        assert sent(mocked, "POST") == 2


async def test_post_marked_idempotent_is_retried_after_a_timeout() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, exception=asyncio.TimeoutError())
        mocked.post(URL, payload={"token": "t"})
        assert await client().request_json("POST", URL, idempotent=True) == {"token": "t"}


async def test_connection_refused_post_is_retried_because_nothing_was_sent() -> None:
    err = aiohttp.ClientConnectorError(
        connection_key=None, os_error=OSError(111, "refused")  # type: ignore[arg-type]
    )
    with aioresponses() as mocked:
        mocked.post(URL, exception=err)
        mocked.post(URL, payload={"id": 2})
        assert await client().request_json("POST", URL, json_body={}) == {"id": 2}


async def test_rate_limit_that_persists_raises_rate_limited_with_the_hint() -> None:
    with aioresponses() as mocked:
        for _ in range(3):
            mocked.get(URL, status=429, headers={"Retry-After": "0"})
        with pytest.raises(RateLimited) as info:
            await client().request("GET", URL)
        assert info.value.retry_after == 0


async def test_retry_after_within_the_policy_is_waited_for() -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=2.0, jitter=0)
    with aioresponses() as mocked:
        mocked.get(URL, status=429, headers={"Retry-After": "0.3"})
        mocked.get(URL, payload={})
        loop = asyncio.get_running_loop()
        started = loop.time()
        await HttpClient("acme", retry=policy).request("GET", URL)
        waited = loop.time() - started
        assert 0.25 <= waited < 1.5
        assert sent(mocked) == 2


async def test_a_wait_longer_than_the_customer_can_wait_is_not_retried() -> None:
    """`Retry-After: 3600` with a 5 s budget: asking again within 5 s would hammer a vendor
    that asked for an hour. One request, RateLimited at once, with the vendor's hint."""
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=5.0, jitter=0)
    with aioresponses() as mocked:
        mocked.post(URL, status=429, headers={"Retry-After": "3600"})
        mocked.post(URL, payload={})
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RateLimited) as info:
            await HttpClient("acme", retry=policy).request("POST", URL, json_body={})
        assert loop.time() - started < 0.5
        assert info.value.retry_after == 3600
        assert sent(mocked, "POST") == 1


async def test_a_wait_past_the_action_deadline_is_not_retried() -> None:
    """A 2 s wait fits the policy's 5 s but not an action with 1 s left: busy, now."""
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=5.0, jitter=0)

    async def action() -> None:
        set_wait_deadline(1.0)
        await HttpClient("acme", retry=policy).request("GET", URL)

    with aioresponses() as mocked:
        mocked.get(URL, status=429, headers={"Retry-After": "2"})
        mocked.get(URL, payload={})
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RateLimited) as info:
            await asyncio.create_task(action())
        assert loop.time() - started < 0.5
        assert info.value.retry_after == 2
        assert sent(mocked) == 1
    with aioresponses() as mocked:  # without a deadline the same reply is waited for
        mocked.get(URL, status=429, headers={"Retry-After": "2"})
        mocked.get(URL, payload={})
        await HttpClient("acme", retry=policy).request("GET", URL)
        assert sent(mocked) == 2


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_not_retried(status: int) -> None:
    with aioresponses() as mocked:
        mocked.get(URL, status=status, payload={"error": {"message": "token expired"}})
        with pytest.raises(AuthenticationError) as info:
            await client().request("GET", URL)
        assert info.value.status == status
        assert info.value.vendor_message == "token expired"
        assert sent(mocked) == 1


async def test_rejected_input_keeps_the_vendor_message() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=422, payload={"error": {"message": "title is required"}})
        with pytest.raises(RejectedInput) as info:
            await client().request("POST", URL, json_body={})
        assert info.value.vendor_message == "title is required"
        assert info.value.status == 422


async def test_unreadable_error_body_still_gives_a_typed_error() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=400, body="<html>nope</html>")
        with pytest.raises(RejectedInput) as info:
            await client().request("POST", URL, json_body={})
        assert info.value.vendor_message == ""


async def test_non_json_success_reply_is_malformed() -> None:
    with aioresponses() as mocked:
        mocked.get(URL, body="<html>maintenance</html>", content_type="text/html")
        with pytest.raises(MalformedReply):
            await client().request_json("GET", URL)


async def test_one_session_is_shared_by_all_clients_on_a_loop() -> None:
    assert shared_session() is shared_session()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert _retry_after({"Retry-After": "2"}) == 2
    assert _retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after({}) is None


@pytest.mark.parametrize("header", ["x-throttle-reset", "x-quota-reset"])
async def test_rate_limit_reset_timestamp_is_waited_for_before_the_retry(header: str) -> None:
    """Inbenta sends no Retry-After: its 429 says when the limit resets, as a timestamp."""
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=2.0, jitter=0)
    with aioresponses() as mocked:
        reset = f"{time.time() + 0.4:.3f}"
        mocked.get(URL, status=429, headers={header: reset})
        mocked.get(URL, payload={"ok": True})
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await HttpClient("acme", retry=policy).request_json("GET", URL) == {"ok": True}
        assert 0.3 <= loop.time() - started < 1.5


async def test_a_reset_beyond_the_retry_budget_is_not_waited_for() -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.1, jitter=0)
    with aioresponses() as mocked:
        quota_reset = str(int(time.time()) + 3600)
        for _ in range(2):
            mocked.get(URL, status=429, headers={"x-quota-usage": "100.00",
                                                 "x-quota-reset": quota_reset})
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RateLimited) as info:
            await HttpClient("acme", retry=policy).request("GET", URL)
        assert loop.time() - started < 0.5
        assert info.value.retry_after is not None and info.value.retry_after > 3500
        assert sent(mocked) == 1


def test_retry_hint_reads_reset_timestamps_of_exhausted_limits_only() -> None:
    now = 1_700_000_000.0
    throttled = {"x-throttle-usage": "120.00", "x-throttle-reset": "1700000002",
                 "x-quota-usage": "3.10", "x-quota-reset": "1700086400"}
    assert retry_hint(throttled, now=now) == 2  # the quota is not what refused it
    assert retry_hint({"X-Quota-Reset": "1700000030"}, now=now) == 30  # no usage: trust it
    assert retry_hint({"x-throttle-reset": "1700000001500"}, now=now) == 1.5  # milliseconds
    assert retry_hint({"x-throttle-reset": "1699999990"}, now=now) == 0  # already past
    assert retry_hint({"x-throttle-reset": "3"}, now=now) == 3  # seconds left, not a time
    assert retry_hint({"Retry-After": "5", "x-throttle-reset": "1700000002"}, now=now) == 5
    assert retry_hint({"x-throttle-reset": "soon"}, now=now) is None
    assert retry_hint({"x-throttle-usage": "50.00", "x-throttle-reset": "1700000002"},
                      now=now) is None
    assert retry_hint({}, now=now) is None

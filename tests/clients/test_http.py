"""The shared HTTP layer: retries, error mapping, timeouts (aioresponses, no network)."""

from __future__ import annotations

import asyncio

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
from rasa_service_desk.clients.http import HttpClient, RetryPolicy, _retry_after, shared_session

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


@pytest.mark.parametrize("status", [429, 503])
async def test_post_refused_unprocessed_is_retried(status: int) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=status, headers={"Retry-After": "0"})
        mocked.post(URL, payload={"id": 7})
        assert await client().request_json("POST", URL, json_body={}) == {"id": 7}
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


async def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.05, jitter=0)
    with aioresponses() as mocked:
        mocked.get(URL, status=429, headers={"Retry-After": "30"})
        mocked.get(URL, payload={})
        loop = asyncio.get_running_loop()
        started = loop.time()
        await HttpClient("acme", retry=policy).request("GET", URL)
        waited = loop.time() - started
        assert 0.04 <= waited < 1


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

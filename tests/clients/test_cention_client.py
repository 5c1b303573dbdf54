"""The Cention client against canned replies (aioresponses) and against the simulator.

What a user would notice: customers only ever get answers published in external libraries,
answers read as clean text, repeated questions are answered from the cache without asking
Cention again, requests speak JSON:API with the right token per claim, and every kind of
vendor failure becomes a typed error.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from pydantic import SecretStr

from rasa_service_desk.clients.cention.client import (
    JSONAPI_MEDIA_TYPE,
    CentionClient,
    NewErrand,
    normalise_query,
)
from rasa_service_desk.clients.cention.models import error_text
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import HttpClient, RetryPolicy, close_shared_sessions
from rasa_service_desk.sandbox.cention import CentionSimulator

BASE = "https://api.cention.test/s/demo"
API = f"{BASE}/capi/json"
QUESTIONS = re.compile(re.escape(f"{API}/c3_library_questions") + r"(\?.*)?$")
EXTERNAL = f"{API}/c3_external_libraries"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**changes: Any) -> CentionSettings:
    values: dict[str, Any] = {
        "base_url": BASE,
        "library_token": SecretStr("library-jwt"),
        "errand_token": SecretStr("errand-jwt"),
        "retry_attempts": 2,
    }
    values.update(changes)
    return CentionSettings(**values)


def make_client(clock: Clock | None = None, **changes: Any) -> CentionClient:
    config = settings(**changes)
    http = HttpClient("cention", timeout=2, retry=RetryPolicy(
        attempts=config.retry_attempts, initial_wait=0, max_wait=0, jitter=0),
        error_message=error_text)
    return CentionClient(config, http=http, clock=clock or Clock())


def question(qid: int, subject: str, answer: str, text: str = "") -> dict[str, Any]:
    return {"type": "c3_library_questions", "id": str(qid),
            "attributes": {"answer": answer, "c3_id": qid, "question": text, "subject": subject}}


# Shaped like the documented GET c3_external_libraries sample: the external library 3 lists
# question 2 only, while `included` also carries internal library 4 and its question 1.
EXTERNAL_DOC = {
    "data": [{
        "type": "c3_external_libraries", "id": "3",
        "attributes": {"c3_id": 3, "name": "customer help"},
        "relationships": {
            "categories": {"data": [{"type": "c3_library_categories", "id": "3"}]},
            "questions": {"data": [{"type": "c3_library_questions", "id": "2"}]},
        },
    }],
    "included": [
        question(2, "Reset your password", "<p>Use the reset page</p>"),
        question(1, "Reset password (agents)", "<p>INTERNAL master key</p>"),
        {"type": "c3_libraries", "id": "4",
         "attributes": {"c3_id": 4, "external": False, "name": "agent handbook"},
         "relationships": {"questions": {"data": [{"type": "c3_library_questions", "id": "1"},
                                                  {"type": "c3_library_questions", "id": "2"}]}}},
        {"type": "c3_library_categories", "id": "3", "attributes": {"c3_id": 3, "name": "old"},
         "relationships": {
             "libraries": {"data": [{"type": "c3_libraries", "id": "4"},
                                    {"type": "c3_libraries", "id": "3"}]},
             "questions": {"data": [{"type": "c3_library_questions", "id": "1"}]}}},
    ],
}
SEARCH_DOC = {"data": [
    question(1, "Reset password (agents)", "<p>INTERNAL master key</p>"),
    question(2, "Reset your password", "<p>Use <a href='https://x.test/r'>the reset page</a>"
                "</p><script>steal()</script>"),
]}


@pytest.fixture(autouse=True)
async def _close_sessions() -> AsyncIterator[None]:
    yield
    await close_shared_sessions()


@pytest.fixture
def vendor() -> Iterator[aioresponses]:
    with aioresponses() as mocked:
        yield mocked


def sent(vendor: aioresponses, method: str, pattern: str) -> list[Any]:
    return [call for (verb, url), calls in vendor.requests.items()
            if verb == method and pattern in str(url) for call in calls]


def sent_urls(vendor: aioresponses, method: str = "GET") -> list[str]:
    return [str(url) for (verb, url), calls in vendor.requests.items()
            if verb == method for _ in calls]


# -- library: what customers may see ---------------------------------------------------
async def test_internal_library_answers_are_never_returned(vendor: aioresponses) -> None:
    vendor.get(EXTERNAL, payload=EXTERNAL_DOC)
    vendor.get(QUESTIONS, payload=SEARCH_DOC)
    found = await make_client().search("reset password")
    assert [q.id for q in found] == ["2"]
    assert all("INTERNAL" not in q.answer for q in found)


async def test_internal_question_picked_by_id_is_refused_without_fetching_it(
    vendor: aioresponses,
) -> None:
    vendor.get(EXTERNAL, payload=EXTERNAL_DOC)
    assert await make_client().question("1") is None
    assert not sent(vendor, "GET", "c3_library_questions")


async def test_top_list_only_offers_external_questions(vendor: aioresponses) -> None:
    vendor.get(EXTERNAL, payload=EXTERNAL_DOC)
    vendor.get(QUESTIONS, payload=SEARCH_DOC)
    popular = await make_client().popular()
    assert [q.id for q in popular] == ["2"]
    assert any("filter%5Btoplist%5D=true" in u or "filter[toplist]=true" in u
               for u in sent_urls(vendor))


async def test_operator_can_allow_internal_libraries(vendor: aioresponses) -> None:
    vendor.get(QUESTIONS, payload=SEARCH_DOC)
    found = await make_client(allow_internal_libraries=True).search("reset password")
    assert {q.id for q in found} == {"1", "2"}
    assert not sent(vendor, "GET", "c3_external_libraries")


async def test_answers_are_clean_text_with_links_kept(vendor: aioresponses) -> None:
    vendor.get(EXTERNAL, payload=EXTERNAL_DOC)
    vendor.get(QUESTIONS, payload=SEARCH_DOC)
    [best] = await make_client().search("reset password")
    assert best.answer == "Use the reset page (https://x.test/r)"
    assert best.title == "Reset your password"


async def test_best_match_comes_first(vendor: aioresponses) -> None:
    vendor.get(QUESTIONS, payload={"data": [
        question(7, "Opening hours", "9-17"),
        question(8, "Change the delivery address of an order", "In My orders"),
        question(9, "Delivery times", "2 days"),
    ]})
    found = await make_client(allow_internal_libraries=True).search("change delivery address")
    assert [q.id for q in found] == ["8", "9", "7"]


# -- library: requests -----------------------------------------------------------------
async def test_search_speaks_json_api_with_the_library_token(vendor: aioresponses) -> None:
    vendor.get(EXTERNAL, payload=EXTERNAL_DOC)
    vendor.get(QUESTIONS, payload=SEARCH_DOC)
    await make_client().search("  How do I RESET my password?? ")
    [call] = sent(vendor, "GET", "c3_library_questions")
    assert call.kwargs["headers"]["Accept"] == JSONAPI_MEDIA_TYPE
    assert call.kwargs["headers"]["Authorization"] == "Bearer library-jwt"
    assert call.kwargs["params"] == {"q_filter[phrase]": "how do i reset my password",
                                     "q_filter[option]": "all"}


async def test_one_token_serves_both_claims_when_only_cention_token_is_set(
    vendor: aioresponses,
) -> None:
    vendor.get(QUESTIONS, payload={"data": []})
    client = make_client(library_token=None, errand_token=None, token=SecretStr("one-jwt"),
                         allow_internal_libraries=True)
    await client.search("anything")
    [call] = sent(vendor, "GET", "c3_library_questions")
    assert call.kwargs["headers"]["Authorization"] == "Bearer one-jwt"


async def test_empty_question_does_not_call_cention(vendor: aioresponses) -> None:
    assert await make_client().search(" ?! ") == []
    assert not vendor.requests


# -- cache -----------------------------------------------------------------------------
async def test_same_question_within_ttl_is_answered_from_cache(vendor: aioresponses) -> None:
    clock = Clock()
    client = make_client(clock, cache_ttl_seconds=60)
    vendor.get(EXTERNAL, payload=EXTERNAL_DOC, repeat=True)
    vendor.get(QUESTIONS, payload=SEARCH_DOC, repeat=True)
    first = await client.search("Reset password?")
    again = await client.search("reset   PASSWORD")
    assert first == again
    assert len(sent(vendor, "GET", "c3_library_questions")) == 1
    assert len(sent(vendor, "GET", "c3_external_libraries")) == 1
    await client.search("another question")
    assert len(sent(vendor, "GET", "c3_library_questions")) == 2
    clock.now += 61
    await client.search("reset password")
    assert len(sent(vendor, "GET", "c3_library_questions")) == 3


async def test_failures_are_not_cached(vendor: aioresponses) -> None:
    client = make_client(retry_attempts=1, allow_internal_libraries=True)
    vendor.get(QUESTIONS, status=500)
    with pytest.raises(VendorUnavailable):
        await client.search("reset password")
    vendor.get(QUESTIONS, payload=SEARCH_DOC)
    assert len(await client.search("reset password")) == 2


@pytest.fixture
async def simulated() -> AsyncIterator[tuple[CentionSimulator, str]]:
    sim = CentionSimulator()
    root = web.Application()
    root.add_subapp("/cention", sim.app())
    async with TestServer(root, host="127.0.0.1") as server:
        yield sim, str(server.make_url("")).rstrip("/")


def sandbox_client(url: str, **changes: Any) -> CentionClient:
    config = CentionSettings().for_sandbox(url).model_copy(update=changes)
    return CentionClient(config)


async def test_concurrent_identical_questions_share_one_call(
    simulated: tuple[CentionSimulator, str],
) -> None:
    sim, url = simulated
    sim.latency = 0.05
    client = sandbox_client(url)
    results = await asyncio.gather(*(client.search("reset my password") for _ in range(10)))
    assert all(r == results[0] for r in results) and results[0]
    assert sim.calls["GET /cention/s/{workspace}/capi/json/c3_library_questions"] == 1
    assert sim.calls["GET /cention/s/{workspace}/capi/json/c3_external_libraries"] == 1


async def test_simulated_library_never_leaks_internal_answers(
    simulated: tuple[CentionSimulator, str],
) -> None:
    _, url = simulated
    client = sandbox_client(url)
    for phrase in ("admin console master key", "password reset locked account", "help me",
                   "escalate second line"):
        for found in await client.search(phrase):
            assert "INTERNAL" not in found.answer, phrase
    assert await client.question("1") is None
    assert await client.question("5") is None
    assert [q.id for q in await client.popular()] == ["2", "6"]
    returned = await client.question("10")  # through an external sub-library
    assert returned is not None and returned.title == "How do I return an item?"


# -- errands ---------------------------------------------------------------------------
async def test_errand_is_created_with_json_api_and_the_errand_token(vendor: aioresponses) -> None:
    vendor.post(f"{API}/c3_new_errands", status=201,
                payload={"data": {"type": "c3_new_errands", "id": "511055"}})
    errand_id = await make_client().create_errand(NewErrand(
        message_id="rasa-abc", name="Ann", email="ann@example.com", subject="Parcel",
        body="Customer: where is my parcel?", extradata={"conversation_id": "conv-1"}))
    assert errand_id == "511055"
    [call] = sent(vendor, "POST", "c3_new_errands")
    headers = call.kwargs["headers"]
    assert headers["Content-Type"] == JSONAPI_MEDIA_TYPE
    assert headers["Accept"] == JSONAPI_MEDIA_TYPE
    assert headers["Authorization"] == "Bearer errand-jwt"
    body = json.loads(call.kwargs["data"])
    assert body["data"]["type"] == "c3_new_errands"
    msg = body["data"]["attributes"]["msg"]
    assert msg == {"message_id": "rasa-abc", "name": "Ann", "from": "ann@example.com",
                   "subject": "Parcel", "body": "Customer: where is my parcel?",
                   "html_body": "", "attachments": []}
    assert body["data"]["attributes"]["extradata"] == {"message_id": "rasa-abc",
                                                       "conversation_id": "conv-1"}


ERRAND = NewErrand("m-1", "Ann", "ann@example.com", "Subject", "Body")


@pytest.mark.parametrize(("reply", "error"), [
    ({"status": 422, "payload": {"errors": [{"status": "422", "title": "Invalid",
                                             "detail": "from is not an address"}]}},
     RejectedInput),
    ({"status": 401, "payload": {"errors": [{"status": "401", "title": "Unauthorized"}]}},
     AuthenticationError),
    ({"status": 500, "body": "<html>oops</html>"}, VendorUnavailable),
    ({"status": 201, "body": "<html>not json</html>"}, MalformedReply),
    ({"status": 201, "payload": {"data": None}}, MalformedReply),
    ({"status": 201, "payload": {"data": {"type": "c3_something_else", "id": "1"}}},
     MalformedReply),
    ({"status": 201, "payload": ["not", "a", "document"]}, MalformedReply),
    ({"status": 200, "payload": {"errors": [{"title": "Errand not created"}]}}, RejectedInput),
])
async def test_errand_failures_become_typed_errors(
    vendor: aioresponses, reply: dict[str, Any], error: type[Exception],
) -> None:
    vendor.post(f"{API}/c3_new_errands", **reply)
    with pytest.raises(error):
        await make_client().create_errand(ERRAND)


async def test_json_api_error_text_is_kept_for_the_logs(vendor: aioresponses) -> None:
    vendor.post(f"{API}/c3_new_errands", status=422, payload={"errors": [
        {"status": "422", "title": "Invalid", "detail": "subject too long"}]})
    with pytest.raises(RejectedInput) as caught:
        await make_client().create_errand(ERRAND)
    assert caught.value.vendor_message == "422 - Invalid - subject too long"
    assert caught.value.status == 422


async def test_errand_post_is_not_repeated_after_a_server_error(vendor: aioresponses) -> None:
    vendor.post(f"{API}/c3_new_errands", status=500, repeat=True)
    with pytest.raises(VendorUnavailable):
        await make_client(retry_attempts=3).create_errand(ERRAND)
    assert len(sent(vendor, "POST", "c3_new_errands")) == 1


def test_queries_are_normalised_for_the_cache() -> None:
    assert normalise_query("  How do I RESET my password?? ") == "how do i reset my password"
    assert normalise_query("?!") == ""

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
from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from pydantic import SecretStr

from rasa_service_desk.clients.cention.client import (
    JSONAPI_MEDIA_TYPE,
    CentionClient,
    NewErrand,
    normalise_query,
)
from rasa_service_desk.clients.cention.errands import (
    ClosingUser,
    ContactCard,
    ErrandAnswer,
    FollowUpOptions,
    follow_up_options,
    format_time,
)
from rasa_service_desk.clients.cention.models import error_text
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.compat import copy_model
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import HttpClient, RetryPolicy, close_shared_sessions
from rasa_service_desk.sandbox.cention import CentionSimulator
from rasa_service_desk.sandbox.core import serve_together

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
    # The parameters handed to aiohttp: aioresponses 0.7.6 with aiohttp 3.9 (Rasa 3.6's
    # pins) records them encoded twice, although aiohttp sends them encoded once.
    assert any(call.kwargs.get("params") == {"filter[toplist]": "true"}
               for (verb, _), calls in vendor.requests.items() if verb == "GET"
               for call in calls)


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
    assert call.kwargs["params"] == {"q_filter[phrase]": "reset password",  # keywords
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
    root = serve_together({"cention": sim})
    async with TestServer(root, host="127.0.0.1") as server:
        yield sim, str(server.make_url("")).rstrip("/")


def sandbox_client(url: str, **changes: Any) -> CentionClient:
    config = copy_model(CentionSettings().for_sandbox(url), **changes)
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


# -- errand follow-ups: report, closing, contact cards ------------------------------------
class FollowUpSettings(CentionSettings):
    """The per-claim tokens of the follow-ups, declared here until `CentionSettings` has
    them (the client reads them with defaults either way)."""

    report_token: SecretStr | None = None
    contact_token: SecretStr | None = None


def follow_up_client(**changes: Any) -> CentionClient:
    values: dict[str, Any] = {"base_url": BASE, "library_token": SecretStr("library-jwt"),
                              "errand_token": SecretStr("errand-jwt"), "retry_attempts": 2}
    values.update(changes)
    config = FollowUpSettings(**values)
    http = HttpClient("cention", timeout=2, retry=RetryPolicy(
        attempts=config.retry_attempts, initial_wait=0, max_wait=0, jitter=0),
        error_message=error_text)
    return CentionClient(config, http=http, clock=Clock())


REPORT = re.compile(re.escape(f"{API}/c3_errand_reports/33") + r"(\?.*)?$")
DIRTY = f"{API}/c3_dirty_errand_list"


def report_doc(acquired: bool = False, answered: bool = False, closed: bool = False,
               changed: bool | None = True, **data: Any) -> dict[str, Any]:
    """Shaped like the documented c3_errand_reports sample (the attributes the bot asks for)."""
    attributes: dict[str, Any] = {
        "actions": [
            {"id": 83, "note": "Errand 33 was opened by agent System Administrator at ...",
             "origin": "System Administrator", "time": "2015-07-16 20:50:17 +0800 MYT",
             "timeStamp": 1437051017},
            {"id": 111, "note": "Errand 33 was opened by agent System Administrator at ...",
             "origin": "System Administrator", "time": "2015-07-17 17:07:48 +0800 MYT",
             "timeStamp": 1437124068},
        ],
        "basic": {"acquired": acquired, "data": {
            "id": 33, "displayId": "33", "agent": "System Administrator", "subject": "test",
            "status": "<img src=\"/ng/img/icons/ACTION_ANSWER.png\" title=\"x\"/> ",
            "closed": closed, "deleted": False, "answered": answered, **data},
            "groupWith": 0, "hasChild": False, "id": 33, "threadId": 32},
    }
    if changed is not None:
        attributes["changed"] = changed
    return {"data": {"type": "c3_errand_reports", "id": "33", "attributes": attributes}}


@pytest.mark.parametrize(("flags", "state"), [
    ({}, "waiting"),
    ({"acquired": True}, "in_progress"),
    ({"acquired": True, "answered": True, "closed": True}, "answered"),
    ({"closed": True}, "closed"),
    ({"deleted": True}, "closed"),
])
async def test_errand_report_gives_the_state_in_the_customers_terms(
    vendor: aioresponses, flags: dict[str, bool], state: str,
) -> None:
    vendor.get(REPORT, payload=report_doc(**flags))
    vendor.post(DIRTY, payload={"data": {"type": "c3_dirty_errand_list", "id": "0"}})
    report = await follow_up_client().errand_report("33")
    assert report is not None and report.state == state
    assert report.last_action_at is not None and report.last_action_at.timestamp() == 1437124068
    assert report.subject == "test"
    assert "<" not in report.agent


async def test_errand_report_asks_only_the_fields_it_reads_with_the_report_token(
    vendor: aioresponses,
) -> None:
    vendor.get(REPORT, payload=report_doc(changed=False))
    await follow_up_client(report_token=SecretStr("report-jwt")).errand_report("33")
    [call] = sent(vendor, "GET", "c3_errand_reports/33")
    assert call.kwargs["params"] == {"fields[c3_errand_reports]": "actions,basic,changed"}
    assert call.kwargs["headers"]["Authorization"] == "Bearer report-jwt"
    assert call.kwargs["headers"]["Accept"] == JSONAPI_MEDIA_TYPE
    assert not sent(vendor, "POST", "c3_dirty_errand_list")  # it had not changed


@pytest.mark.parametrize(("tokens", "expected"), [
    ({}, "errand-jwt"),                                   # one JWT with several claims
    ({"token": SecretStr("any-claim-jwt")}, "any-claim-jwt"),
    ({"report_token": SecretStr("report-jwt"), "token": SecretStr("x")}, "report-jwt"),
])
async def test_report_token_falls_back_to_cention_token_then_the_errand_token(
    vendor: aioresponses, tokens: dict[str, Any], expected: str,
) -> None:
    vendor.get(REPORT, payload=report_doc(changed=False))
    await follow_up_client(**tokens).errand_report("33")
    [call] = sent(vendor, "GET", "c3_errand_reports/33")
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {expected}"


async def test_reading_a_report_sets_the_dirty_flag_again_for_other_integrations(
    vendor: aioresponses,
) -> None:
    vendor.get(REPORT, payload=report_doc(changed=True))
    vendor.post(DIRTY, payload={"data": {"type": "c3_dirty_errand_list", "id": "0"}})
    await follow_up_client().errand_report("33")
    [call] = sent(vendor, "POST", "c3_dirty_errand_list")
    assert json.loads(call.kwargs["data"]) == {"data": {
        "type": "c3_dirty_errand_list", "attributes": {"errands": [33]}}}
    # `changed` missing: the flag is set again too, to be safe; a failure there is only logged.
    vendor.get(REPORT, payload=report_doc(changed=None))
    vendor.post(DIRTY, status=500, repeat=True)
    report = await follow_up_client().errand_report("33")
    assert report is not None and report.state == "waiting"


async def test_unknown_errand_report_is_none_and_odd_ids_are_not_sent(
    vendor: aioresponses,
) -> None:
    vendor.get(REPORT, status=404, payload={"errors": [{"status": "404", "title": "Not Found"}]})
    assert await follow_up_client().errand_report("33") is None
    for odd in ("", "abc", "1/../2", "33?x=1", "1" * 19):
        assert await follow_up_client().errand_report(odd) is None
    assert len(sent_urls(vendor)) == 1


async def test_report_refused_for_a_missing_claim_names_the_claim(vendor: aioresponses) -> None:
    vendor.get(REPORT, status=403, payload={"errors": [{"status": "403", "title": "Forbidden"}]})
    with pytest.raises(AuthenticationError) as caught:
        await follow_up_client().errand_report("33")
    assert "Access to errand data" in str(caught.value)
    assert "CENTION_REPORT_TOKEN" in str(caught.value)


@pytest.mark.parametrize("payload", [
    {"data": {"type": "c3_errand_reports", "id": "33", "attributes": {}}},
    {"data": [], "included": []},
    {"data": {"type": "c3_errand_reports", "id": "33", "attributes": {"basic": []}}},
])
async def test_malformed_report_is_a_typed_error(
    vendor: aioresponses, payload: dict[str, Any],
) -> None:
    vendor.get(REPORT, payload=payload)
    with pytest.raises(MalformedReply):
        await follow_up_client().errand_report("33")


async def test_end_errand_closes_it_as_the_closing_user(vendor: aioresponses) -> None:
    vendor.post(f"{API}/c3_end_errands", body="")
    user = ClosingUser("1234")
    await follow_up_client().end_errand("4321", ErrandAnswer(user, "Answer subject", "Solved"))
    [call] = sent(vendor, "POST", "c3_end_errands")
    assert call.kwargs["headers"]["Authorization"] == "Bearer errand-jwt"
    assert call.kwargs["headers"]["Content-Type"] == JSONAPI_MEDIA_TYPE
    assert json.loads(call.kwargs["data"]) == {"data": {"type": "c3_end_errands", "attributes": {
        "errand_id": 4321, "answer": {"user_type": "cention", "user_id": "1234",
                                      "subject": "Answer subject", "body": "Solved",
                                      "html_body": ""}}}}


@pytest.mark.parametrize(("reply", "error"), [
    ({"status": 200, "body": "<html>ok</html>"}, None),   # undocumented reply: success
    ({"status": 200, "payload": {"data": {"type": "c3_end_errands", "id": "4321"}}}, None),
    ({"status": 200, "payload": {"errors": [{"title": "not closed"}]}}, RejectedInput),
    ({"status": 409, "payload": {"errors": [{"status": "409", "title": "Conflict"}]}},
     RejectedInput),
    ({"status": 500}, VendorUnavailable),
])
async def test_end_errand_replies(
    vendor: aioresponses, reply: dict[str, Any], error: type[Exception] | None,
) -> None:
    vendor.post(f"{API}/c3_end_errands", **reply)
    answer = ErrandAnswer(ClosingUser("1"))
    if error is None:
        await follow_up_client().end_errand("4321", answer)
    else:
        with pytest.raises(error):
            await follow_up_client().end_errand("4321", answer)
    assert len(sent(vendor, "POST", "c3_end_errands")) == 1  # never sent twice


async def test_errand_can_carry_a_cuid_or_be_created_closed(vendor: aioresponses) -> None:
    vendor.post(f"{API}/c3_new_errands", status=201, repeat=True,
                payload={"data": {"type": "c3_new_errands", "id": "511056"}})
    client = follow_up_client()
    await client.create_errand(NewErrand("m-2", "Ann", "ann@example.com", "S", "B",
                                         cuid="5462-13-6485"))
    await client.create_errand(NewErrand(
        "m-3", "", "chat-1@chat.invalid", "Opening hours", "transcript",
        answer=ErrandAnswer(ClosingUser("7", "solidus"), "Opening hours", "9-17", "<p>9-17</p>")))
    first, second = (json.loads(c.kwargs["data"])["data"]["attributes"]
                     for c in sent(vendor, "POST", "c3_new_errands"))
    assert first["cuid"] == "5462-13-6485" and "answer" not in first
    assert "cuid" not in second
    assert second["answer"] == {"user_type": "solidus", "user_id": "7", "subject": "Opening hours",
                                "body": "9-17", "html_body": "<p>9-17</p>"}


async def test_contact_card_is_sent_like_the_sample_with_the_contact_token(
    vendor: aioresponses,
) -> None:
    vendor.post(f"{API}/c3_contact_cards", payload={"data": {
        "type": "c3_contact_cards", "id": "13", "attributes": {"c3_id": 13, "contacts": {}}}})
    card = ContactCard(name="Ann", emails=("ann@example.com", "ann@example.com"),
                       phones=("+46701234567",))
    card_id = await follow_up_client(contact_token=SecretStr("contact-jwt")).save_contact_card(
        card)
    assert card_id == "13"
    [call] = sent(vendor, "POST", "c3_contact_cards")
    assert call.kwargs["headers"]["Authorization"] == "Bearer contact-jwt"
    assert json.loads(call.kwargs["data"]) == {"data": {"type": "c3_contact_cards", "attributes": {
        "contacts": {"email": ["ann@example.com"], "voice": ["+46701234567"], "name": "Ann"}}}}


async def test_contact_card_failures_are_typed(vendor: aioresponses) -> None:
    with pytest.raises(RejectedInput):  # nothing to save: not even sent
        await follow_up_client().save_contact_card(ContactCard(name="Ann"))
    vendor.post(f"{API}/c3_contact_cards", status=403)
    with pytest.raises(AuthenticationError) as caught:
        await follow_up_client().save_contact_card(ContactCard(emails=("a@example.com",)))
    assert "CENTION_CONTACT_TOKEN" in str(caught.value)
    vendor.post(f"{API}/c3_contact_cards", payload={"data": None})
    with pytest.raises(MalformedReply):
        await follow_up_client().save_contact_card(ContactCard(emails=("a@example.com",)))


async def test_follow_ups_against_the_simulator(simulated: tuple[CentionSimulator, str]) -> None:
    sim, url = simulated
    client = sandbox_client(url)
    errand_id = await client.create_errand(NewErrand("m-9", "Ann", "ann@example.com",
                                                     "Parcel", "Where is it?"))
    report = await client.errand_report(errand_id)
    assert report is not None and report.state == "waiting" and report.changed is True
    # Other integrations still see the errand as changed after the bot read it.
    assert sim.errands[errand_id]["dirty"] is True
    assert await client.errand_report("999999") is None
    await client.end_errand(errand_id, ErrandAnswer(ClosingUser("1"), "Parcel", "Solved"))
    closed = await client.errand_report(errand_id)
    assert closed is not None and closed.state == "answered"
    with pytest.raises(RejectedInput) as caught:
        await client.end_errand(errand_id, ErrandAnswer(ClosingUser("1")))
    assert caught.value.status == 409
    assert await client.save_contact_card(ContactCard("Ann", ("ann@example.com",))) == "13"
    assert await client.save_contact_card(ContactCard("", ("ann@example.com",),
                                                      ("+46701234567",))) == "13"
    assert sim.contact_cards[13]["contacts"] == {
        "name": "Ann", "email": ["ann@example.com"], "voice": ["+46701234567"]}


class OperatorSettings(FollowUpSettings):
    """The follow-up switches, declared here until `CentionSettings` has them."""

    show_agent_names: bool = False
    closing_user_id: str = ""
    closing_user_type: str = "cention"
    contact_card: bool = False
    contact_card_cuid_slot: str = ""
    record_resolved: bool = False
    timezone: str = "UTC"


def test_follow_up_options_have_safe_defaults_whatever_the_settings_declare() -> None:
    plain = follow_up_options(settings())
    assert plain == FollowUpOptions()  # nothing shown, closed, saved or recorded
    assert plain.closing_user is None and not plain.show_agent_names
    # The simulator closes errands as its demo user unless one is configured.
    assert follow_up_options(settings(), sandboxed=True).closing_user == ClosingUser("1")
    configured = follow_up_options(OperatorSettings(
        closing_user_id=" 42 ", closing_user_type="solidus", show_agent_names=True,
        contact_card=True, contact_card_cuid_slot="customer_number", record_resolved=True,
        timezone="Europe/Stockholm"), sandboxed=True)
    assert configured.closing_user == ClosingUser("42", "solidus")
    assert configured.show_agent_names and configured.contact_card and configured.record_resolved
    assert configured.cuid_slot == "customer_number"
    moment = datetime(2024, 5, 2, 12, 5, tzinfo=timezone.utc)
    assert format_time(moment, configured.timezone) == "2024-05-02 14:05 CEST"
    assert format_time(moment, plain.timezone) == "2024-05-02 12:05 UTC"
    # CentionSettings itself refuses an unknown time zone at start.
    with pytest.raises(ConfigurationError, match="CENTION_TIMEZONE"):
        CentionSettings.load(env_file=None, timezone="Mars/Olympus")
    declared = follow_up_options(CentionSettings(
        closing_user_id="42", contact_card=True, timezone="Europe/Stockholm"))
    assert declared.closing_user == ClosingUser("42") and declared.contact_card

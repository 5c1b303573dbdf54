"""LoopClient against the Loop simulator (in process) and against recorded failures."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.loop.client import (
    DEFAULT_LOCATIONS_CACHE_SECONDS,
    LoopClient,
    LoopUser,
    error_message,
    iso_timestamp,
    recent_first,
)
from rasa_service_desk.clients.loop.models import LoopSummary, localized
from rasa_service_desk.clients.loop.settings import SANDBOX_AUTH_TOKEN, LoopSettings
from rasa_service_desk.clients.redact import register_secrets
from rasa_service_desk.sandbox.core import Fault
from rasa_service_desk.sandbox.loop import LOBBY, RESTAURANT, LoopSimulator

LOCATION_1300 = "529652b0121d5fa206011a97"
LOCATION_1200 = "529652b0121d5fa206011a98"
ROOM_FIELD = "529652b0121d5fa206011a97"
Q_SWIFT, Q_FOOD, Q_CLEAN, Q_ELSE = (q["categoryId"] for q in RESTAURANT["questions"])
FAKE = "https://loop.test/api/v1"
TOKEN = "loop-token-3c4d5e6f"


def settings(base_url: str, **overrides: Any) -> LoopSettings:
    values: dict[str, Any] = {"base_url": base_url, "auth_token": SANDBOX_AUTH_TOKEN,
                              "location": "1300", "loop_type": "Guest request",
                              "device_id": "Rasa bot 1", "retry_attempts": 3}
    values.update(overrides)
    return LoopSettings(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def simulator() -> LoopSimulator:
    return LoopSimulator()


@pytest.fixture
async def base_url(simulator: LoopSimulator) -> AsyncIterator[str]:
    server = TestServer(simulator.app())
    await server.start_server()
    yield str(server.make_url("/api/v1"))
    await server.close()


# -- behaviour against the simulator -------------------------------------------------------
async def test_location_shortcode_is_resolved_once(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    first = await client.location()
    again = await client.location()
    assert first.id == again.id == LOCATION_1300
    assert simulator.calls["GET /api/v1/locations/{shortcode}"] == 1


async def test_customers_arriving_together_cause_one_lookup_of_each_kind(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    simulator.latency = 0.05
    surveys = await asyncio.gather(*(client.survey() for _ in range(10)))
    ids = await asyncio.gather(*(client.custom_field("room") for _ in range(10)))
    types = await asyncio.gather(*(client.loop_type_id() for _ in range(10)))
    assert {s.id for s in surveys} == {RESTAURANT["id"]}
    assert {f.id for f in ids} == {ROOM_FIELD} and len(set(types)) == 1
    for route in ("GET /api/v1/locations/{shortcode}", "GET /api/v1/surveys",
                  "GET /api/v1/customfields/{shortcode}", "GET /api/v1/looptypes"):
        assert simulator.calls[route] == 1, route


async def test_location_by_id_is_checked_against_the_listing(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url, location=LOCATION_1200))
    assert (await client.location()).shortcode == "1200"
    await client.location()
    assert simulator.calls["GET /api/v1/locations"] == 1
    unknown = LoopClient(settings(base_url, location="0" * 24))
    with pytest.raises(ConfigurationError, match="LOOP_LOCATION"):
        await unknown.location()


async def test_unknown_shortcodes_are_configuration_errors(base_url: str) -> None:
    client = LoopClient(settings(base_url, location="9999", survey="nope"))
    with pytest.raises(ConfigurationError, match="LOOP_LOCATION"):
        await client.location()
    with pytest.raises(ConfigurationError, match="LOOP_SURVEY"):
        await client.survey()
    with pytest.raises(ConfigurationError, match="LOOP_CUSTOM_FIELDS"):
        await client.custom_field("nope")
    with pytest.raises(ConfigurationError, match="LOOP_LOOP_TYPE"):
        await LoopClient(settings(base_url, loop_type="Nope")).loop_type_id()


async def test_location_without_a_survey_is_a_configuration_error_naming_the_settings(
    simulator: LoopSimulator, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.location_surveys[LOCATION_1300] = None
    client = LoopClient(settings(base_url))
    with pytest.raises(ConfigurationError, match=r"LOOP_LOCATION.*LOOP_SURVEY") as caught:
        await client.survey()
    assert caught.value.status == 404
    assert simulator.calls["GET /api/v1/surveys"] == 1  # not retried: a setting to fix
    assert "check LOOP_LOCATION, or set LOOP_SURVEY" in caplog.text
    assert SANDBOX_AUTH_TOKEN not in caplog.text


async def test_survey_of_the_location_is_cached_for_a_while(
    simulator: LoopSimulator, base_url: str
) -> None:
    clock = Clock()
    client = LoopClient(settings(base_url, survey_cache_seconds=60), clock=clock)
    survey = await client.survey()
    assert survey.id == RESTAURANT["id"] and survey.randomized
    assert [q.categoryId for q in survey.questions] == [Q_SWIFT, Q_FOOD, Q_CLEAN, Q_ELSE]
    clock.now += 59
    await client.survey()
    assert simulator.calls["GET /api/v1/surveys"] == 1
    clock.now += 2
    await client.survey()
    assert simulator.calls["GET /api/v1/surveys"] == 2


async def test_survey_by_shortcode_setting(simulator: LoopSimulator, base_url: str) -> None:
    survey = await LoopClient(settings(base_url, survey="lobby")).survey()
    assert survey.id == LOBBY["id"] and not survey.randomized
    assert simulator.calls["GET /api/v1/surveys/{shortcode}"] == 1


async def test_submit_response_sends_typed_answers_and_an_iso_timestamp(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    survey = await client.survey()
    receipt = await client.submit_response(
        survey, {Q_SWIFT: True, Q_FOOD: True, Q_ELSE: "Your bacon is the best!"},
        when=datetime(2015, 4, 14, 22, 33, 36, 164000, tzinfo=timezone.utc))
    assert receipt.loopId is None
    [stored] = simulator.state()["responses"]
    assert stored == {
        "id": receipt.id, "survey": RESTAURANT["id"], "location": LOCATION_1300,
        "source": "chatbot", "deviceId": "Rasa bot 1", "timestamp": "2015-04-14T22:33:36.164Z",
        "responses": [{"categoryId": Q_SWIFT, "value": True},
                      {"categoryId": Q_FOOD, "value": True},
                      {"categoryId": Q_ELSE, "value": "Your bacon is the best!"}],
    }


async def test_a_negative_response_returns_the_opened_loop(base_url: str) -> None:
    client = LoopClient(settings(base_url))
    receipt = await client.submit_response(await client.survey(), {Q_FOOD: False})
    assert receipt.loopId and receipt.loopUrl and receipt.loopUrl.endswith(receipt.loopId)


async def test_answers_that_do_not_fit_the_survey_are_refused_before_sending(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    survey = await client.survey()
    for answers in ({Q_SWIFT: "yes"}, {Q_ELSE: True}, {"unknown": True}, {}):
        with pytest.raises(RejectedInput):
            await client.submit_response(survey, answers)
    assert simulator.calls["POST /api/v1/responses"] == 0


async def test_create_loop_resolves_type_and_custom_fields_once(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    user = LoopUser(name="Jason", email="jason@example.com", sms="+16135551234")
    created = await client.create_loop("I've run out of towels!", title="Towels", user=user,
                                       custom_fields={"room": "301"})
    await client.create_loop("And soap, please.", custom_fields={"room": "301"})
    first, second = simulator.state()["loops"]
    assert first["id"] == created.id and created.url
    assert first["customFields"] == [{ROOM_FIELD: "301"}]
    assert first["loopType"] == "5296530b121d5fa206011b01" and first["title"] == "Towels"
    assert first["location"]["id"] == LOCATION_1300
    [customer] = simulator.state()["users"]
    assert customer["email"] == "jason@example.com" and first["creatorId"] == customer["id"]
    assert second["creatorId"] is None
    assert [loop.id for loop in await client.loops_for_customer(customer["id"])] == [created.id]
    assert simulator.calls["GET /api/v1/looptypes"] == 1
    assert simulator.calls["GET /api/v1/customfields/{shortcode}"] == 1
    assert simulator.calls["GET /api/v1/locations/{shortcode}"] == 1


async def test_a_failed_loop_creation_is_not_repeated(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    simulator.inject(Fault(status=500, path="/loops", method="POST", times=3))
    with pytest.raises(VendorUnavailable):
        await client.create_loop("Broken lamp")
    assert simulator.calls["POST /api/v1/loops"] == 1
    assert simulator.state()["loops"] == []


async def test_token_travels_as_query_parameter_and_never_reaches_the_logs(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    register_secrets([SANDBOX_AUTH_TOKEN])
    caplog.set_level(logging.DEBUG)
    client = LoopClient(settings(base_url))
    await client.create_loop("Broken lamp", user=LoopUser(email="jason@example.com"))
    # Only the client's own lines: the in-process test server's access log is the vendor side.
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith("rasa_service_desk.clients"))
    assert "authToken=***" in ours
    assert SANDBOX_AUTH_TOKEN not in ours
    assert "jason@example.com" not in ours


# -- follow-ups: locations, references, guests, invite URLs --------------------------------
async def test_the_location_listing_is_cached_for_an_hour(
    simulator: LoopSimulator, base_url: str
) -> None:
    clock = Clock()
    client = LoopClient(settings(base_url), clock=clock)
    listings = await asyncio.gather(*(client.locations() for _ in range(5)))
    assert [[loc.shortcode for loc in listing] for listing in listings] == [["1300", "1200"]] * 5
    assert (await client.location(LOCATION_1200)).shortcode == "1200"  # from the listing
    clock.now += DEFAULT_LOCATIONS_CACHE_SECONDS - 1
    await client.locations()
    assert simulator.calls["GET /api/v1/locations"] == 1
    clock.now += 2
    await client.locations()
    assert simulator.calls["GET /api/v1/locations"] == 2


async def test_survey_response_and_loop_for_a_chosen_location(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    chosen = await client.location(LOCATION_1200)
    survey = await client.survey(chosen)
    assert survey.id == LOBBY["id"]
    assert (await client.survey()).id == RESTAURANT["id"]  # LOOP_LOCATION's, cached apart
    answers = {LOBBY["questions"][0]["categoryId"]: True,
               LOBBY["questions"][2]["categoryId"]: "Faster check-in"}
    await client.submit_response(survey, answers, location=chosen)
    await client.create_loop("Cold room", location=LOCATION_1200)
    assert simulator.state()["responses"][0]["location"] == LOCATION_1200
    assert simulator.state()["loops"][0]["location"]["id"] == LOCATION_1200


async def test_a_reference_is_recorded_in_the_first_text_answer(
    simulator: LoopSimulator, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = LoopClient(settings(base_url))
    survey = await client.survey()
    await client.submit_response(survey, {Q_SWIFT: True, Q_ELSE: "Quick, thanks."},
                                 reference="Cention errand 511055")
    await client.submit_response(survey, {Q_CLEAN: True, Q_SWIFT: False},
                                 reference="Cention errand 7")
    first, second = simulator.state()["responses"]
    assert first["responses"] == [{"categoryId": Q_SWIFT, "value": True},
                                  {"categoryId": Q_ELSE,
                                   "value": "Quick, thanks.\n\n[Cention errand 511055]"}]
    # Skipped text question: the reference is its only content, in survey order.
    assert second["responses"] == [{"categoryId": Q_SWIFT, "value": False},
                                   {"categoryId": Q_CLEAN, "value": True},
                                   {"categoryId": Q_ELSE, "value": "[Cention errand 7]"}]
    yes_no_only = survey.__class__(id="s", questions=[survey.questions[0]])
    with caplog.at_level(logging.WARNING):
        kept = LoopClient.with_reference(yes_no_only, [{"categoryId": Q_SWIFT, "value": True}],
                                         "Cention errand 7")
    assert kept == [{"categoryId": Q_SWIFT, "value": True}]
    assert "no text question" in caplog.text


async def test_guests_are_found_by_address_and_their_loops_listed_most_recent_first(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    first = await client.create_loop("Towels", user=LoopUser(email="jason@example.com"))
    second = await client.create_loop("Soap", user=LoopUser(email="jason@example.com"))
    for loop, millis in zip(simulator.loops, (1_462_201_128_558, 1_462_301_128_558),
                            strict=True):
        loop["created_on"] = millis
    [guest] = await client.users(email="jason@example.com")
    loops = await client.loops_for_customer(guest.id)
    assert [loop.id for loop in loops] == [second.id, first.id]
    assert loops[0].state == "open" and loops[0].location_title == "Andros Island Bahamas"
    assert [u.username for u in await client.users(sms="5556135555")] == ["benria", "benria2"]
    assert await client.users(email="nobody@example.com") == []
    with pytest.raises(ValueError):
        await client.users()
    assert simulator.calls["GET /api/v1/users/"] == 3


def test_recent_first_keeps_undated_loops_last() -> None:
    loops = [LoopSummary(id="a"), LoopSummary(id="b", created_on=1),
             LoopSummary(id="c", created_on=3), LoopSummary(id="d")]
    assert [loop.id for loop in recent_first(loops)] == ["c", "b", "a", "d"]
    summary = LoopSummary(id="x", location={"title": {"fr": "Lobby"}, "timezone": "UTC"})
    assert (summary.location_title, summary.location_timezone) == ("Lobby", "UTC")
    assert LoopSummary(id="y", location="?").location_title == ""


async def test_invite_urls_generic_or_for_a_guest(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    generic = await client.invite_url()
    assert generic.guestId is None and generic.url.endswith("/loop/create/1300")
    assert simulator.state()["users"] == []
    personal = await client.invite_url(location=LOCATION_1200,
                                       user=LoopUser(email="jason@example.com"))
    [guest] = simulator.state()["users"]
    assert personal.guestId == guest["id"]
    assert personal.url.endswith(f"/loop/create/1200?_uid={guest['id']}")
    assert simulator.invites[-1] == {"url": personal.url, "guestId": guest["id"],
                                     "locationId": LOCATION_1200}


async def test_a_failed_invite_request_is_not_repeated(
    simulator: LoopSimulator, base_url: str
) -> None:
    client = LoopClient(settings(base_url))
    await client.location()
    simulator.inject(Fault(status=500, path="/invite/url", times=3))
    with pytest.raises(VendorUnavailable):
        await client.invite_url()
    assert simulator.calls["POST /api/v1/invite/url"] == 1


# -- recorded replies: shapes the documentation leaves open, and failures -------------------
def fake_client(**overrides: Any) -> LoopClient:
    values: dict[str, Any] = {"auth_token": TOKEN, "retry_attempts": 2}
    values.update(overrides)
    return LoopClient(settings(FAKE, **values))


def url(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"{FAKE}{path}") + r"\?.*authToken=" + TOKEN)


async def test_lenient_reply_shapes() -> None:
    with aioresponses() as mocked:
        mocked.get(url("/locations/1300"),
                   payload={"location": {"id": LOCATION_1300, "shortcode": "1300"}})
        mocked.get(url("/looptypes"), payload=[{"id": "t1", "title": "Complaint"}])
        mocked.get(url("/surveys/lobby"), payload={"surveys": [LOBBY]})
        mocked.post(url("/loops"), payload={"loopId": "l1", "loopUrl": "https://x/l1"})
        client = fake_client(loop_type="complaint", survey="lobby")
        assert (await client.location()).id == LOCATION_1300
        assert await client.loop_type_id() == "t1"
        assert (await client.survey()).code == "lobby"
        created = await client.create_loop("Hello")
        assert (created.id, created.url) == ("l1", "https://x/l1")


@pytest.mark.parametrize("status, error", [
    (401, AuthenticationError), (403, AuthenticationError), (400, RejectedInput),
    (404, ConfigurationError),
    (429, RateLimited), (503, VendorUnavailable), (500, VendorUnavailable),
])
async def test_statuses_become_typed_errors(status: int, error: type[Exception]) -> None:
    with aioresponses() as mocked:
        mocked.get(url("/surveys"), status=status, payload={"error": "nope"}, repeat=True,
                   headers={"Retry-After": "0"})
        client = fake_client()
        with pytest.raises(error):
            await client.survey_for_location(
                await _location(mocked, client))


async def _location(mocked: aioresponses, client: LoopClient) -> Any:
    mocked.get(url("/locations/1300"), payload={"id": LOCATION_1300, "shortcode": "1300"})
    return await client.location()


async def test_malformed_replies() -> None:
    with aioresponses() as mocked:
        mocked.get(url("/locations/1300"), body="<html>oops</html>")
        with pytest.raises(MalformedReply):
            await fake_client().location()
        mocked.get(url("/looptypes"), payload={"unexpected": True})
        with pytest.raises(MalformedReply):
            await fake_client().loop_types()
        mocked.get(url("/locations/1300"), payload={"shortcode": "1300"})
        with pytest.raises(MalformedReply):
            await fake_client().location()


async def test_timeout_is_vendor_unavailable() -> None:
    with aioresponses() as mocked:
        # asyncio's, which aiohttp raises (on Python 3.10 the built-in one is another class).
        mocked.get(url("/locations/1300"), exception=asyncio.TimeoutError(), repeat=True)
        with pytest.raises(VendorUnavailable, match="timed out"):
            await fake_client().location()


def test_configuration_is_required() -> None:
    with pytest.raises(ConfigurationError):
        LoopClient(settings(""))


def test_helpers() -> None:
    assert error_message({"error": "bad"}) == "bad"
    assert error_message({"error": {"message": "worse"}}) == "worse"
    assert error_message({"errors": ["a", "b"]}) == "a; b"
    assert error_message("x") == ""
    assert iso_timestamp(datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)) == \
        "2020-01-02T03:04:05.006Z"
    texts = {"en": "Hello", "fr": "Bonjour"}
    assert localized(texts, "fr-CA", "en") == "Bonjour"
    assert localized(texts, "de", "en") == "Hello"
    assert localized({"fr": "Bonjour"}, "de", "en") == "Bonjour"
    assert localized({}, "de", "en") == ""


def test_custom_fields_setting_is_checked() -> None:
    assert settings(FAKE, custom_fields='{"room_number": "room"}').custom_fields == {
        "room_number": "room"}
    for bad in ('["room"]', '{"room number": "room"}', '{"room_number": ""}'):
        with pytest.raises(ValueError):
            settings(FAKE, custom_fields=bad)

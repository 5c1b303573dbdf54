"""The Loop simulator answers like the documented API and refuses what Loop would refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rasa_service_desk.clients.loop.settings import SANDBOX_AUTH_TOKEN, SANDBOX_LOOP_TYPE
from rasa_service_desk.sandbox.core import Fault
from rasa_service_desk.sandbox.loop import LOBBY, RESTAURANT, LoopSimulator

TOKEN = {"authToken": SANDBOX_AUTH_TOKEN}
LOCATION_1300 = "529652b0121d5fa206011a97"
ROOM_FIELD = "529652b0121d5fa206011a97"
Q_SWIFT, Q_FOOD, Q_CLEAN, Q_ELSE = (q["categoryId"] for q in RESTAURANT["questions"])


@pytest.fixture
def simulator() -> LoopSimulator:
    return LoopSimulator()


@pytest.fixture
async def api(simulator: LoopSimulator) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(simulator.app())) as client:
        yield client


async def get(api: TestClient, path: str, **params: str) -> tuple[int, Any]:
    resp = await api.get(f"/api/v1{path}", params={**params, **TOKEN})
    return resp.status, await resp.json()


async def post(api: TestClient, path: str, body: Any) -> tuple[int, Any]:
    resp = await api.post(f"/api/v1{path}", params=TOKEN, json=body)
    return resp.status, await resp.json()


def response_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "source": "kiosk", "deviceId": "Front Desk Station 2", "location": LOCATION_1300,
        "responses": [{"categoryId": Q_SWIFT, "value": True},
                      {"categoryId": Q_ELSE, "value": "Your bacon is the best!"}],
        "timestamp": "2015-04-14T22:33:36.164Z",
    }
    return {**body, **overrides}


def loop_body(**overrides: Any) -> dict[str, Any]:
    body = {"source": "chatbot", "location": LOCATION_1300, "loopType": SANDBOX_LOOP_TYPE,
            "description": "I've run out of towels! Please help!"}
    return {**body, **overrides}


@pytest.mark.parametrize("params", [{}, {"authToken": "wrong"}])
async def test_every_route_needs_the_auth_token(api: TestClient, params: dict[str, str]) -> None:
    for path in ("/locations", "/surveys", "/looptypes", "/customfields/room"):
        resp = await api.get(f"/api/v1{path}", params=params)
        assert resp.status == 401
        assert "authToken" in (await resp.json())["error"]
    resp = await api.post("/api/v1/loops", params=params, json=loop_body())
    assert resp.status == 401


async def test_locations_list_and_by_shortcode(api: TestClient) -> None:
    status, body = await get(api, "/locations")
    assert status == 200
    assert [(loc["shortcode"], loc["title"]["en"]) for loc in body["locations"]] == [
        ("1300", "Andros Island Bahamas"), ("1200", "Costa Rica Salinas Bay")]
    status, body = await get(api, "/locations/1200")
    assert (status, body["id"]) == (200, "529652b0121d5fa206011a98")
    status, body = await get(api, "/locations/9999")
    assert status == 404


async def test_loop_types_and_custom_fields(api: TestClient) -> None:
    status, body = await get(api, "/looptypes")
    assert status == 200 and SANDBOX_LOOP_TYPE in [t["id"] for t in body["loopTypes"]]
    status, body = await get(api, "/customfields/room")
    assert body == {"id": ROOM_FIELD, "shortcode": "room", "title": {"en": "Room Number"},
                    "required": True}
    status, body = await get(api, "/customfields")
    assert [f["shortcode"] for f in body["customfields"]] == ["room", "booking"]
    assert (await get(api, "/customfields/nope"))[0] == 404


async def test_surveys_list_by_shortcode_and_by_location(api: TestClient) -> None:
    _, body = await get(api, "/surveys")
    assert [s["shortCode"] for s in body["surveys"]] == ["restaurant", "lobby"]
    _, body = await get(api, "/surveys/restaurant")
    assert body["questionOrderRandomization"] is True and len(body["questions"]) == 4
    for location in ("1300", LOCATION_1300):
        _, body = await get(api, "/surveys", location=location)
        assert [s["id"] for s in body["surveys"]] == [RESTAURANT["id"]]
    _, body = await get(api, "/surveys", location="1200")
    assert [s["id"] for s in body["surveys"]] == [LOBBY["id"]]
    assert await get(api, "/surveys", location="4242") == (404, {"error": "location not found"})


async def test_a_location_without_a_survey_answers_404(
    api: TestClient, simulator: LoopSimulator
) -> None:
    resp = await api.post("/_sandbox/settings", json={"location_surveys": {"1200": None}})
    assert resp.status == 200
    assert await get(api, "/surveys", location="1200") == (404, {"error": "survey not found"})
    await api.post("/_sandbox/settings", json={"location_surveys": {"1200": "restaurant"}})
    _, body = await get(api, "/surveys", location="1200")
    assert [s["id"] for s in body["surveys"]] == [RESTAURANT["id"]]
    simulator.reset()
    _, body = await get(api, "/surveys", location="1200")
    assert [s["id"] for s in body["surveys"]] == [LOBBY["id"]]


async def test_a_positive_response_is_stored_without_a_loop(
    api: TestClient, simulator: LoopSimulator
) -> None:
    status, body = await post(api, "/responses", response_body())
    assert status == 200 and set(body) == {"id"}
    [stored] = simulator.state()["responses"]
    assert stored["id"] == body["id"] and stored["survey"] == RESTAURANT["id"]
    assert stored["responses"][1]["value"] == "Your bacon is the best!"


async def test_a_negative_response_opens_a_loop_unless_switched_off(
    api: TestClient, simulator: LoopSimulator
) -> None:
    negative = response_body(responses=[{"categoryId": Q_FOOD, "value": False}])
    status, body = await post(api, "/responses", negative)
    assert status == 200 and body["loopId"] and body["loopUrl"].endswith(body["loopId"])
    assert simulator.state()["loops"][0]["id"] == body["loopId"]
    await api.post("/_sandbox/settings", json={"open_loop_on_negative": False})
    status, body = await post(api, "/responses", negative)
    assert status == 200 and "loopId" not in body
    assert len(simulator.state()["loops"]) == 1


@pytest.mark.parametrize("overrides, message", [
    ({"location": "1300"}, "location"),
    ({"location": "529652b0121d5fa206011a79"}, "location"),
    ({"source": ""}, "source"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"responses": []}, "responses"),
    ({"responses": [{"categoryId": "nope", "value": True}]}, "categoryId"),
    ({"responses": [{"categoryId": Q_SWIFT, "value": "yes"}]}, "bool"),
    ({"responses": [{"categoryId": Q_ELSE, "value": False}]}, "text"),
    ({"responses": [{"categoryId": Q_SWIFT, "value": True},
                    {"categoryId": Q_SWIFT, "value": False}]}, "distinct"),
    ({"responses": [{"categoryId": Q_SWIFT, "value": True},
                    {"categoryId": LOBBY["questions"][0]["categoryId"], "value": True}]},
     "one survey"),
])
async def test_invalid_responses_are_refused(
    api: TestClient, simulator: LoopSimulator, overrides: dict[str, Any], message: str
) -> None:
    status, body = await post(api, "/responses", response_body(**overrides))
    assert status == 400
    assert message in body["error"]
    assert simulator.state()["responses"] == []


async def test_a_loop_with_user_and_custom_fields_is_found_by_its_customer(
    api: TestClient, simulator: LoopSimulator
) -> None:
    user = {"name": "Jason", "email": "jason@example.com", "sms": "+16135551234"}
    status, created = await post(api, "/loops", loop_body(
        user=user, customFields=[{ROOM_FIELD: "301"}], title="Towels",
        timestamp="Thu, 14 Apr 2016 22:33:36 +0000"))
    assert status == 200 and set(created) == {"id", "url"}
    status, again = await post(api, "/loops", loop_body(user={"email": "jason@example.com"}))
    [customer] = simulator.state()["users"]
    _, found = await get(api, "/loops", customer=customer["id"])
    assert [loop["id"] for loop in found["loops"]] == [created["id"], again["id"]]
    assert found["loops"][0]["customFields"] == [{ROOM_FIELD: "301"}]
    assert (await get(api, "/loops"))[0] == 400


@pytest.mark.parametrize("overrides, message", [
    ({"loopType": "nope"}, "loopType"),
    ({"location": "nope"}, "location"),
    ({"description": " "}, "description"),
    ({"customFields": [{"nope": "1"}]}, "custom field"),
    ({"customFields": [{ROOM_FIELD: 301}]}, "string"),
    ({"user": {"name": 5}}, "user"),
    ({"customer": "nobody"}, "customer"),
])
async def test_invalid_loops_are_refused(
    api: TestClient, simulator: LoopSimulator, overrides: dict[str, Any], message: str
) -> None:
    status, body = await post(api, "/loops", loop_body(**overrides))
    assert status in (400, 404)
    assert message in body["error"]
    assert simulator.state()["loops"] == []


async def test_injected_faults_use_the_error_shape_and_calls_are_counted(
    api: TestClient, simulator: LoopSimulator
) -> None:
    simulator.inject(Fault(status=503, path="/responses"))
    status, body = await post(api, "/responses", response_body())
    assert status == 503 and "error" in body
    assert (await post(api, "/responses", response_body()))[0] == 200
    assert simulator.calls["POST /api/v1/responses"] == 2
    simulator.reset()
    assert simulator.state()["responses"] == [] and not simulator.calls


# -- users, invite URLs, and the controls of the follow-up features --------------------------
async def test_users_are_looked_up_by_email_sms_or_username_with_the_documented_slash(
    api: TestClient,
) -> None:
    await post(api, "/loops", loop_body(user={"name": "Jason", "email": "jason@example.com"}))
    status, body = await get(api, "/users/", email="jason@example.com")
    assert status == 200
    [guest] = body["users"]
    assert (guest["name"], guest["email"], guest["sms"]) == ("Jason", "jason@example.com", "")
    assert set(guest) == {"username", "name", "id", "permissions", "locations", "sms", "email"}
    # The documentation's two employees share a mobile number: both are returned.
    _, body = await get(api, "/users/", sms="5556135555")
    assert [u["username"] for u in body["users"]] == ["benria", "benria2"]
    _, body = await get(api, "/users", username="benria")  # also without the slash
    assert [u["email"] for u in body["users"]] == ["admin@benbria.com"]
    assert await get(api, "/users/", email="nobody@example.com") == (200, {"users": []})
    status, body = await get(api, "/users/")
    assert status == 400 and "email" in body["error"]


async def test_a_generic_invite_url_creates_no_guest(
    api: TestClient, simulator: LoopSimulator
) -> None:
    status, body = await post(api, "/invite/url", {"locationId": LOCATION_1300})
    assert status == 200 and set(body) == {"url"}
    assert body["url"].endswith("/loop/create/1300")
    assert simulator.state()["users"] == []
    assert simulator.state()["invites"][0]["locationId"] == LOCATION_1300


async def test_a_personal_invite_url_reuses_the_guest_and_overwrites_custom_fields(
    api: TestClient, simulator: LoopSimulator
) -> None:
    await post(api, "/loops", loop_body(user={"email": "jason@example.com"}))
    [guest] = simulator.state()["users"]
    status, body = await post(api, "/invite/url", {
        "locationId": LOCATION_1300, "name": "John Smith", "email": "jason@example.com",
        "customFields": [{ROOM_FIELD: "12"}]})
    assert status == 200 and body["guestId"] == guest["id"]
    assert body["url"].endswith(f"/loop/create/1300?_uid={guest['id']}")
    [guest] = simulator.state()["users"]
    assert (guest["name"], guest["customFields"]) == ("John Smith", [{ROOM_FIELD: "12"}])
    status, body = await post(api, "/invite/url", {"locationId": LOCATION_1300,
                                                   "sms": "+16135550000"})
    assert status == 200 and len(simulator.state()["users"]) == 2


@pytest.mark.parametrize("body, message", [
    ({"locationId": "1300"}, "location"),
    ({"locationId": LOCATION_1300, "email": 5}, "strings"),
    ({"locationId": LOCATION_1300, "email": "a@example.com", "customFields": [{"x": "1"}]},
     "custom field"),
])
async def test_invalid_invite_requests_are_refused(
    api: TestClient, simulator: LoopSimulator, body: dict[str, Any], message: str
) -> None:
    status, reply = await post(api, "/invite/url", body)
    assert status == 400 and message in reply["error"]
    assert simulator.state()["users"] == [] and simulator.state()["invites"] == []


async def test_controls_change_a_loop_state_and_the_locations(
    api: TestClient, simulator: LoopSimulator
) -> None:
    _, created = await post(api, "/loops", loop_body())
    resp = await api.post("/_sandbox/settings", json={
        "loop_states": {created["id"]: "closed"}, "locations": ["1300"]})
    assert resp.status == 200
    assert simulator.state()["loops"][0]["state"] == "closed"
    _, body = await get(api, "/locations")
    assert [loc["shortcode"] for loc in body["locations"]] == ["1300"]
    simulator.reset()
    _, body = await get(api, "/locations")
    assert len(body["locations"]) == 2

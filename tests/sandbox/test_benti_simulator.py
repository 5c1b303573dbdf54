"""The Benti simulator keeps the vendor's documented rules, so the client is tested against
something that refuses what Benti refuses, with Benti's error shapes and headers."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rasa_service_desk.clients.benti.settings import SANDBOX_API_KEY, SANDBOX_API_SECRET
from rasa_service_desk.sandbox.benti import BentiSimulator
from rasa_service_desk.sandbox.core import Fault, serve_together

KEY = {"x-inbenta-key": SANDBOX_API_KEY}
#: Inbenta's documented answers, word for word ("Gateway Errors" and "API Errors" pages).
EXPLICIT_DENY = {"Message": "User is not authorized to access this resource with an explicit deny"}
UNAUTHORIZED = {"Message": "Unauthorized"}
SECRET_NOT_VALID = {"error": {"code": 400, "message": "Secret token not valid"}}


@pytest.fixture
def sim() -> BentiSimulator:
    return BentiSimulator()


@pytest.fixture
async def http(sim: BentiSimulator) -> AsyncIterator[TestClient[Any, Any]]:
    root = serve_together({"benti": sim})
    async with TestClient(TestServer(root, host="127.0.0.1")) as client:
        yield client


async def login(http: TestClient[Any, Any]) -> tuple[dict[str, str], str]:
    """Headers with a fresh token, and the ticketing path the auth reply hands out."""
    resp = await http.post("/benti/v1/auth", json={"secret": SANDBOX_API_SECRET}, headers=KEY)
    assert resp.status == 200
    body = await resp.json()
    base = body["apis"]["ticketing"]
    return {**KEY, "Authorization": f"Bearer {body['accessToken']}"}, base


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def test_auth_reply_points_at_the_simulator_own_ticketing_api(
    http: TestClient[Any, Any],
) -> None:
    resp = await http.post("/benti/v1/auth", json={"secret": SANDBOX_API_SECRET}, headers=KEY)
    body = await resp.json()
    assert body["apis"]["ticketing"] == str(http.make_url("/benti/ticketing"))
    assert body["expires_in"] == 1200
    assert body["expiration"] >= int(time.time()) + 1199
    headers = {**KEY, "Authorization": f"Bearer {body['accessToken']}"}
    apis = await (await http.get("/benti/v1/apis", headers=headers)).json()
    assert apis == {"apis": {"ticketing": body["apis"]["ticketing"]}}
    users = await http.get(path_of(body["apis"]["ticketing"]) + "/v1/users", headers=headers)
    assert users.status == 200


async def test_form_encoded_secret_is_accepted(http: TestClient[Any, Any]) -> None:
    resp = await http.post("/benti/v1/auth", data={"secret": SANDBOX_API_SECRET}, headers=KEY)
    assert resp.status == 200


@pytest.mark.parametrize("headers", [{}, {"x-inbenta-key": "someone-else"}])
async def test_gateway_refuses_a_missing_or_wrong_key_with_an_explicit_deny(
    http: TestClient[Any, Any], headers: dict[str, str],
) -> None:
    resp = await http.post("/benti/v1/auth", json={"secret": SANDBOX_API_SECRET},
                           headers=headers)
    assert resp.status == 403
    assert await resp.json() == EXPLICIT_DENY


@pytest.mark.parametrize("body", [{"secret": "guess"}, {}], ids=["wrong", "missing"])
async def test_wrong_secret_is_refused_as_documented(
    http: TestClient[Any, Any], body: dict[str, str],
) -> None:
    resp = await http.post("/benti/v1/auth", json=body, headers=KEY)
    assert resp.status == 400
    assert await resp.json() == SECRET_NOT_VALID


@pytest.mark.parametrize(("authorization", "status", "body"), [
    (None, 401, UNAUTHORIZED),
    ("Bearer not-a-token", 403, EXPLICIT_DENY),
    ("Basic abc", 403, EXPLICIT_DENY),
])
async def test_calls_without_a_valid_token_are_refused(
    http: TestClient[Any, Any], authorization: str | None, status: int, body: dict[str, str],
) -> None:
    headers = dict(KEY)
    if authorization:
        headers["Authorization"] = authorization
    resp = await http.get("/benti/ticketing/v1/users", headers=headers)
    assert resp.status == status
    assert await resp.json() == body


async def test_expired_tokens_are_refused_and_cannot_be_refreshed(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    sim.expire_tokens()
    resp = await http.get("/benti/ticketing/v1/users", headers=headers)
    assert resp.status == 403
    assert await resp.json() == EXPLICIT_DENY
    refresh = await http.post("/benti/v1/refreshToken", headers=headers)
    assert (refresh.status, await refresh.json()) == (403, EXPLICIT_DENY)


async def test_revoked_tokens_are_refused_with_an_explicit_deny(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    sim.tokens.clear()
    resp = await http.post("/benti/ticketing/v1/tickets", headers=headers,
                           json={"message": "hi", "creator": "x"})
    assert (resp.status, await resp.json()) == (403, EXPLICIT_DENY)


async def test_refresh_gives_a_new_token_without_apis(http: TestClient[Any, Any]) -> None:
    headers, _ = await login(http)
    resp = await http.post("/benti/v1/refreshToken", headers=headers)
    body = await resp.json()
    assert set(body) == {"accessToken", "expiration", "expires_in"}
    assert f"Bearer {body['accessToken']}" != headers["Authorization"]
    renewed = {**KEY, "Authorization": f"Bearer {body['accessToken']}"}
    assert (await http.get("/benti/ticketing/v1/users", headers=renewed)).status == 200


async def test_token_lifetime_is_configurable(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    resp = await http.post("/benti/_sandbox/config", json={"token_lifetime": 42})
    assert (await resp.json())["token_lifetime"] == 42
    auth = await http.post("/benti/v1/auth", json={"secret": SANDBOX_API_SECRET}, headers=KEY)
    assert (await auth.json())["expires_in"] == 42


async def test_users_are_found_by_address(http: TestClient[Any, Any]) -> None:
    headers, _ = await login(http)
    created = await http.post("/benti/ticketing/v1/users", headers=headers,
                              json={"name": "Ada", "address": "Ada@Example.com"})
    assert created.status == 201
    user_id = (await created.json())["uuid"]
    found = await http.get("/benti/ticketing/v1/users", headers=headers,
                           params={"address": "ada@example.com"})
    assert (await found.json())["data"][0]["id"] == user_id
    none = await http.get("/benti/ticketing/v1/users", headers=headers,
                          params={"address": "bob@example.com"})
    assert (await none.json()) == {"data": []}
    bad = await http.post("/benti/ticketing/v1/users", headers=headers, json={"name": "X"})
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == 400


async def test_a_second_user_with_the_same_address_is_refused(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    first = await http.post("/benti/ticketing/v1/users", headers=headers,
                            json={"name": "Ada", "address": "ada@example.com"})
    again = await http.post("/benti/ticketing/v1/users", headers=headers,
                            json={"name": "Ada L.", "address": "ADA@example.com"})
    assert first.status == 201
    assert again.status == 422
    assert (await again.json())["error"]["code"] == 422
    assert [u["name"] for u in sim.state()["users"]] == ["Ada"]


async def test_media_is_stored_with_decoded_size_and_preview(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    content = base64.b64encode(b"Customer: my printer smokes").decode()
    resp = await http.post("/benti/ticketing/v1/media", headers=headers,
                           json={"name": "chat.txt", "content": content})
    assert resp.status == 201
    [media] = sim.state()["media"]
    assert media["id"] == (await resp.json())["uuid"]
    assert (media["name"], media["size"], media["preview"]) == (
        "chat.txt", 27, "Customer: my printer smokes")
    bad = await http.post("/benti/ticketing/v1/media", headers=headers,
                          json={"name": "x", "content": "not base64!"})
    assert bad.status == 400


async def test_payload_over_10_mb_is_rejected(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    content = "A" * (10 * 1024 * 1024 + 4)
    resp = await http.post("/benti/ticketing/v1/media", headers=headers,
                           json={"name": "big.bin", "content": content})
    assert resp.status == 413
    assert "10MB" in (await resp.json())["error"]["message"]
    assert sim.state()["media"] == []


async def test_ticket_needs_known_creator_and_attachments(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    user = await (await http.post("/benti/ticketing/v1/users", headers=headers,
                                  json={"name": "Ada", "address": "ada@example.com"})).json()
    unknown_creator = await http.post("/benti/ticketing/v1/tickets", headers=headers,
                                      json={"message": "hi", "creator": "nobody"})
    assert unknown_creator.status == 422
    assert "creator" in (await unknown_creator.json())["error"]["message"]
    unknown_media = await http.post(
        "/benti/ticketing/v1/tickets", headers=headers,
        json={"message": "hi", "creator": user["uuid"], "attachments": ["nope"]})
    assert unknown_media.status == 422
    assert "attachment" in (await unknown_media.json())["error"]["message"]
    no_message = await http.post("/benti/ticketing/v1/tickets", headers=headers,
                                 json={"creator": user["uuid"]})
    assert no_message.status == 400
    bad_queue = await http.post("/benti/ticketing/v1/tickets", headers=headers,
                                json={"message": "hi", "creator": user["uuid"], "queue": "a"})
    assert bad_queue.status == 400
    ok = await http.post("/benti/ticketing/v1/tickets", headers=headers,
                         json={"title": "T", "message": "hi", "creator": user["uuid"],
                               "queue": 2, "source": 5})
    assert ok.status == 201
    body = await ok.json()
    assert body["id"] == 1001 and body["full_uuid"]
    assert sim.state()["tickets"][0]["queue"] == 2


async def test_replies_carry_rate_limit_headers_and_throttling_answers_429(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    first = await http.get("/benti/ticketing/v1/users", headers=headers)
    now = time.time()
    # resets are timestamps (Unix seconds), as Inbenta documents them
    assert now <= float(first.headers["x-throttle-reset"]) <= now + 2
    assert now < float(first.headers["x-quota-reset"]) <= now + 86400
    assert float(first.headers["x-quota-usage"]) < 100
    sim.throttle_per_second = 1
    sim.window_start = 0.0  # start a new one-second window
    assert (await http.get("/benti/ticketing/v1/users", headers=headers)).status == 200
    limited = await http.get("/benti/ticketing/v1/users", headers=headers)
    assert limited.status == 429
    assert "Retry-After" not in limited.headers  # Inbenta documents none
    assert float(limited.headers["x-throttle-usage"]) > 100
    assert time.time() <= float(limited.headers["x-throttle-reset"]) <= time.time() + 2
    assert (await limited.json())["error"]["code"] == 429


async def test_injected_faults_use_benti_error_shapes(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    sim.inject(Fault(status=429, path="/v1/users"), Fault(status=403, path="/v1/users"))
    busy = await http.get("/benti/ticketing/v1/users", headers=headers)
    assert busy.status == 429 and "Retry-After" not in busy.headers
    assert float(busy.headers["x-throttle-usage"]) > 100 and "x-throttle-reset" in busy.headers
    assert (await busy.json())["error"]["code"] == 429
    forbidden = await http.get("/benti/ticketing/v1/users", headers=headers)
    assert (forbidden.status, await forbidden.json()) == (403, EXPLICIT_DENY)


async def test_reset_forgets_everything(
    http: TestClient[Any, Any], sim: BentiSimulator,
) -> None:
    headers, _ = await login(http)
    await http.post("/benti/ticketing/v1/users", headers=headers,
                    json={"name": "Ada", "address": "ada@example.com"})
    await http.post("/benti/_sandbox/reset")
    assert sim.state()["users"] == [] and sim.calls == {}
    assert (await http.get("/benti/ticketing/v1/users", headers=headers)).status == 403

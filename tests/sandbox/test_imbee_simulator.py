"""The Imbee simulator refuses what the documentation says Imbee refuses, in its envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rasa_service_desk.clients.imbee.settings import (
    SANDBOX_AGENT_IDS,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_BOT_ID,
    SANDBOX_CORPORATE_TOKEN,
)
from rasa_service_desk.sandbox.core import Fault
from rasa_service_desk.sandbox.imbee import ImbeeSimulator
from rasa_service_desk.sandbox.registry import SIMULATORS

CORPORATE = {"Authorization": SANDBOX_AUTH_TOKEN, "X-WOOS-KEY": SANDBOX_CORPORATE_TOKEN}
AGENT = SANDBOX_AGENT_IDS[0]
TODAY = datetime.now(timezone.utc).date()
FUTURE = (TODAY + timedelta(days=10)).isoformat()


@pytest.fixture
async def sim() -> AsyncIterator[tuple[ImbeeSimulator, TestClient[Any, Any]]]:
    simulator = ImbeeSimulator()
    async with TestClient(TestServer(simulator.app())) as client:
        yield simulator, client


async def post(client: TestClient[Any, Any], path: str, body: Any,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    resp = await client.post(path, json=body, headers=CORPORATE if headers is None else headers)
    return resp.status, await resp.json()


async def register(client: TestClient[Any, Any], unique_id: str = "user-1") -> dict[str, Any]:
    status, reply = await post(client, "/third_parties/user/new",
                               {"uniqueIdSha": unique_id, "platform": "web"})
    assert status == 200 and reply["code"] == 0
    return dict(reply["body"])


def token_body(**changes: Any) -> dict[str, Any]:
    body = {"virtual_user": "user-1", "bot_idsha": SANDBOX_BOT_ID, "mail": "ana@example.com",
            "max_retries": 3, "date_limit": FUTURE}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_is_registered_under_imbee() -> None:
    assert SIMULATORS["imbee"] == "rasa_service_desk.sandbox.imbee:ImbeeSimulator"


async def test_replies_use_the_envelope_and_registration_is_idempotent(sim: Any) -> None:
    simulator, client = sim
    first = await register(client)
    status, again = await post(client, "/third_parties/user/new", {"uniqueIdSha": "user-1"})
    assert status == 200
    assert set(again) == {"time", "code", "message", "body"}
    assert first["previously_registered"] is False
    assert again["body"]["previously_registered"] is True
    assert again["body"]["apikey"] == first["apikey"]
    assert again["body"]["virtualUser"] == first["virtualUser"]
    assert len(simulator.state()["users"]) == 1


@pytest.mark.parametrize(("headers", "status"), [
    ({"X-WOOS-KEY": SANDBOX_CORPORATE_TOKEN}, 401),
    ({"Authorization": "Bearer " + SANDBOX_AUTH_TOKEN, "X-WOOS-KEY": SANDBOX_CORPORATE_TOKEN},
     401),
    ({"Authorization": SANDBOX_AUTH_TOKEN, "X-WOOS-KEY": "wrong"}, 403),
    ({"Authorization": SANDBOX_AUTH_TOKEN}, 403),
])
async def test_user_and_token_calls_need_both_keys(
    sim: Any, headers: dict[str, str], status: int
) -> None:
    _, client = sim
    for path, body in (("/third_parties/user/new", {"uniqueIdSha": "u"}),
                       ("/token/new", token_body())):
        got, reply = await post(client, path, body, headers)
        assert (got, reply["code"]) == (status, 1)


async def test_content_type_must_be_json(sim: Any) -> None:
    _, client = sim
    resp = await client.post("/third_parties/user/new", data='{"uniqueIdSha": "u"}',
                             headers={**CORPORATE, "Content-Type": "text/plain"})
    assert resp.status == 415
    assert (await resp.json())["code"] == 1


async def test_chat_is_created_with_the_users_own_apikey_and_only_once(sim: Any) -> None:
    simulator, client = sim
    user = await register(client)
    body = {"type": "chat", "contacts": [{"idsha": AGENT}]}
    status, refused = await post(client, "/chat/create", body, CORPORATE)
    assert (status, refused["code"]) == (403, 1)  # corporate token is not a user key

    user_headers = {"Authorization": SANDBOX_AUTH_TOKEN, "X-WOOS-KEY": user["apikey"]}
    _, first = await post(client, "/chat/create", body, user_headers)
    _, again = await post(client, "/chat/create", body, user_headers)
    assert first["code"] == 0 and first["body"]["previously_created"] is False
    assert again["body"]["previously_created"] is True
    assert again["body"]["conversationId"] == first["body"]["conversationId"]
    assert first["body"]["contacts"] == [{"idsha": user["virtualUser"], "isadmin": 1},
                                         {"idsha": AGENT, "isadmin": 0}]
    assert len(simulator.state()["chats"]) == 1


@pytest.mark.parametrize("body", [
    {"type": "chat", "contacts": [{"idsha": "nobody"}]},
    {"type": "chat", "contacts": []},
    {"type": "group", "contacts": [{"idsha": AGENT}]},
])
async def test_chat_with_unknown_or_missing_contacts_is_code_1(sim: Any, body: Any) -> None:
    _, client = sim
    user = await register(client)
    status, reply = await post(client, "/chat/create", body,
                               {"Authorization": SANDBOX_AUTH_TOKEN, "X-WOOS-KEY": user["apikey"]})
    assert (status, reply["code"]) == (200, 1)


async def test_token_is_issued_once_per_user_and_bot(sim: Any) -> None:
    simulator, client = sim
    user = await register(client)
    _, first = await post(client, "/token/new", token_body())
    _, again = await post(client, "/token/new", token_body(mail=..., celullar="+34612345678"))
    assert first["code"] == 0
    assert first["body"]["date_limit"] == FUTURE and first["body"]["max_retries"] == 3
    assert first["body"]["user_idsha"] == user["virtualUser"]
    assert first["body"]["previously_created"] is False
    assert again["body"]["previously_created"] is True
    assert again["body"]["url"] == first["body"]["url"]
    assert [t["mail"] for t in simulator.state()["tokens"]] == ["ana@example.com"]


async def test_defaults_apply_when_limits_are_left_out(sim: Any) -> None:
    simulator, client = sim
    await register(client)
    _, reply = await post(client, "/token/new", token_body(max_retries=..., date_limit=...))
    assert reply["body"]["max_retries"] == simulator.default_max_retries
    assert reply["body"]["date_limit"] == (
        TODAY + timedelta(days=simulator.default_validity_days)).isoformat()


@pytest.mark.parametrize("changes", [
    {"mail": ..., "celullar": ...},
    {"mail": "", "celullar": ""},
    {"mail": "not-an-address"},
    {"mail": ..., "celullar": "call me"},
    {"date_limit": "31/12/2030"},
    {"date_limit": "2030-2-3"},
    {"date_limit": "2030-02-30"},
    {"date_limit": "2001-01-01"},
    {"max_retries": 0},
    {"max_retries": "ten"},
    {"bot_idsha": "other-bot"},
    {"virtual_user": ""},
    {"virtual_user": "never-registered"},
])
async def test_token_requests_the_doc_forbids_are_code_1(sim: Any, changes: Any) -> None:
    simulator, client = sim
    await register(client)
    status, reply = await post(client, "/token/new", token_body(**changes))
    assert (status, reply["code"], reply["body"]) == (200, 1, None)
    assert reply["message"]
    assert simulator.state()["tokens"] == []


async def test_link_counts_uses_and_expires(sim: Any) -> None:
    simulator, client = sim
    await register(client)
    _, reply = await post(client, "/token/new", token_body(max_retries=2))
    path = reply["body"]["url"].split(str(client.make_url("")).rstrip("/"), 1)[1]
    assert [(await client.get(path)).status for _ in range(3)] == [200, 200, 410]
    _, renewed = await post(client, "/token/new", token_body())
    assert renewed["body"]["previously_created"] is False  # used up: a fresh link
    simulator.expire_tokens()
    new_path = renewed["body"]["url"].split(str(client.make_url("")).rstrip("/"), 1)[1]
    assert (await client.get(new_path)).status == 410
    _, fresh = await post(client, "/token/new", token_body())
    assert fresh["body"]["previously_created"] is False
    assert fresh["body"]["url"] != renewed["body"]["url"]


async def test_injected_faults_keep_the_envelope(sim: Any) -> None:
    simulator, client = sim
    simulator.inject(Fault(status=200, path="/third_parties/user/new"),
                     Fault(status=503, path="/third_parties/user/new"),
                     Fault(status=200, body={"code": 7, "message": "bot disabled"}))
    first = await post(client, "/third_parties/user/new", {"uniqueIdSha": "u"})
    second = await post(client, "/third_parties/user/new", {"uniqueIdSha": "u"})
    third = await post(client, "/third_parties/user/new", {"uniqueIdSha": "u"})
    assert (first[0], first[1]["code"]) == (200, 1)
    assert (second[0], second[1]["code"]) == (503, 1)
    assert (third[0], third[1]["code"], third[1]["message"]) == (200, 7, "bot disabled")
    assert simulator.state()["users"] == []
    assert simulator.calls["POST /third_parties/user/new"] == 3


async def test_state_lists_users_chats_and_tokens_and_reset_forgets_them(sim: Any) -> None:
    simulator, client = sim
    user = await register(client)
    await post(client, "/chat/create", {"type": "chat", "contacts": [{"idsha": AGENT}]},
               {"Authorization": SANDBOX_AUTH_TOKEN, "X-WOOS-KEY": user["apikey"]})
    await post(client, "/token/new", token_body())
    state = simulator.state()
    assert [len(state[k]) for k in ("users", "chats", "tokens")] == [1, 1, 1]
    simulator.reset()
    assert simulator.state() == {"users": [], "chats": [], "tokens": []}

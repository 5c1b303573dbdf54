"""ImbeeClient against recorded replies (aioresponses): request shapes, envelope, errors, logs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import close_shared_sessions
from rasa_service_desk.clients.imbee.client import ImbeeClient
from rasa_service_desk.clients.imbee.settings import ImbeeSettings

HOST = "https://imbee.test/api"
USER_URL = f"{HOST}/third_parties/user/new"
CHAT_URL = f"{HOST}/chat/create"
TOKEN_URL = f"{HOST}/token/new"
AUTH = "auth-token-9f8e7d"
CORPORATE = "corporate-token-1a2b3c"
SALT = "salt-for-tests-5d6e7f"
APIKEY = "user-apikey-77aa88bb"
PASSWORD = "user-pass-99cc00dd"
LINK = "https://chat.imbee.test/access/Zk3tokenvalue0123456789"
TODAY = date(2030, 1, 10)


def settings(**overrides: Any) -> ImbeeSettings:
    values: dict[str, Any] = {
        "host": HOST, "auth_token": AUTH, "corporate_token": CORPORATE, "bot_id": "bot-1",
        "agent_ids": "agent-a", "user_id_salt": SALT, "max_retries": 4, "validity_days": 3,
        "retry_attempts": 3,
    }
    values.update(overrides)
    return ImbeeSettings(**values)


def make_client(**overrides: Any) -> ImbeeClient:
    return ImbeeClient(settings(**overrides), today=lambda: TODAY)


def envelope(body: Any, code: int = 0, message: str = "Ok") -> dict[str, Any]:
    return {"time": 0.001, "code": code, "message": message, "body": body}


USER_BODY = {"virtualUser": "idsha-user", "pass": PASSWORD, "apikey": APIKEY,
             "previously_registered": False}
CHAT_BODY = {"contacts": [{"idsha": "idsha-user", "isadmin": 1},
                          {"idsha": "agent-a", "isadmin": 0}],
             "conversationId": "conv-42", "previously_created": False}
TOKEN_BODY = {"url": LINK, "user_idsha": "idsha-user", "date_limit": "2030-01-13",
              "max_retries": 4, "previously_created": False}


@pytest.fixture(autouse=True)
async def _close_session() -> AsyncIterator[None]:
    yield
    await close_shared_sessions()


@pytest.fixture
def api() -> Any:
    with aioresponses() as mocked:
        yield mocked


def happy(api: Any, *, chat_again: bool = False, token_again: bool = False) -> None:
    api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(CHAT_URL, payload=envelope({**CHAT_BODY, "previously_created": chat_again}))
    api.post(TOKEN_URL, payload=envelope({**TOKEN_BODY, "previously_created": token_again}))


def sent(api: Any, url: str, index: int = 0) -> dict[str, Any]:
    return dict(api.requests[("POST", URL(url))][index].kwargs)


async def test_open_chat_sends_the_three_documented_requests(api: Any) -> None:
    happy(api)
    access = await make_client().open_chat("conversation-1", email="ana@example.com")

    user_id = hmac.new(SALT.encode(), b"conversation-1", hashlib.sha256).hexdigest()
    user = sent(api, USER_URL)
    assert user["json"]["uniqueIdSha"] == user_id
    assert user["headers"]["Authorization"] == AUTH
    assert user["headers"]["X-WOOS-KEY"] == CORPORATE
    assert user["headers"]["Content-Type"] == "application/json"

    chat = sent(api, CHAT_URL)
    assert chat["headers"]["X-WOOS-KEY"] == APIKEY  # the user's own key, not the corporate one
    assert chat["headers"]["Authorization"] == AUTH
    assert chat["json"] == {"type": "chat", "contacts": [{"idsha": "agent-a"}]}

    token = sent(api, TOKEN_URL)
    assert token["headers"]["X-WOOS-KEY"] == CORPORATE
    assert token["json"] == {"virtual_user": user_id, "bot_idsha": "bot-1",
                             "mail": "ana@example.com", "max_retries": 4,
                             "date_limit": "2030-01-13"}

    assert access.url == LINK
    assert access.conversation_id == "conv-42"
    assert access.valid_until == date(2030, 1, 13)
    assert access.uses == 4
    assert access.reused is False
    assert LINK not in repr(access)


async def test_phone_only_goes_in_celullar_and_both_can_be_sent(api: Any) -> None:
    happy(api)
    happy(api)
    client = make_client()
    await client.open_chat("c", phone="+34612345678")
    await client.open_chat("c", email="ana@example.com", phone="+34612345678")
    first, second = sent(api, TOKEN_URL, 0)["json"], sent(api, TOKEN_URL, 1)["json"]
    assert first["celullar"] == "+34612345678" and "mail" not in first
    assert second["mail"] == "ana@example.com" and second["celullar"] == "+34612345678"


async def test_a_repeated_request_is_reported_as_reused(api: Any) -> None:
    happy(api, chat_again=True, token_again=True)
    access = await make_client().open_chat("c", email="ana@example.com")
    assert access.reused is True


async def test_no_contact_is_refused_before_anything_is_created(api: Any) -> None:
    with pytest.raises(RejectedInput):
        await make_client().create_access_token("user", email=None, phone="")
    assert not api.requests
    with pytest.raises(RejectedInput):
        await make_client().open_chat("c", email="", phone=None)
    assert not api.requests


async def test_the_link_is_requested_only_once_the_chat_exists(api: Any) -> None:
    """Imbee mails or texts the link when the token is created: never before the chat it
    opens is there, even though the token request needs nothing from the chat's reply."""
    arrived: list[str] = []

    def on_user(url: URL, **kwargs: Any) -> CallbackResult:
        arrived.append("user")
        return CallbackResult(payload=envelope(USER_BODY))

    async def on_chat(url: URL, **kwargs: Any) -> CallbackResult:
        arrived.append("chat asked")
        await asyncio.sleep(0.05)  # a request sent meanwhile would arrive before the reply
        arrived.append("chat created")
        return CallbackResult(payload=envelope(CHAT_BODY))

    def on_token(url: URL, **kwargs: Any) -> CallbackResult:
        arrived.append("token")
        return CallbackResult(payload=envelope(TOKEN_BODY))

    api.post(USER_URL, callback=on_user)
    api.post(CHAT_URL, callback=on_chat)
    api.post(TOKEN_URL, callback=on_token)
    access = await make_client(retry_attempts=1).open_chat("c", email="ana@example.com")
    assert (access.url, access.conversation_id) == (LINK, "conv-42")
    assert arrived == ["user", "chat asked", "chat created", "token"]


def test_user_id_is_stable_salted_and_reveals_nothing() -> None:
    client = make_client()
    first = client.external_user_id("conversation-1")
    assert first == client.external_user_id("conversation-1")
    assert first != client.external_user_id("conversation-2")
    assert first != make_client(user_id_salt="another-salt").external_user_id("conversation-1")
    assert len(first) == 64 and "conversation" not in first


def test_agent_pool_keeps_a_conversation_on_one_agent_and_spreads_the_rest() -> None:
    client = make_client(agent_ids="agent-a, agent-b,agent-c")
    picks = {client.agent_for(client.external_user_id(f"conv-{i}")) for i in range(60)}
    assert picks == {"agent-a", "agent-b", "agent-c"}
    user = client.external_user_id("conv-7")
    assert {client.agent_for(user) for _ in range(5)} == {client.agent_for(user)}


def test_missing_agents_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        ImbeeClient(settings(agent_ids=" , "))


async def test_code_1_with_http_200_on_token_is_rejected_input(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(CHAT_URL, payload=envelope(CHAT_BODY))
    api.post(TOKEN_URL, payload=envelope(None, code=1, message="celullar is not valid"))
    with caplog.at_level(logging.WARNING), pytest.raises(RejectedInput) as error:
        await make_client().open_chat("c", phone="+34612345678")
    assert error.value.vendor_message == "celullar is not valid"
    assert error.value.status == 200
    assert "celullar is not valid" in caplog.text


@pytest.mark.parametrize("url", [USER_URL, CHAT_URL])
async def test_code_1_on_user_or_chat_means_the_vendor_is_unavailable(api: Any, url: str) -> None:
    if url == CHAT_URL:
        api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(url, payload=envelope([], code=1, message="Internal problem"))
    with pytest.raises(VendorUnavailable) as error:
        await make_client().open_chat("c", email="ana@example.com")
    assert error.value.vendor_message == "Internal problem"
    assert ("POST", URL(TOKEN_URL)) not in api.requests  # no link mailed for a missing chat


async def test_http_refusals_follow_the_same_split(api: Any) -> None:
    api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(CHAT_URL, status=400, payload=envelope(None, 1, "bad contacts"))
    with pytest.raises(VendorUnavailable) as error:
        await make_client().open_chat("c", email="ana@example.com")
    assert (error.value.status, error.value.vendor_message) == (400, "bad contacts")
    api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(CHAT_URL, payload=envelope(CHAT_BODY))
    api.post(TOKEN_URL, status=422, payload=envelope(None, 1, "bad mail"))
    with pytest.raises(RejectedInput):
        await make_client().open_chat("c", email="ana@example.com")


async def test_server_errors_are_retried_because_every_call_is_idempotent(api: Any) -> None:
    api.post(USER_URL, status=502, payload=envelope(None, 1, "bad gateway"))
    api.post(USER_URL, exception=asyncio.TimeoutError())
    happy(api)
    access = await make_client(retry_attempts=3).open_chat("c", email="ana@example.com")
    assert access.url == LINK
    assert len(api.requests[("POST", URL(USER_URL))]) == 3


async def test_persistent_timeouts_become_vendor_unavailable(api: Any) -> None:
    for _ in range(2):
        api.post(USER_URL, exception=asyncio.TimeoutError())
    with pytest.raises(VendorUnavailable):
        await make_client(retry_attempts=2).open_chat("c", email="ana@example.com")


async def test_refused_credentials_are_an_authentication_error(api: Any) -> None:
    api.post(USER_URL, status=401, payload=envelope(None, 1, "Unauthorized"))
    with pytest.raises(AuthenticationError) as error:
        await make_client().open_chat("c", email="ana@example.com")
    assert error.value.vendor_message == "Unauthorized"


@pytest.mark.parametrize("reply", [
    {"body": "<html>", "content_type": "text/html"},
    {"payload": {"time": 0, "message": "Ok", "body": USER_BODY}},  # no code
    {"payload": envelope({"virtualUser": "x"})},  # no pass/apikey
    {"payload": envelope(None)},  # success without a body
])
async def test_replies_that_break_the_documented_shape_are_malformed(
    api: Any, reply: dict[str, Any]
) -> None:
    api.post(USER_URL, **reply)
    with pytest.raises(MalformedReply):
        await make_client().open_chat("c", email="ana@example.com")


async def test_a_link_that_is_not_a_web_url_is_malformed(api: Any) -> None:
    api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(CHAT_URL, payload=envelope(CHAT_BODY))
    api.post(TOKEN_URL, payload=envelope({**TOKEN_BODY, "url": "javascript:alert(1)"}))
    with pytest.raises(MalformedReply):
        await make_client().open_chat("c", email="ana@example.com")


async def test_logs_show_neither_credentials_nor_the_link(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    happy(api)
    api.post(USER_URL, payload=envelope(USER_BODY))
    api.post(CHAT_URL, payload=envelope(CHAT_BODY))
    api.post(TOKEN_URL, payload=envelope(None, code=1, message="mail is not valid"))
    client = make_client()
    with caplog.at_level(logging.DEBUG):
        await client.open_chat("c", email="ana@example.com")
        with pytest.raises(RejectedInput):
            await client.open_chat("c", email="ana@example.com")
    assert "imbee chat conv-42" in caplog.text
    for secret in (AUTH, CORPORATE, SALT, APIKEY, PASSWORD, LINK, "Zk3tokenvalue"):
        assert secret not in caplog.text

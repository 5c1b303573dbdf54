"""ImbeeClient against the simulator (in-process, mounted under /imbee as the sandbox
mounts it): the real request/reply cycle, reuse, renewal and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from rasa_service_desk.clients.compat import copy_model
from rasa_service_desk.clients.errors import AuthenticationError, RejectedInput, VendorUnavailable
from rasa_service_desk.clients.http import close_shared_sessions
from rasa_service_desk.clients.imbee.client import ImbeeClient
from rasa_service_desk.clients.imbee.settings import ImbeeSettings
from rasa_service_desk.sandbox.core import Fault, serve_together
from rasa_service_desk.sandbox.imbee import ImbeeSimulator


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[ImbeeSimulator, str]]:
    sim = ImbeeSimulator()
    root = serve_together({"imbee": sim})
    server = TestServer(root, host="127.0.0.1")
    await server.start_server()
    try:
        yield sim, str(server.make_url("")).rstrip("/")
    finally:
        await close_shared_sessions()
        await server.close()


def client_for(url: str, **overrides: Any) -> ImbeeClient:
    settings = ImbeeSettings(retry_attempts=1, **overrides).for_sandbox(url)
    return ImbeeClient(settings)


async def test_open_chat_creates_user_chat_and_link(simulator: Any) -> None:
    sim, url = simulator
    access = await client_for(url, max_retries=2, validity_days=5).open_chat(
        "conversation-1", phone="+34612345678")
    state = sim.state()
    [user], [chat], [token] = state["users"], state["chats"], state["tokens"]
    assert user["unique_id"] == client_for(url).external_user_id("conversation-1")
    assert chat["conversation_id"] == access.conversation_id
    assert chat["contacts"] == [access.agent_id]
    assert token["url"] == access.url and token["celullar"] == "+34612345678"
    assert (token["max_retries"], str(token["date_limit"])) == (2, access.valid_until.isoformat())
    assert access.uses == 2 and not access.reused


async def test_asking_again_reuses_the_chat_and_the_link(simulator: Any) -> None:
    sim, url = simulator
    client = client_for(url)
    first = await client.open_chat("conversation-1", email="ana@example.com")
    again = await client.open_chat("conversation-1", email="ana@example.com")
    other = await client.open_chat("conversation-2", email="ana@example.com")
    assert (again.url, again.conversation_id, again.reused) == (first.url, first.conversation_id,
                                                                  True)
    assert other.conversation_id != first.conversation_id and other.url != first.url
    assert [len(sim.state()[k]) for k in ("users", "chats", "tokens")] == [2, 2, 2]


async def test_an_expired_link_is_replaced_in_the_same_chat(simulator: Any) -> None:
    sim, url = simulator
    client = client_for(url)
    first = await client.open_chat("conversation-1", email="ana@example.com")
    sim.expire_tokens()
    renewed = await client.open_chat("conversation-1", email="ana@example.com")
    assert renewed.conversation_id == first.conversation_id
    assert renewed.url != first.url and not renewed.reused


async def test_code_1_from_the_simulator_is_rejected_input(simulator: Any) -> None:
    sim, url = simulator
    sim.inject(Fault(status=200, path="/token/new", body={"message": "celullar not valid"}))
    with pytest.raises(RejectedInput) as error:
        await client_for(url).open_chat("conversation-1", phone="+34612345678")
    assert error.value.vendor_message == "celullar not valid"


async def test_server_errors_and_wrong_credentials(simulator: Any) -> None:
    sim, url = simulator
    sim.inject(Fault(status=500, path="/chat/create"))
    with pytest.raises(VendorUnavailable):
        await client_for(url).open_chat("conversation-1", email="ana@example.com")
    settings = ImbeeSettings().for_sandbox(url)
    wrong = copy_model(settings, auth_token=settings.corporate_token)
    with pytest.raises(AuthenticationError):
        await ImbeeClient(wrong).open_chat("conversation-1", email="ana@example.com")

"""The callback core against the Cention simulator, over real HTTP on loopback.

The simulator creates an errand, an agent answers it with attachments, and the simulator
POSTs its callback (links in both documented forms) to a small aiohttp receiver around
`CallbackHandler`; the handler fetches the attachment names back from the simulator.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rasa_service_desk.clients.cention.callback import (
    AttachmentFetcher,
    CallbackHandler,
    CallbackOutcome,
)
from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN, SANDBOX_WORKSPACE_PATH
from rasa_service_desk.state import open_store
from tests.support.servers import Sandbox

SECRET = "sandbox-callback-secret"
JSONAPI = "application/vnd.api+json"


class Receiver:
    """Cention's callback endpoint: the handler behind a plain aiohttp route."""

    def __init__(self, handler: CallbackHandler) -> None:
        self.handler = handler
        self.outcomes: list[CallbackOutcome] = []

    async def receive(self, request: web.Request) -> web.Response:
        outcome = await self.handler.handle(await request.read())
        self.outcomes.append(outcome)
        return web.json_response(outcome.body(), status=outcome.status)


@pytest.fixture
async def receiver(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[str, Receiver]]:
    base_url = sandbox.vendor_url("cention") + SANDBOX_WORKSPACE_PATH.removeprefix("/cention")
    handler = CallbackHandler(
        api_secret=SECRET,
        registry=ErrandRegistry(open_store(f"sqlite:///{tmp_path / 'errands.sqlite3'}")),
        fetcher=AttachmentFetcher(base_url, SANDBOX_ERRAND_TOKEN),
    )
    app = web.Application()
    target = Receiver(handler)
    app.router.add_post("/webhooks/cention/webhook", target.receive)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/webhooks/cention/webhook")), target
    finally:
        await server.close()


async def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    async with aiohttp.ClientSession() as session, session.post(
        url, data=json.dumps(body), headers=headers or {"Content-Type": "application/json"}
    ) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json(content_type=None)


async def _new_errand(sandbox: Sandbox) -> str:
    url = sandbox.vendor_url("cention") + SANDBOX_WORKSPACE_PATH.removeprefix("/cention")
    reply = await _post(
        f"{url}/capi/json/c3_new_errands",
        {"data": {"type": "c3_new_errands", "attributes": {"msg": {
            "message_id": "conversation-42-1", "name": "Ada", "from": "ada@example.com",
            "subject": "Where is my order?", "body": "Customer: where is my order?",
            "html_body": "", "attachments": []}}}},
        headers={"Content-Type": JSONAPI, "Accept": JSONAPI,
                 "Authorization": f"Bearer {SANDBOX_ERRAND_TOKEN}"},
    )
    return str(reply["data"]["id"])


def _file(name: str) -> dict[str, str]:
    return {"name": name, "content_type": "text/plain",
            "content": base64.b64encode(name.encode()).decode()}


async def test_an_answer_from_the_simulator_is_accepted_with_its_attachment_names(
    sandbox: Sandbox, receiver: tuple[str, Receiver]
) -> None:
    url, target = receiver
    errand_id = await _new_errand(sandbox)
    await target.handler.registry.record(errand_id, "conversation-42", "socketio")

    result = await _post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", {
        "errand_id": errand_id, "body": "Your order left our warehouse today.",
        "attachments": [_file("tracking.txt"), _file("invoice.txt"), _file("terms.txt")],
        "callback_url": url, "api_secret": SECRET,
    })

    assert result["status"] == 200
    links = [node["links"]["self"] for node in result["payload"]["included"]
             if node["type"] == "c3_response_attachments"]
    assert {type(link) for link in links} == {str, dict}  # both documented forms were sent
    [outcome] = target.outcomes
    assert outcome.result == "accepted"
    assert outcome.owner is not None and outcome.owner.sender_id == "conversation-42"
    assert outcome.answer is not None and outcome.answer.errand_id == errand_id
    assert outcome.answer.text == "Your order left our warehouse today."
    assert outcome.attachment_names == ("tracking.txt", "invoice.txt", "terms.txt")


async def test_the_simulator_with_a_wrong_secret_is_refused(
    sandbox: Sandbox, receiver: tuple[str, Receiver]
) -> None:
    url, target = receiver
    errand_id = await _new_errand(sandbox)
    await target.handler.registry.record(errand_id, "conversation-42", None)
    result = await _post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", {
        "errand_id": errand_id, "body": "Hello", "callback_url": url, "api_secret": "guess",
    })
    assert result["status"] == 401
    assert [o.result for o in target.outcomes] == ["unauthorized"]


async def test_an_answer_to_another_bots_errand_is_acknowledged(
    sandbox: Sandbox, receiver: tuple[str, Receiver]
) -> None:
    url, target = receiver
    result = await _post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", {
        "errand_id": "999999", "body": "Hello", "callback_url": url, "api_secret": SECRET,
    })
    assert result["status"] == 200
    assert [o.result for o in target.outcomes] == ["unknown_errand"]

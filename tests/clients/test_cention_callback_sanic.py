"""The callback core behind a streamed route of current Sanic (Rasa 3.6's sanic 21 is covered
by tests/connectors/test_cention.py): body limit while streaming, and the full outcome."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses
from sanic import Sanic, response
from sanic.request import Request

from rasa_service_desk.clients.cention.callback import (
    CallbackHandler,
    CallbackOutcome,
    read_request_body,
)
from tests.clients.test_cention_callback import make_handler, mock_attachments, sample_callback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, CallbackHandler,
                                                         list[CallbackOutcome]]]:
    handler = make_handler(tmp_path, max_body_bytes=20_000)
    outcomes: list[CallbackOutcome] = []
    Sanic.test_mode = True
    app = Sanic(f"cention_{uuid.uuid4().hex}")

    @app.post("/webhooks/cention/webhook", stream=True)
    async def receive(request: Request) -> response.HTTPResponse:
        outcome = await handler.handle(await read_request_body(request, handler.max_body_bytes))
        outcomes.append(outcome)
        return response.json(outcome.body(), status=outcome.status)

    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.start_serving()
    try:
        yield f"http://127.0.0.1:{port}/webhooks/cention/webhook", handler, outcomes
    finally:
        server.close()
        await server.wait_closed()


async def _post(url: str, data: bytes | AsyncIterator[bytes]) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=data) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_the_sample_is_accepted_on_current_sanic(
    served: tuple[str, CallbackHandler, list[CallbackOutcome]],
) -> None:
    url, handler, outcomes = served
    await handler.registry.record("2256", "conversation-42", "socketio")
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        mock_attachments(mock, {788: "a.txt", 789: "b.txt", 790: "c.txt"})
        status, body = await _post(url, json.dumps(sample_callback()).encode())
    assert (status, body) == (200, {"status": "accepted"})
    assert outcomes[0].attachment_names == ("a.txt", "b.txt", "c.txt")


async def test_a_streamed_body_is_cut_off_at_the_limit(
    served: tuple[str, CallbackHandler, list[CallbackOutcome]],
) -> None:
    url, _, outcomes = served
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1000

    status, body = await _post(url, chunks())  # chunked: no Content-Length to go by
    assert (status, body) == (413, {"status": "too_large"})
    assert [o.result for o in outcomes] == ["too_large"]


async def test_a_declared_oversized_body_is_refused(
    served: tuple[str, CallbackHandler, list[CallbackOutcome]],
) -> None:
    url, _, _ = served
    status, body = await _post(url, b" " * 20_001)
    assert (status, body) == (413, {"status": "too_large"})


async def test_a_wrong_secret_is_refused_on_current_sanic(
    served: tuple[str, CallbackHandler, list[CallbackOutcome]],
) -> None:
    url, handler, _ = served
    await handler.registry.record("2256", "conversation-42", "socketio")
    status, body = await _post(url, json.dumps(sample_callback(secret="nope")).encode())
    assert (status, body) == (401, {"status": "unauthorized"})

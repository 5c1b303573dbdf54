"""The machinery every simulator shares: counters, injected faults, latency, control API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rasa_service_desk.sandbox.core import Routes, Simulator


class EchoSimulator(Simulator):
    name = "echo"

    def reset_state(self) -> None:
        self.items: list[Any] = []

    def add_routes(self, routes: Routes) -> None:
        async def create(request: web.Request) -> web.Response:
            self.items.append(await request.json())
            return web.json_response({"id": len(self.items)}, status=201)

        async def read(request: web.Request) -> web.Response:
            return web.json_response({"id": request.match_info["id"]})

        routes.add_post("/items", create)
        routes.add_get("/items/{id}", read)

    def state(self) -> dict[str, Any]:
        return {"items": self.items}


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(EchoSimulator().app())) as test_client:
        yield test_client


async def test_calls_are_counted_by_route_template(client: TestClient) -> None:
    await client.get("/items/1")
    await client.get("/items/2")
    await client.post("/items", json={"a": 1})
    calls = await (await client.get("/_sandbox/calls")).json()
    assert calls == {"GET /items/{id}": 2, "POST /items": 1}


async def test_fault_is_consumed_by_matching_requests_only(client: TestClient) -> None:
    await client.post("/_sandbox/faults", json=[{"status": 503, "times": 2, "path": "/items/"}])
    assert (await client.post("/items", json={})).status == 201
    assert (await client.get("/items/1")).status == 503
    assert (await client.get("/items/1")).status == 503
    assert (await client.get("/items/1")).status == 200


async def test_rate_limit_fault_carries_retry_after(client: TestClient) -> None:
    await client.post("/_sandbox/faults", json={"status": 429})
    resp = await client.get("/items/1")
    assert resp.status == 429 and resp.headers["Retry-After"] == "0"


async def test_malformed_fault_answers_html(client: TestClient) -> None:
    await client.post("/_sandbox/faults", json={"malformed": True})
    resp = await client.get("/items/1")
    assert resp.status == 200 and resp.content_type == "text/html"


async def test_state_and_reset(client: TestClient) -> None:
    await client.post("/items", json={"title": "x"})
    assert await (await client.get("/_sandbox/state")).json() == {"items": [{"title": "x"}]}
    await client.post("/_sandbox/faults", json={"status": 500})
    await client.post("/_sandbox/reset")
    assert await (await client.get("/_sandbox/state")).json() == {"items": []}
    assert await (await client.get("/_sandbox/calls")).json() == {}
    assert (await client.get("/items/1")).status == 200


async def test_latency_delays_vendor_calls(client: TestClient) -> None:
    await client.post("/_sandbox/latency", json={"seconds": 0.05})
    loop = __import__("asyncio").get_running_loop()
    started = loop.time()
    await client.get("/items/1")
    assert loop.time() - started >= 0.05


@pytest.mark.parametrize(("fault", "status", "body"), [
    ({"status": 504}, 504, b'{"error": "injected 504"}'),
    ({"status": 502, "malformed": True}, 502, b"<html>502 Bad Gateway</html>"),
    ({"malformed": True}, 200, b"<html>502 Bad Gateway</html>"),
    ({"empty": True}, 200, b""),
    ({"delay": 0.2}, 201, b'{"id": 1}'),
])
async def test_a_fault_after_processing_keeps_what_the_vendor_did(
    client: TestClient, fault: dict[str, Any], status: int, body: bytes,
) -> None:
    await client.post("/_sandbox/faults", json={**fault, "after": True, "path": "/items"})
    resp = await client.post("/items", json={"a": 1})
    assert (resp.status, await resp.read()) == (status, body)
    state = await (await client.get("/_sandbox/state")).json()
    assert state["items"] == [{"a": 1}]  # processed, whatever the reply said


async def test_a_fault_before_processing_leaves_nothing_behind(client: TestClient) -> None:
    await client.post("/_sandbox/faults", json={"status": 504, "path": "/items"})
    assert (await client.post("/items", json={"a": 1})).status == 504
    assert (await (await client.get("/_sandbox/state")).json())["items"] == []


async def test_a_dropped_connection_after_processing_has_no_reply(client: TestClient) -> None:
    await client.post("/_sandbox/faults", json={"drop": True, "after": True, "path": "/items"})
    with pytest.raises(aiohttp.ClientError):
        await client.post("/items", json={"a": 1})
    assert (await (await client.get("/_sandbox/state")).json())["items"] == [{"a": 1}]

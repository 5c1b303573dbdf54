"""`python -m rasa_service_desk.sandbox`: the event loop it serves on."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rasa_service_desk.sandbox import __main__ as sandbox_main

uvloop = pytest.importorskip("uvloop")  # installed with Sanic on CPython outside Windows


def test_serves_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(sandbox_main.web, "run_app",
                        lambda app, **options: served.update(app=app, **options))
    sandbox_main.main(["--port", "18999", "--latency-ms", "5"])
    try:
        assert isinstance(served["loop"], uvloop.Loop)
        assert served["port"] == 18999
    finally:
        served["loop"].close()


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    loop = sandbox_main.event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


async def test_every_simulator_answers_on_one_port_whatever_the_aiohttp() -> None:
    """The application `python -m rasa_service_desk.sandbox` serves, over real HTTP with a
    `Host: 127.0.0.1:<port>` header. Also run in Rasa 3.6's environment (aiohttp 3.9 with a
    newer yarl), where mounting the simulators as aiohttp sub-applications answered 500 to
    every request, `/health` included; URLs the simulators build point back at them."""
    from aiohttp.test_utils import TestClient, TestServer

    from rasa_service_desk.sandbox.loop import API, SANDBOX_AUTH_TOKEN

    async with TestClient(TestServer(sandbox_main.build_app(), host="127.0.0.1")) as client:
        health = await client.get("/health")
        assert health.status == 200
        assert (await health.json())["simulators"] == ["benti", "cention", "imbee", "loop"]
        for vendor in ("benti", "cention", "imbee", "loop"):
            calls = await client.get(f"/{vendor}/_sandbox/calls")
            assert calls.status == 200 and await calls.json() == {}
        invite = await client.post(f"/loop{API}/invite/url",
                                   params={"authToken": SANDBOX_AUTH_TOKEN}, json={})
        assert invite.status == 200, await invite.text()
        assert (await invite.json())["url"] == str(client.make_url("/loop/create"))
        unknown = await client.get("/benti/no/such/route")
        assert unknown.status == 404
        counted = await (await client.get("/loop/_sandbox/calls")).json()
        assert counted == {f"POST /loop{API}/invite/url": 1}
        assert await (await client.get("/benti/_sandbox/calls")).json() == {
            "GET /benti/no/such/route": 1}

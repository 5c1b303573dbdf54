"""The load generator's two connection models, counted at a real server.

The main levels keep one connection per conversation; the scaling run opens one per call,
as Rasa 3.6 sends action calls. Which one a level uses decides how Sanic's workers share
the calls, so a mix-up would make the scaling table measure something else.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from bench import loadgen


async def connections_used(connection_per_call: bool) -> tuple[loadgen.LoadResult, int]:
    """Drive 40 calls from 4 conversations; return the result and the connections seen."""
    peers: set[object] = set()

    async def webhook(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({"events": [], "responses": []})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    async with TestServer(app) as server:
        result = await loadgen.drive(str(server.make_url("/webhook")),
                                     lambda _: (b"{}", None), concurrency=4, max_requests=40,
                                     max_seconds=60, connection_per_call=connection_per_call)
    return result, len(peers)


async def test_conversations_keep_their_connections_by_default() -> None:
    result, connections = await connections_used(connection_per_call=False)
    assert (result.requests, result.errors) == (40, 0)
    assert connections <= 4


async def test_a_connection_per_call_as_rasa_sends_them() -> None:
    result, connections = await connections_used(connection_per_call=True)
    assert (result.requests, result.errors) == (40, 0)
    assert connections == 40

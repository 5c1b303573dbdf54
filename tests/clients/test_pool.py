"""The vendor connection pool: sized by settings, and a full pool is logged, not silent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from rasa_service_desk.clients import pool
from rasa_service_desk.clients.http import HttpClient, RetryPolicy, close_shared_sessions
from rasa_service_desk.clients.settings import load_integrations


@pytest.fixture
async def slow_vendor() -> AsyncIterator[str]:
    """A loopback vendor that answers after 50 ms."""

    async def answer(_: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/slow"
    await close_shared_sessions()
    await runner.cleanup()
    pool.configure_pool(pool.DEFAULT_POOL_SIZE, pool.DEFAULT_POOL_SIZE_PER_HOST)


async def test_a_full_pool_is_logged_once_per_interval(
        slow_vendor: str, caplog: pytest.LogCaptureFixture) -> None:
    pool.configure_pool(total=10, per_host=2)
    client = HttpClient("benti", retry=RetryPolicy(attempts=1))
    with caplog.at_level(logging.WARNING, logger="rasa_service_desk.clients.pool"):
        replies = await asyncio.gather(*(client.request_json("GET", slow_vendor)
                                         for _ in range(6)))
    assert replies == [{"ok": True}] * 6  # the waiting calls were served, only later
    warnings = [r.getMessage() for r in caplog.records if "pool full" in r.getMessage()]
    assert len(warnings) == 1  # 4 calls waited; one line per minute says so
    assert "HTTP_POOL_SIZE (now 10)" in warnings[0]
    assert "HTTP_POOL_SIZE_PER_HOST (now 2)" in warnings[0]
    assert pool.pool_waits() == 4


async def test_a_pool_with_room_logs_nothing(
        slow_vendor: str, caplog: pytest.LogCaptureFixture) -> None:
    client = HttpClient("benti", retry=RetryPolicy(attempts=1))
    with caplog.at_level(logging.WARNING, logger="rasa_service_desk.clients.pool"):
        await asyncio.gather(*(client.request_json("GET", slow_vendor) for _ in range(6)))
    assert not [r for r in caplog.records if "pool full" in r.getMessage()]
    assert pool.pool_waits() == 0


def test_the_warning_is_rate_limited_and_counts_what_it_skipped() -> None:
    now = [1000.0]
    watch = pool.PoolWatch(pool.PoolLimits(4, 2), interval=60, clock=lambda: now[0])
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("rasa_service_desk.clients.pool")
    logger.addHandler(handler)
    try:
        watch.record(0.01)
        now[0] += 30
        watch.record(0.2)
        watch.record(0.02)
        now[0] += 31
        watch.record(0.03)
    finally:
        logger.removeHandler(handler)
    assert len(logged) == 2
    assert "1 request(s)" in logged[0]
    assert "3 request(s)" in logged[1] and "longest 200 ms" in logged[1]
    assert watch.waits == 4


def test_pool_sizes_are_settings_applied_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_POOL_SIZE", "64")
    monkeypatch.setenv("HTTP_POOL_SIZE_PER_HOST", "16")
    try:
        load_integrations(["benti"], env_file=None)
        assert pool.pool_limits() == pool.PoolLimits(64, 16)
    finally:
        pool.configure_pool(pool.DEFAULT_POOL_SIZE, pool.DEFAULT_POOL_SIZE_PER_HOST)

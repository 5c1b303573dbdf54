"""Session-wide real servers: the simulators and an action server wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.redis import RedisServer, running_redis
from tests.support.servers import ActionServer, Sandbox, running_action_server, running_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """All four simulators in one process on a free port."""
    with running_sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway local redis-server (started on first use) for the Redis store's tests."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def action_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """The real rasa-sdk action server (`python -m rasa_sdk --actions actions`), every
    integration pointed at the simulators with SANDBOX=1."""
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url}) as server:
        yield server


@pytest.fixture(autouse=True)
async def _close_http_sessions() -> AsyncIterator[None]:
    """Each test runs on its own event loop: close the shared HTTP session it opened."""
    yield
    from rasa_service_desk.clients.http import close_shared_sessions

    await close_shared_sessions()

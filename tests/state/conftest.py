"""Both backends of the state store: the SQLite default and a real Redis server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rasa_service_desk.state import StateStore, open_store
from tests.support.redis import RedisServer


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                redis_server: RedisServer) -> AsyncIterator[StateStore]:
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    else:
        opened = open_store(redis_server.url)
        await opened._client().flushdb()  # type: ignore[attr-defined]
    yield opened
    await opened.close()

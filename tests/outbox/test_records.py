"""A filed submission's record and what its kind keeps with it reach the store together."""

from __future__ import annotations

from typing import Any

import pytest

from rasa_service_desk.outbox.records import DONE, RECORDS, mark_done
from rasa_service_desk.state import StateStore, open_store
from tests.support.redis import RedisServer


async def reads(store: StateStore) -> int:
    """How many times Redis has read a client's request (pipelines count once)."""
    info: dict[str, Any] = await store._client().info("stats")  # type: ignore[attr-defined]
    return int(info["total_reads_processed"])


async def test_the_outcome_and_what_is_kept_with_it_share_one_round_trip(
    redis_server: RedisServer,
) -> None:
    store = open_store(redis_server.url)
    try:
        await store.put("warm", "up", {"connection": "open"})
        before = await reads(store)
        await mark_done(store, "submission-1", {"id": "E-1"},
                        store.put("owners", "E-1", {"sender_id": "conv-1"}))
        after = await reads(store)
        assert after - before == 2  # the two writes, then this INFO itself
        assert await store.get(RECORDS, "submission-1") == {"state": DONE,
                                                            "outcome": {"id": "E-1"}}
        assert await store.get("owners", "E-1") == {"sender_id": "conv-1"}
    finally:
        await store.close()


async def test_a_failure_of_what_is_kept_never_fails_the_filed_submission(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_store(redis_server.url)

    async def broken() -> None:
        raise RuntimeError("owner store down")

    try:
        await mark_done(store, "submission-2", {"id": "E-2"}, broken())
        assert (await store.get(RECORDS, "submission-2") or {}).get("state") == DONE
        assert "what is kept with its outcome was not" in caplog.text
        assert "owner store down" in caplog.text  # the traceback, for whoever fixes it
    finally:
        await store.close()


async def test_a_cention_errands_owner_goes_with_its_outcome(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cention's `remember` issues the owner's write before its first await, so it joins
    the outcome's round trip."""
    from rasa_service_desk.actions import cention
    from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry

    store = open_store(redis_server.url)
    monkeypatch.setattr(cention, "errand_registry", lambda: ErrandRegistry(store))
    try:
        await store.put("warm", "up", {"connection": "open"})
        before = await reads(store)
        await mark_done(store, "submission-3", {"id": "E-3"}, cention.errand_filed(
            {"sender_id": "conv-3", "channel": "rest"}, {"id": "E-3"}))
        assert await reads(store) - before == 2  # the two writes, then this INFO itself
        owner = await ErrandRegistry(store).owner("E-3")
        assert owner is not None and owner.sender_id == "conv-3"
    finally:
        await store.close()

"""Replicas sharing one outbox: two delivery workers (as in two action-server processes)
passing over the same queued submissions at once file each exactly once, on the SQLite file
and on Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rasa_service_desk.clients.benti import BentiClient, BentiSettings, NewTicket
from rasa_service_desk.outbox import NAMESPACE, Kind, new_entry, register
from rasa_service_desk.outbox.records import RECORDS, mark_queued
from rasa_service_desk.outbox.settings import OutboxSettings
from rasa_service_desk.outbox.worker import DeliveryWorker
from rasa_service_desk.state import StateStore, open_store
from tests.outbox.conftest import RASA_TOKEN, FakeRasa
from tests.support.redis import RedisServer
from tests.support.servers import Sandbox

ENTRIES = 30


@pytest.fixture(params=["sqlite", "redis"])
async def state_url(request: pytest.FixtureRequest, tmp_path: Path,
                    redis_server: RedisServer) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'replicas.sqlite3'}"
        return
    store = open_store(redis_server.url)
    await store._client().flushdb()  # type: ignore[attr-defined]
    await store.close()
    yield redis_server.url


def ticket_kind(sandbox: Sandbox) -> Kind:
    """Tickets filed with the real Benti client at the simulator."""
    client = BentiClient(BentiSettings().for_sandbox(sandbox.url))

    async def send(payload: dict[str, Any]) -> dict[str, Any]:
        ticket = await client.create_ticket(NewTicket(
            title=payload["title"], message="Queued while Benti was down.",
            customer_name="Replica Test", customer_email="replica@example.com"))
        return {"id": ticket.id, "reference": ticket.reference}

    return register(Kind("test.replica_ticket", "benti", send, intent="benti_submission_update"))


def settings(rasa: FakeRasa) -> OutboxSettings:
    return OutboxSettings.load(env_file=None, poll_seconds=0.2, max_backoff_seconds=1,
                               rasa_url=rasa.url, rasa_token=RASA_TOKEN)


async def test_two_workers_deliver_each_of_thirty_entries_once(
        state_url: str, sandbox: Sandbox, fake_rasa: FakeRasa) -> None:
    kind = ticket_kind(sandbox)
    prefix = f"Replica {uuid.uuid4().hex[:8]}"
    writer = open_store(state_url)
    senders = {}
    for n in range(ENTRIES):
        key, sender = uuid.uuid4().hex * 2, uuid.uuid4().hex
        senders[f"{prefix} #{n}"] = sender
        entry = new_entry(kind, sender, {"title": f"{prefix} #{n}"}, uncertain_since=None,
                          error="VendorUnavailable")
        await writer.put(NAMESPACE, key, {**entry, "next_attempt_at": time.time()})
        await mark_queued(writer, key, time.time(), ttl=3600)
    # Two processes' stores and workers on one state.
    stores: list[StateStore] = [open_store(state_url), open_store(state_url)]
    workers = [DeliveryWorker(store, settings(fake_rasa)) for store in stores]
    try:
        for _ in range(20):
            handled = await asyncio.gather(*(w.run_pass() for w in workers),
                                           *(w.run_pass() for w in workers))
            if not await writer.keys(NAMESPACE) and not any(handled):
                break
        assert await writer.keys(NAMESPACE) == []
    finally:
        for store in stores:
            await store.close()
    filed = [t["title"] for t in sandbox.state("benti")["tickets"]
             if t["title"].startswith(prefix)]
    assert sorted(filed) == sorted(senders)  # each once
    told = [call["conversation"] for call in fake_rasa.calls
            if call["conversation"] in set(senders.values())]
    assert sorted(told) == sorted(senders.values())  # each conversation told once
    for key in await writer.keys(RECORDS):
        record = await writer.get(RECORDS, key)
        assert record is not None and record["state"] == "done"
    await writer.close()

"""What the outbox tests share: a fake of Rasa's HTTP API (`tests.support.fake_rasa`), the
action server's environment and the store it writes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from rasa_service_desk.outbox import NAMESPACE
from rasa_service_desk.state import open_store
from rasa_service_desk.state.held_messages import release
from tests.support.fake_rasa import RASA_TOKEN, FakeRasa, running_fake_rasa, wait_for

__all__ = ["RASA_TOKEN", "FakeRasa", "wait_for"]


@pytest.fixture(scope="module")
def fake_rasa() -> Iterator[FakeRasa]:
    with running_fake_rasa() as rasa:
        yield rasa


def outbox_env(sandbox_url: str, rasa_url: str, state_url: str,
               **extra: str) -> dict[str, str]:
    """The action server's environment for the outbox tests: fast passes, short backoff,
    one attempt per vendor request (so each injected fault is one failed attempt)."""
    return {"SANDBOX": "1", "SANDBOX_URL": sandbox_url, "STATE_URL": state_url,
            "OUTBOX_POLL_SECONDS": "0.2", "OUTBOX_MAX_BACKOFF_SECONDS": "1",
            "OUTBOX_RASA_URL": rasa_url, "OUTBOX_RASA_TOKEN": RASA_TOKEN,
            "BENTI_RETRY_ATTEMPTS": "1", "CENTION_RETRY_ATTEMPTS": "1",
            "LOOP_RETRY_ATTEMPTS": "1", **extra}


# -- reading the store the action server writes ----------------------------------------------

async def all_entries(state_url: str) -> dict[str, dict[str, Any]]:
    store = open_store(state_url)
    try:
        found = {}
        for key in await store.keys(NAMESPACE):
            entry = await store.get(NAMESPACE, key)
            if entry is not None:
                found[key] = entry
        return found
    finally:
        await store.close()


def entries_of(state_url: str, sender_id: str) -> dict[str, dict[str, Any]]:
    """The outbox entries of one conversation, by key."""
    return {key: entry for key, entry in asyncio.run(all_entries(state_url)).items()
            if entry.get("sender_id") == sender_id}


async def _get(state_url: str, namespace: str, key: str) -> dict[str, Any] | None:
    store = open_store(state_url)
    try:
        return await store.get(namespace, key)
    finally:
        await store.close()


def stored(state_url: str, namespace: str, key: str) -> dict[str, Any] | None:
    return asyncio.run(_get(state_url, namespace, key))


async def _held(state_url: str, sender_id: str) -> list[dict[str, Any]]:
    store = open_store(state_url)
    try:
        return await release(store, sender_id)
    finally:
        await store.close()


def held_messages(state_url: str, sender_id: str) -> list[dict[str, Any]]:
    """Take the bot messages held for a conversation (as the REST channel would)."""
    return asyncio.run(_held(state_url, sender_id))

"""The drop-in REST channel inside Rasa 3.6's Sanic: Rasa's contract, plus held messages."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.connectors.rest import RestInput
from rasa_service_desk.state import StateStore, open_store
from rasa_service_desk.state.held_messages import hold

pytestmark = pytest.mark.rasa


class EchoAgent:
    """Stands in for `Agent.handle_message`: the bot answers every message with an echo."""

    async def handle_message(self, message: UserMessage) -> None:
        await message.output_channel.send_text_message(message.sender_id or "",
                                                       f"echo: {message.text}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}")


@asynccontextmanager
async def rest_app(store: StateStore) -> AsyncIterator[str]:
    Sanic.test_mode = True
    app = Sanic(f"rasa_{uuid.uuid4().hex}")
    app.ctx.agent = EchoAgent()
    register([RestInput(store)], app, "/webhooks/")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.start_serving()
    try:
        yield f"http://127.0.0.1:{port}/webhooks/rest/webhook"
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()


async def say(url: str, sender: str, text: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        url, json={"sender": sender, "message": text}
    ) as resp:
        assert resp.status == 200
        return list(await resp.json())


async def test_without_held_messages_it_answers_like_rasas_rest_channel(
    store: StateStore,
) -> None:
    async with rest_app(store) as url:
        assert await say(url, "c1", "hello") == [{"recipient_id": "c1", "text": "echo: hello"}]


async def test_held_messages_come_first_in_the_next_reply_once_and_in_order(
    store: StateStore,
) -> None:
    await hold(store, "c1", [{"recipient_id": "c1", "text": "Our team answered:"},
                             {"recipient_id": "c1", "text": "Your refund is on its way.",
                              "buttons": [{"title": "Thanks", "payload": "/thank"}]}])
    await hold(store, "someone-else", [{"recipient_id": "someone-else", "text": "Not yours"}])
    async with rest_app(store) as url:
        first = await say(url, "c1", "any news?")
        second = await say(url, "c1", "thanks")
    assert [m.get("text") for m in first] == ["Our team answered:",
                                              "Your refund is on its way.", "echo: any news?"]
    assert first[1]["buttons"] == [{"title": "Thanks", "payload": "/thank"}]
    assert second == [{"recipient_id": "c1", "text": "echo: thanks"}]


async def test_held_messages_survive_a_restart_of_rasa(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    await hold(open_store(url), "c1", [{"recipient_id": "c1", "text": "held"}])
    async with rest_app(open_store(url)) as webhook:  # a new process would open the file anew
        reply = await say(webhook, "c1", "hi")
    assert [m["text"] for m in reply] == ["held", "echo: hi"]


async def test_two_concurrent_messages_show_a_held_message_once(store: StateStore) -> None:
    await hold(store, "c1", [{"recipient_id": "c1", "text": "held"}])
    async with rest_app(store) as url:
        replies = await asyncio.gather(*(say(url, "c1", f"m{n}") for n in range(5)))
    assert sum(m["text"] == "held" for reply in replies for m in reply) == 1


def test_credentials_take_a_state_url_and_refuse_unknown_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_URL", raising=False)
    channel = RestInput.from_credentials({"state_url": f"sqlite:///{tmp_path / 's.sqlite3'}"})
    assert "s.sqlite3" in channel.store.description
    assert channel.name() == "rest"
    with pytest.raises(ConfigurationError, match="stat_url"):
        RestInput.from_credentials({"stat_url": "sqlite:///x.sqlite3"})
    with pytest.raises(ConfigurationError, match="STATE_URL"):
        RestInput.from_credentials({"state_url": "redis://127.0.0.1:1/0"})

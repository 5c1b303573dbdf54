"""The drop-in socket.io channel holds what no connected socket would receive (run in
.venv-rasa: `-m rasa`).

Rasa's own HTTP server (`rasa.server.create_app`, with the API) serves a tiny rule-only bot
trained here, with the channel registered like `rasa run` does; proactive messages go
through Rasa's `POST /conversations/{id}/trigger_intent?output_channel=latest`, as the
outbox sends them. The customer is a real python-socketio client.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rasa", reason="Rasa Open Source 3.6 tests run in .venv-rasa")

import aiohttp
import socketio
from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, register
from rasa.model_training import train_core
from rasa.server import create_app
from sanic import Sanic

from rasa_service_desk.connectors.socketio import SocketIOInput, SocketIOOutputInNamespace
from rasa_service_desk.state import StateStore, StateUnavailable, open_store
from rasa_service_desk.state.held_messages import release

pytestmark = pytest.mark.rasa

NAMESPACE = "/chat"
TIMEOUT = 15.0

DOMAIN = """\
version: "3.1"
intents: [greet, nudge]
responses:
  utter_greet:
    - text: "Hello!"
  utter_nudge:
    - text: "Your ticket was filed.\\n\\nReference T-1."
      buttons:
        - title: "Thanks"
          payload: "/greet"
session_config:
  session_expiration_time: 60
  carry_over_slots_to_new_session: true
"""
CONFIG = """\
recipe: default.v1
assistant_id: socketio-hold-test
language: en
pipeline: []
policies:
  - name: RulePolicy
"""
RULES = """\
version: "3.1"
rules:
  - rule: greet
    steps:
      - intent: greet
      - action: utter_greet
  - rule: nudge
    steps:
      - intent: nudge
      - action: utter_nudge
"""
#: What the socket receives for utter_greet / utter_nudge (Rasa splits text at blank lines
#: and sends buttons as quick replies on the last part).
GREET = [{"text": "Hello!"}]
NUDGE = [{"text": "Your ticket was filed.", "quick_replies": []},
         {"text": "Reference T-1.", "quick_replies": [
             {"content_type": "text", "title": "Thanks", "payload": "/greet"}]}]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("bot")
    for name, text in {"domain.yml": DOMAIN, "config.yml": CONFIG,
                       "rules.yml": RULES}.items():
        (folder / name).write_text(text)
    path = train_core(str(folder / "domain.yml"), str(folder / "config.yml"),
                      str(folder / "rules.yml"), str(folder / "models"))
    assert path, "training the test bot failed"
    return str(path)


@pytest.fixture(scope="module")
def agent(model: str) -> Agent:
    return Agent.load(model)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Rasa:
    def __init__(self, url: str, channel: SocketIOInput) -> None:
        self.url = url
        self.channel = channel

    async def trigger(self, conversation: str, intent: str) -> dict[str, Any]:
        """What the outbox does to tell a conversation about a submission."""
        async with aiohttp.ClientSession() as session, session.post(
            f"{self.url}/conversations/{conversation}/trigger_intent",
            params={"output_channel": "latest"}, json={"name": intent},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    def output(self) -> SocketIOOutputInNamespace:
        output = self.channel.get_output_channel()
        assert isinstance(output, SocketIOOutputInNamespace)
        return output


@asynccontextmanager
async def rasa_server(agent: Agent, store: StateStore, *,
                      session_persistence: bool = True) -> AsyncIterator[Rasa]:
    """Rasa's HTTP server with the API and the drop-in channel, like `rasa run
    --enable-api` with it in credentials.yml."""
    Sanic.test_mode = True
    app = create_app(agent=agent)
    channel = SocketIOInput.from_credentials({
        "session_persistence": session_persistence, "namespace": NAMESPACE})
    channel.store = store
    register([channel], app, "/webhooks/")
    app.ctx.input_channels = [channel]  # what `rasa.core.run.configure_app` sets
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.start_serving()
    try:
        yield Rasa(f"http://127.0.0.1:{port}", channel)
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()


class Customer:
    """A web-chat tab: one python-socketio client, reconnecting at will."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[dict[str, Any]] = []
        self.cursor = 0
        self.session_id: str | None = None
        self.sio: socketio.AsyncClient | None = None

    async def connect(self, session_id: str | None = None) -> str:
        sio = socketio.AsyncClient(reconnection=False)
        confirmed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        @sio.on("bot_uttered", namespace=NAMESPACE)
        async def bot_uttered(data: Any) -> None:
            self.received.append(data)

        @sio.on("session_confirm", namespace=NAMESPACE)
        async def session_confirm(data: Any) -> None:
            if not confirmed.done():
                confirmed.set_result(str(data))

        await sio.connect(self.url, socketio_path="/socket.io", namespaces=[NAMESPACE],
                          transports=["websocket"], wait_timeout=10)
        await sio.emit("session_request", {"session_id": session_id}, namespace=NAMESPACE)
        self.session_id = await asyncio.wait_for(confirmed, TIMEOUT)
        self.sio = sio
        return self.session_id

    async def say(self, text: str) -> None:
        assert self.sio is not None
        await self.sio.emit("user_uttered", {"message": text, "session_id": self.session_id},
                            namespace=NAMESPACE)

    async def receive(self, count: int) -> list[dict[str, Any]]:
        """The next `count` bot messages (waits for them), and no more for a moment."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while len(self.received) < self.cursor + count:
            assert loop.time() < deadline, (
                f"expected {count} message(s), got {self.received[self.cursor:]}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        got = self.received[self.cursor:]
        assert len(got) == count, f"expected {count} message(s), got {got}"
        self.cursor = len(self.received)
        return got

    async def nothing_new(self, seconds: float = 0.5) -> None:
        await asyncio.sleep(seconds)
        assert self.received[self.cursor:] == [], self.received[self.cursor:]

    async def disconnect(self) -> None:
        assert self.sio is not None
        await self.sio.disconnect()
        self.sio = None
        await asyncio.sleep(0.2)  # the server has seen the socket go


@asynccontextmanager
async def customer(url: str) -> AsyncIterator[Customer]:
    tab = Customer(url)
    try:
        yield tab
    finally:
        if tab.sio is not None:
            await tab.sio.disconnect()


async def test_a_proactive_message_while_the_tab_is_closed_comes_at_reconnect_once_in_order(
    agent: Agent, store: StateStore
) -> None:
    async with rasa_server(agent, store) as rasa, customer(rasa.url) as tab:
        session = await tab.connect(uuid.uuid4().hex)
        await tab.say("/greet")
        assert await tab.receive(1) == GREET
        await tab.disconnect()

        # The tab is closed: two proactive messages through Rasa's API (the latest channel
        # is socket.io, which cannot reach anybody now).
        body = await rasa.trigger(session, "nudge")
        assert "messages" not in body  # Rasa used the socket.io channel, not a collector
        await rasa.trigger(session, "greet")

        # The page comes back with the same session: both, in order, after session_confirm.
        assert await tab.connect(session) == session
        assert await tab.receive(len(NUDGE) + 1) == NUDGE + GREET
        # Once: the next reply is only the reply, and a later reconnect brings nothing.
        await tab.say("/greet")
        assert await tab.receive(1) == GREET
        await tab.disconnect()
        await tab.connect(session)
        await tab.nothing_new()
    assert await release(store, session) == []


async def test_a_connected_socket_gets_proactive_messages_live_and_nothing_is_held(
    agent: Agent, store: StateStore
) -> None:
    async with rasa_server(agent, store) as rasa, customer(rasa.url) as tab:
        session = await tab.connect(uuid.uuid4().hex)
        await tab.say("/greet")
        assert await tab.receive(1) == GREET
        await rasa.trigger(session, "nudge")
        assert await tab.receive(len(NUDGE)) == NUDGE
        assert await release(store, session) == []


async def test_held_messages_come_before_the_reply_to_the_next_message(
    agent: Agent, store: StateStore
) -> None:
    """A socket that never asked for its session again (a client that only sends) still
    gets what was held, first, with the next reply."""
    async with rasa_server(agent, store) as rasa, customer(rasa.url) as tab:
        session = await tab.connect(uuid.uuid4().hex)
        await tab.say("/greet")
        assert await tab.receive(1) == GREET
        await tab.disconnect()
        await rasa.trigger(session, "nudge")
        await tab.connect(session)
        assert await tab.receive(len(NUDGE)) == NUDGE
        await tab.say("/greet")
        assert await tab.receive(1) == GREET


#: Every kind of message Rasa's output channel sends, as `send_response` gets them.
MESSAGES: list[dict[str, Any]] = [
    {"text": "First.\n\nSecond."},
    {"text": "Pick one", "buttons": [{"title": "Yes", "payload": "/affirm"}]},
    {"image": "https://example.com/map.png"},
    {"attachment": {"type": "file", "payload": {"src": "https://example.com/a.pdf"}}},
    {"custom": {"data": {"kind": "card", "title": "Ticket T-1"}}},
    {"text": "Quick", "quick_replies": [{"title": "Ok", "payload": "/ok"}]},
]


async def send_all(output: SocketIOOutputInNamespace, recipient: Any) -> None:
    for message in MESSAGES:
        await output.send_response(recipient, {key: value if not isinstance(value, dict)
                                               else dict(value)
                                               for key, value in message.items()})


async def test_every_kind_of_message_is_held_like_the_collecting_channel_and_shown_as_live(
    agent: Agent, store: StateStore
) -> None:
    async with rasa_server(agent, store) as rasa, customer(rasa.url) as live, \
            customer(rasa.url) as away:
        live_session = await live.connect(uuid.uuid4().hex)
        away_session = await away.connect(uuid.uuid4().hex)
        await away.disconnect()

        await send_all(rasa.output(), live_session)
        await send_all(rasa.output(), away_session)

        collector = CollectingOutputChannel()
        for message in MESSAGES:
            await collector.send_response(away_session, dict(message))
        held = await release(store, away_session)
        assert held == collector.messages
        assert await release(store, live_session) == []

        # Held again, then shown at reconnect exactly as the connected tab received them.
        await send_all(rasa.output(), away_session)
        pushed = await live.receive(7)  # the text is split in two
        await away.connect(away_session)
        assert await away.receive(len(pushed)) == pushed
    assert {"data": {"kind": "card", "title": "Ticket T-1"}} not in pushed  # sent as `data`
    assert {"kind": "card", "title": "Ticket T-1"} in pushed


async def test_without_session_persistence_nothing_is_held(
    agent: Agent, store: StateStore
) -> None:
    async with rasa_server(agent, store, session_persistence=False) as rasa, \
            customer(rasa.url) as tab:
        sid = await tab.connect()
        await tab.disconnect()
        output = rasa.output()
        assert output.store is None
        await output.send_text_message(sid, "to nobody")
        await output.send_text_message("some-session", "to nobody either")
    assert await release(store, sid) == []
    assert await release(store, "some-session") == []


async def test_a_store_that_is_down_never_fails_rasa(
    agent: Agent, store: StateStore, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(*_: Any, **__: Any) -> None:
        raise StateUnavailable("redis is down")

    async with rasa_server(agent, store) as rasa, customer(rasa.url) as tab:
        session = await tab.connect(uuid.uuid4().hex)
        await tab.say("/greet")
        assert await tab.receive(1) == GREET
        await tab.disconnect()
        monkeypatch.setattr(store, "append", down)
        with caplog.at_level(logging.ERROR, "rasa_service_desk.connectors.socketio"):
            body = await rasa.trigger(session, "nudge")  # 200: Rasa processed it
        assert body["tracker"]["latest_action_name"] == "action_listen"
        assert "could not be held (StateUnavailable: redis is down)" in caplog.text
        # A connected socket is not affected: nothing is held, so the store is not asked.
        await tab.connect(session)
        await rasa.trigger(session, "nudge")
        assert await tab.receive(len(NUDGE)) == NUDGE

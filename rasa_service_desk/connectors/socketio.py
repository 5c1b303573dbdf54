"""Rasa's socket.io channel with session persistence that works, plus held messages.

A drop-in for `socketio:` in credentials.yml (same keys, same events, same path):

    rasa_service_desk.connectors.socketio.SocketIOInput:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true
      state_url: redis://redis:6379/0   # optional; default STATE_URL, else a SQLite file

Two differences from Rasa 3.6's own channel:

- it awaits `AsyncServer.enter_room`, which python-socketio made a coroutine in 5.10: Rasa
  3.6.21 calls it without `await`, so with a newer python-socketio a socket never joins its
  session's room and the customer receives no bot message at all;
- when a socket asks for its session (a page load or a reconnect) and before each message,
  it sends what was held for that conversation while no socket was connected (a Cention
  agent's answer), once and in order;
- with a `namespace:`, bot messages go to that namespace: Rasa 3.6's output channel emits
  to the default namespace `/`, where no socket of the configured namespace listens, so the
  customer would receive none of the bot's replies.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOOutput
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput

from rasa_service_desk.state import StateStore, load_store
from rasa_service_desk.state.held_messages import deliver

if TYPE_CHECKING:
    from socketio import AsyncServer

logger = logging.getLogger(__name__)


class SocketIOOutputInNamespace(SocketIOOutput):
    """Rasa's socket.io output channel, emitting in the channel's namespace."""

    def __init__(self, sio: AsyncServer, bot_message_evt: str,
                 namespace: str | None = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=socket_id,
                            namespace=self.namespace)

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        json_message.setdefault("namespace", self.namespace)
        await super().send_custom_json(recipient_id, json_message, **kwargs)


class SocketIOInput(RasaSocketIOInput):
    """socket.io at `/socket.io` (or `socketio_path`), like Rasa's own channel."""

    store: StateStore

    def get_output_channel(self) -> OutputChannel | None:
        """The output channel (also used by the Cention connector to push an answer),
        emitting in the configured namespace."""
        if self.sio is None:
            return super().get_output_channel()  # warns like Rasa's, returns None
        return SocketIOOutputInNamespace(self.sio, self.bot_message_evt, self.namespace)

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SocketIOInput:
        credentials = dict(credentials or {})
        state_url = credentials.pop("state_url", None)
        channel = super().from_credentials(credentials)
        assert isinstance(channel, SocketIOInput)
        channel.store = load_store(**({"url": state_url} if state_url else {}))
        return channel

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> SocketBlueprint:
        async def with_held_messages(message: UserMessage) -> Any:
            # Rasa's message handler made a `SocketIOOutput`, which ignores the namespace.
            output = self.get_output_channel()
            if output is not None:
                message.output_channel = output
            await self.send_held(message.sender_id or "", message.output_channel)
            return await on_new_message(message)

        webhook = super().blueprint(with_held_messages)
        sio = self.sio
        assert sio is not None

        async def session_request(sid: str, data: dict[str, Any] | None) -> None:
            data = data if isinstance(data, dict) else {}
            if not data.get("session_id"):
                data["session_id"] = uuid.uuid4().hex
            session_id = str(data["session_id"])
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(joined):  # python-socketio >= 5.10
                    await joined
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)
            if self.session_persistence:
                await self.send_held(session_id, SocketIOOutputInNamespace(
                    sio, self.bot_message_evt, self.namespace))

        # Replaces the handler Rasa's blueprint registered for the same event.
        sio.on("session_request", namespace=self.namespace)(session_request)
        return webhook

    async def send_held(self, sender_id: str, output: OutputChannel) -> None:
        """Send the messages held for `sender_id` through `output` (see `deliver`)."""
        await deliver(self.store, sender_id, output, "socket.io")


def stock_channel_is_broken(channel: Any) -> bool:
    """True for Rasa's own socket.io channel with session persistence on a python-socketio
    whose `enter_room` is a coroutine (>= 5.10): Rasa 3.6 never awaits it, so the customer
    would receive nothing. Our drop-in channel is fine with any version."""
    if not isinstance(channel, RasaSocketIOInput) or isinstance(channel, SocketIOInput):
        return False
    if not getattr(channel, "session_persistence", False):
        return False
    from socketio import AsyncServer

    return inspect.iscoroutinefunction(AsyncServer.enter_room)


BROKEN_STOCK_CHANNEL = (
    "Rasa's own `socketio` channel with `session_persistence: true` cannot deliver any bot "
    "message with this python-socketio (AsyncServer.enter_room is a coroutine that Rasa 3.6 "
    "does not await). Replace `socketio:` in credentials.yml with "
    "`rasa_service_desk.connectors.socketio.SocketIOInput:` (same keys), or install "
    "python-socketio==5.9.0 python-engineio==4.7.1 (constraints/rasa-3.6.21-py310.txt).")


def check_channels(channels: list[Any]) -> None:
    """Stop Rasa at start, with the fix, instead of letting web-chat customers get silence."""
    if any(stock_channel_is_broken(channel) for channel in channels):
        logger.error(BROKEN_STOCK_CHANNEL)
        raise RuntimeError(BROKEN_STOCK_CHANNEL)


def nobody_connected(channel: Any, sender_id: str) -> bool:
    """True when `channel` is a socket.io channel and no socket of this process is in the
    conversation's room: a message emitted now would reach nobody."""
    sio = getattr(channel, "sio", None)
    if sio is None or not isinstance(channel, RasaSocketIOInput):
        return False
    rooms = getattr(sio.manager, "rooms", {}).get(channel.namespace or "/", {})
    return not rooms.get(sender_id)

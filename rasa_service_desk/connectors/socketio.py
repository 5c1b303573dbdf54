"""Rasa's socket.io channel with session persistence that works, plus held messages.

A drop-in for `socketio:` in credentials.yml (same keys, same events, same path):

    rasa_service_desk.connectors.socketio.SocketIOInput:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true
      state_url: redis://redis:6379/0   # optional; default STATE_URL, else a SQLite file

Differences from Rasa 3.6's own channel:

- it awaits `AsyncServer.enter_room`, which python-socketio made a coroutine in 5.10: Rasa
  3.6.21 calls it without `await`, so with a newer python-socketio a socket never joins its
  session's room and the customer receives no bot message at all;
- when a socket asks for its session (a page load or a reconnect) and before each message,
  it sends what was held for that conversation while no socket was connected (a Cention
  agent's answer), once and in order;
- with a `namespace:`, bot messages go to that namespace: Rasa 3.6's output channel emits
  to the default namespace `/`, where no socket of the configured namespace listens, so the
  customer would receive none of the bot's replies;
- with `session_persistence`, a bot message for a conversation with no socket connected (the
  customer closed the tab; a proactive message such as the outbox's
  `/conversations/{id}/trigger_intent?output_channel=latest`) is held in the shared state
  instead of being emitted to an empty room, and sent when the customer comes back (see
  `SocketIOOutputInNamespace`).

Several Rasa instances: Rasa 3.6 creates its `AsyncServer` with python-socketio's
in-process manager, so an emit reaches only the sockets of the instance that emits, and
`manager.rooms` (what "connected" is judged by) lists only those. A shared manager
(python-socketio's `AsyncRedisManager`, which Rasa 3.6 does not configure) would carry emits
to every instance, but its `rooms` still lists only the local sockets: socket.io has no
cluster-wide view of a room. So whichever way the instances are run (sticky sessions, or a
shared manager), a message produced on an instance other than the one holding the customer's
socket counts as "nobody connected": it is held, not lost, and the customer sees it with the
bot's reply to their next message or when their page reconnects, not the moment it is sent.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOOutput
from rasa.core.channels.socketio import SocketIOInput as RasaSocketIOInput

from rasa_service_desk.state import StateStore, load_store
from rasa_service_desk.state.held_messages import deliver, hold

if TYPE_CHECKING:
    from socketio import AsyncServer

logger = logging.getLogger(__name__)


class SocketIOOutputInNamespace(SocketIOOutput):
    """Rasa's socket.io output channel, emitting in the channel's namespace.

    With a `store` (the channel has `session_persistence`), a message for a conversation
    whose room has no socket of this process is held in the store instead of being emitted
    to nobody; the input channel sends it when a socket asks for that session, or before
    that conversation's next message. It is held as Rasa's `CollectingOutputChannel` records
    it (`held_messages.deliver` replays it through `send_response`, as for a Cention answer
    held for the REST channel), one entry per message, in the order the bot sent them. If
    the store cannot take it, the message is emitted as before and the failure logged: it
    never fails Rasa's processing. Without a `store` (no session persistence, the room is
    the socket's id and a closed socket's conversation cannot come back) it always emits.
    """

    def __init__(self, sio: AsyncServer, bot_message_evt: str,
                 namespace: str | None = None, store: StateStore | None = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.namespace = namespace
        self.store = store

    async def _send_message(self, socket_id: str, response: Any) -> None:
        await self.sio.emit(self.bot_message_evt, response, room=socket_id,
                            namespace=self.namespace)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        if not await self._held(recipient_id, lambda collector: collector.send_text_message(
                recipient_id, text, **kwargs)):
            await super().send_text_message(recipient_id, text, **kwargs)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        if not await self._held(recipient_id, lambda collector: collector.send_image_url(
                recipient_id, image, **kwargs)):
            await super().send_image_url(recipient_id, image, **kwargs)

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        # Also what `send_quick_replies` ends in, as in the collecting channel.
        if not await self._held(recipient_id, lambda collector: collector
                                .send_text_with_buttons(recipient_id, text, buttons, **kwargs)):
            await super().send_text_with_buttons(recipient_id, text, buttons, **kwargs)

    async def send_elements(self, recipient_id: str, elements: Iterable[dict[str, Any]],
                            **kwargs: Any) -> None:
        elements = list(elements)  # read twice when the holding fails
        if not await self._held(recipient_id, lambda collector: collector.send_elements(
                recipient_id, elements, **kwargs)):
            await super().send_elements(recipient_id, elements, **kwargs)

    async def send_attachment(
        self, recipient_id: str, attachment: dict[str, Any], **kwargs: Any
    ) -> None:
        if not await self._held(recipient_id, lambda collector: collector.send_attachment(
                recipient_id, attachment, **kwargs)):
            await super().send_attachment(recipient_id, attachment, **kwargs)

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        # Held before the emit's `room` and `namespace` are added: replayed, they are the
        # ones of that moment.
        if await self._held(recipient_id, lambda collector: collector.send_custom_json(
                recipient_id, dict(json_message), **kwargs)):
            return
        json_message.setdefault("namespace", self.namespace)
        await super().send_custom_json(recipient_id, json_message, **kwargs)

    def nobody_in_room(self, room: str) -> bool:
        """True when no socket of this process is in `room` of the channel's namespace."""
        return room_is_empty(self.sio, self.namespace, room)

    async def _held(self, recipient_id: str,
                    record: Callable[[CollectingOutputChannel], Awaitable[None]]) -> bool:
        """Hold what `record` makes a collecting channel record, if nobody would receive it
        now; False when it must be emitted."""
        if self.store is None or not self.nobody_in_room(recipient_id):
            return False
        collector = CollectingOutputChannel()
        await record(collector)
        try:
            count = await hold(self.store, recipient_id, collector.messages)
        except Exception as exc:  # never into Rasa's processing: emit, as without holding
            logger.error("socket.io channel: no socket connected for a conversation and the "
                         "message could not be held (%s: %s); emitted to the empty room",
                         type(exc).__name__, exc)
            return False
        logger.info("socket.io channel: no socket connected; %d message(s) held for the "
                    "conversation's return", count)
        if not self.nobody_in_room(recipient_id):
            # A socket asked for the session while the message was being held, maybe after
            # it took what was held: send it now, so it neither waits nor comes out of order.
            await deliver(self.store, recipient_id, self, "socket.io")
        return True


class SocketIOInput(RasaSocketIOInput):
    """socket.io at `/socket.io` (or `socketio_path`), like Rasa's own channel."""

    store: StateStore

    def get_output_channel(self) -> OutputChannel | None:
        """The output channel (also used by the Cention connector to push an answer and by
        Rasa's HTTP API for `output_channel=latest`), emitting in the configured namespace
        and, with session persistence, holding what no connected socket would receive."""
        if self.sio is None:
            return super().get_output_channel()  # warns like Rasa's, returns None
        store = getattr(self, "store", None) if self.session_persistence else None
        return SocketIOOutputInNamespace(self.sio, self.bot_message_evt, self.namespace,
                                         store)

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
            output = self.get_output_channel()
            if self.session_persistence and output is not None:
                await self.send_held(session_id, output)

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
    return room_is_empty(sio, channel.namespace, sender_id)


def room_is_empty(sio: AsyncServer, namespace: str | None, room: str) -> bool:
    """True when no socket of this process, other than one being disconnected, is in
    `room` (python-socketio keeps rooms per process, even with a shared manager)."""
    manager = sio.manager
    members = getattr(manager, "rooms", {}).get(namespace or "/", {}).get(room) or {}
    leaving = getattr(manager, "pending_disconnect", {}).get(namespace or "/", ())
    return all(sid in leaving for sid in members)

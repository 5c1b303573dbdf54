"""Rasa's REST channel, plus the messages held for the customer while they were away.

A REST front end only hears the bot in the HTTP reply to its own request, so a message
that starts elsewhere (a Cention agent's answer arriving through the callback connector)
has no way to reach it. This channel is a drop-in for `rest:` in credentials.yml, with the
same URL (`/webhooks/rest/webhook`) and the same request and reply: before the customer's
message is handled, it takes the messages held for that conversation in the shared state
(`rasa_service_desk.state.held_messages`) and puts them first in the reply, so the customer
sees them, once and in order, with the bot's answer to their next message. Held messages
survive a restart of Rasa (they are in the SQLite file or in Redis).

    rasa_service_desk.connectors.rest.RestInput:
      state_url: redis://redis:6379/0   # optional; default STATE_URL, else a SQLite file
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput as RasaRestInput
from sanic import Blueprint

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.connectors.socketio import check_channels
from rasa_service_desk.state import StateStore, load_store
from rasa_service_desk.state.held_messages import deliver

logger = logging.getLogger(__name__)


class RestInput(RasaRestInput):
    """`POST /webhooks/rest/webhook {"sender": ..., "message": ...}`, like Rasa's own."""

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> RestInput:
        credentials = credentials or {}
        unknown = sorted(set(credentials) - {"state_url"})
        if unknown:
            raise ConfigurationError(
                "rest", f"unknown key(s) {', '.join(unknown)} under the REST channel in "
                "credentials.yml; known: state_url")
        overrides = {"url": credentials["state_url"]} if credentials.get("state_url") else {}
        return cls(load_store(**overrides))

    def __init__(self, store: StateStore) -> None:
        self.store = store

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        async def with_held_messages(message: UserMessage) -> Any:
            await self._send_held(message)
            return await on_new_message(message)

        webhook = super().blueprint(with_held_messages)

        @webhook.listener("before_server_start")
        async def check_other_channels(app: Any, _: Any) -> None:
            check_channels(list(getattr(app.ctx, "input_channels", None) or []))

        return webhook

    async def _send_held(self, message: UserMessage) -> None:
        """What was held for this conversation goes first in the reply."""
        await deliver(self.store, message.sender_id or "", message.output_channel, "REST")

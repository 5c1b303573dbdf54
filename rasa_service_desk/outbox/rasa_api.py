"""Rasa's HTTP API, as the outbox uses it: run an intent in a conversation.

`POST /conversations/{id}/trigger_intent?output_channel=latest` (Rasa started with
`--enable-api`, and `--auth-token` passed as `token`). Rasa then runs the bot's prediction
loop as after a customer message, and sends the bot's messages to the conversation's latest
channel when that channel can push; otherwise it returns them, and the worker holds them for
the customer's next message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from rasa_service_desk.clients.errors import IntegrationError
from rasa_service_desk.clients.http import HttpClient, RetryPolicy

#: Seconds Rasa may take to run the intent's actions (it waits for the action server).
TIMEOUT_SECONDS = 30.0


class RasaUnavailable(Exception):
    """Rasa could not be told (down, refused, or a reply that is not its API's)."""


class RasaApi:
    """The part of Rasa's HTTP API the outbox calls."""

    def __init__(self, url: str, token: SecretStr | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http = HttpClient("rasa", timeout=TIMEOUT_SECONDS,
                                retry=RetryPolicy(attempts=1))

    async def trigger_intent(self, sender_id: str, intent: str) -> list[dict[str, Any]]:
        """Run `intent` in conversation `sender_id`; returns the bot's messages Rasa
        collected instead of pushing (empty when the channel pushed them)."""
        params = {"output_channel": "latest"}
        if self.token is not None:
            params["token"] = self.token.get_secret_value()
        try:
            reply = await self._http.request(
                "POST", f"{self.url}/conversations/{quote(sender_id, safe='')}/trigger_intent",
                json_body={"name": intent, "entities": []}, params=params,
                operation="trigger_intent")
            body = reply.json()
        except IntegrationError as exc:
            raise RasaUnavailable(f"{type(exc).__name__}"
                                  + (f", HTTP {exc.status}" if exc.status else "")) from None
        messages = body.get("messages") if isinstance(body, dict) else None
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

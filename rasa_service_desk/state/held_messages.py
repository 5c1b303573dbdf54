"""Bot messages held for a conversation whose channel cannot push (Rasa's REST channel, a
socket.io session with no socket connected), shown with the bot's reply to the customer's
next message by `rasa_service_desk.connectors.rest.RestInput`.

They live in the shared state store, so they survive a restart of Rasa and are seen by
every Rasa instance; taking them is atomic, so each is shown once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from rasa_service_desk.state import StateStore, StateUnavailable

logger = logging.getLogger(__name__)

NAMESPACE = "held-messages"


async def hold(store: StateStore, sender_id: str, messages: Iterable[dict[str, Any]]) -> int:
    """Queue `messages` (Rasa's output-channel dicts: text, buttons, image, custom, ...)
    for `sender_id`, in order; returns how many."""
    count = 0
    for message in messages:
        await store.append(NAMESPACE, sender_id, dict(message))
        count += 1
    return count


async def release(store: StateStore, sender_id: str) -> list[dict[str, Any]]:
    """Take every message held for `sender_id`, oldest first (empty when none)."""
    return await store.take_all(NAMESPACE, sender_id)


class Output(Protocol):
    """What `deliver` needs of a Rasa output channel."""

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None: ...


async def deliver(store: StateStore, sender_id: str, output: Output, channel: str) -> int:
    """Send what is held for `sender_id` through `output`, oldest first; returns how many.
    If the store is down, the customer still gets the bot's answer and the messages stay
    held for the next chance."""
    try:
        held = await release(store, sender_id)
    except StateUnavailable as exc:
        logger.error("%s channel: held messages not read (%s); they stay held", channel, exc)
        return 0
    for item in held:
        # Held as a collecting channel recorded them; `send_response` takes the message
        # without its recipient.
        content = {key: value for key, value in item.items() if key != "recipient_id"}
        await output.send_response(sender_id, content)
    if held:
        logger.info("%s channel: %d held message(s) sent", channel, len(held))
    return len(held)

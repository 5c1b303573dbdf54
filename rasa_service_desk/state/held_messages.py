"""Bot messages held for a conversation whose channel cannot push (Rasa's REST channel, a
socket.io session with no socket connected), shown with the bot's reply to the customer's
next message by `rasa_service_desk.connectors.rest.RestInput`.

They live in the shared state store, so they survive a restart of Rasa and are seen by
every Rasa instance; taking them is atomic, so each is shown once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rasa_service_desk.state import StateStore

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

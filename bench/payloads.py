"""Request bodies shaped as Rasa Open Source 3.6 posts them to the action server's `/webhook`.

Every body carries the whole merged domain and a tracker with the conversation's events, as
Rasa does, so the server parses what it would parse in production. A scenario's body is
serialised once as a template; each request only substitutes its conversation id and
customer number, which keeps the load generator's own CPU cost low.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

#: Placeholders replaced per request: a conversation id unique to the request, and the
#: number of the customer (requests share a pool of returning customers).
CONVERSATION = "__bench_conversation__"
CUSTOMER = "__bench_customer__"


@lru_cache(maxsize=1)
def domain() -> dict[str, Any]:
    """All `domain/*.yml` merged, as Rasa merges them before sending the domain."""
    merged: dict[str, Any] = {"version": "3.1", "intents": [], "entities": [], "slots": {},
                              "responses": {}, "actions": [], "forms": {}}
    for path in sorted((ROOT / "domain").glob("*.yml")):
        part = yaml.safe_load(path.read_text()) or {}
        for key, value in part.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
    return merged


def user_event(text: str, intent: str = "", metadata: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
    message_id = uuid.uuid4().hex
    return {
        "event": "user", "timestamp": time.time(), "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": [],
                       "text": text, "message_id": message_id, "metadata": metadata or {}},
        "input_channel": "rest", "message_id": message_id, "metadata": metadata or {},
    }


def bot_event(text: str) -> dict[str, Any]:
    return {"event": "bot", "timestamp": time.time(), "text": text, "data": {}, "metadata": {}}


def webhook_payload(action: str, slots: dict[str, Any], turns: list[tuple[str, str]],
                    text: str, intent: str = "") -> dict[str, Any]:
    """The body Rasa 3.6 posts to run `action` after the (user, bot) `turns` and `text`."""
    history: list[dict[str, Any]] = [
        {"event": "action", "timestamp": time.time(), "name": "action_session_start"}]
    for user_text, bot_text in turns:
        history += [user_event(user_text), bot_event(bot_text)]
    latest = user_event(text, intent)
    history.append(latest)
    return {
        "next_action": action,
        "sender_id": CONVERSATION,
        "tracker": {
            "sender_id": CONVERSATION,
            "slots": slots,
            "latest_message": latest["parse_data"],
            "latest_event_time": latest["timestamp"],
            "followup_action": None,
            "paused": False,
            "events": history,
            "latest_input_channel": "rest",
            "active_loop": {},
            "latest_action": {"action_name": "action_listen"},
            "latest_action_name": "action_listen",
        },
        "domain": domain(),
        "version": "3.6.21",
    }


class BodyTemplate:
    """A serialised payload whose placeholders are filled per request."""

    def __init__(self, payload: dict[str, Any], customers: int) -> None:
        self.payload = payload
        self.text = json.dumps(payload)
        self.customers = max(1, customers)

    def for_action(self, action: str) -> BodyTemplate:
        """The same body, asking for another action (the no-op, to measure parsing alone)."""
        return BodyTemplate({**self.payload, "next_action": action}, self.customers)

    def body(self, index: int, prefix: str) -> bytes:
        text = self.text.replace(CONVERSATION, f"{prefix}-{index}")
        if CUSTOMER in text:
            text = text.replace(CUSTOMER, str(index % self.customers))
        return text.encode()

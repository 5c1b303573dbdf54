"""Action-server requests shaped exactly as Rasa Open Source 3.6 sends them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load_domain() -> dict[str, Any]:
    """All `domain/*.yml` files merged, as Rasa does before sending the domain dict."""
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


def user_event(text: str, intent: str = "", entities: list[dict[str, Any]] | None = None,
               metadata: dict[str, Any] | None = None,
               input_channel: str = "rest") -> dict[str, Any]:
    return {
        "event": "user", "timestamp": time.time(), "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": 1.0},
                       "entities": entities or [], "text": text, "message_id": uuid.uuid4().hex,
                       "metadata": metadata or {}},
        "input_channel": input_channel, "message_id": uuid.uuid4().hex,
        "metadata": metadata or {},
    }


def bot_event(text: str) -> dict[str, Any]:
    return {"event": "bot", "timestamp": time.time(), "text": text, "data": {},
            "metadata": {}}


def webhook_payload(
    action: str,
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    text: str = "hello",
    intent: str = "",
    entities: list[dict[str, Any]] | None = None,
    sender_id: str | None = None,
    active_loop: str | None = None,
    requested_slot: str | None = None,
    metadata: dict[str, Any] | None = None,
    input_channel: str = "rest",
) -> dict[str, Any]:
    """The body Rasa 3.6 posts to `/webhook` to run `action`; the latest message came
    through `input_channel`."""
    sender = sender_id or uuid.uuid4().hex
    all_slots = dict(slots or {})
    if requested_slot is not None:
        all_slots["requested_slot"] = requested_slot
    history = [{"event": "action", "timestamp": time.time(), "name": "action_session_start"},
               *(events or [])]
    latest = user_event(text, intent, entities, metadata, input_channel)
    history.append(latest)
    return {
        "next_action": action,
        "sender_id": sender,
        "tracker": {
            "sender_id": sender,
            "slots": all_slots,
            "latest_message": latest["parse_data"],
            "latest_event_time": latest["timestamp"],
            "followup_action": None,
            "paused": False,
            "events": history,
            "latest_input_channel": input_channel,
            "active_loop": {"name": active_loop} if active_loop else {},
            "latest_action": {"action_name": "action_listen"},
            "latest_action_name": "action_listen",
        },
        "domain": load_domain(),
        "version": "3.6.21",
    }


def responses(reply: dict[str, Any]) -> list[str]:
    """Names of the responses the action uttered, in order."""
    return [m.get("response") for m in reply.get("responses", []) if m.get("response")]


def slot_events(reply: dict[str, Any]) -> dict[str, Any]:
    """The slots the action set, as a dict (last write wins)."""
    return {e["name"]: e["value"] for e in reply.get("events", []) if e.get("event") == "slot"}

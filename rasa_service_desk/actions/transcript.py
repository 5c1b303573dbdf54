"""The conversation as an agent should read it, built from the tracker's events.

Tickets and errands carry it so the agent never asks the customer to repeat themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Tracker

SPEAKERS = {"user": "Customer", "bot": "Bot"}


def _when(event: dict[str, Any]) -> str:
    stamp = event.get("timestamp")
    if not isinstance(stamp, (int, float)):
        return ""
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC ")


def transcript_lines(events: Iterable[dict[str, Any]]) -> list[str]:
    """`[time] Customer: text` / `[time] Bot: text` lines, in order, skipping empty turns."""
    lines = []
    for event in events:
        speaker = SPEAKERS.get(event.get("event", ""))
        text = (event.get("text") or "").strip()
        if speaker and text and not text.startswith("/"):
            lines.append(f"{_when(event)}{speaker}: {text}")
    return lines


def transcript_text(tracker: Tracker) -> str:
    """The whole transcript as one plain-text document."""
    header = f"Conversation {tracker.sender_id}\n\n"
    return header + "\n".join(transcript_lines(tracker.events)) + "\n"


def shared_files(tracker: Tracker) -> list[dict[str, str]]:
    """Files the customer shared, as `{"url", "name"}`, from user messages' metadata.

    Channels put them under `metadata.attachments` (a list of URLs or of objects with
    `url`/`name`); anything else in the metadata is ignored.
    """
    files: list[dict[str, str]] = []
    for event in tracker.events:
        if event.get("event") != "user":
            continue
        metadata = event.get("metadata") or {}
        items = metadata.get("attachments") if isinstance(metadata, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                item = {"url": item}
            if isinstance(item, dict) and isinstance(item.get("url"), str):
                url = item["url"]
                name = item.get("name") or url.rstrip("/").rsplit("/", 1)[-1] or "attachment"
                files.append({"url": url, "name": str(name)})
    return files

"""The conversation as an agent should read it, built from the tracker's events.

Tickets and errands carry it so the agent never asks the customer to repeat themselves.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from rasa_sdk import Tracker

SPEAKERS = {"user": "Customer", "bot": "Bot"}
FILE_NAME_MAX = 120
DEFAULT_FILE_NAME = "attachment"
#: Characters that file systems or an agent's download would trip over.
_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


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
                name = item.get("name")
                name = safe_file_name(name) if isinstance(name, str) else ""
                files.append({"url": url, "name": name or file_name_from_url(url)})
    return files


def file_name_from_url(url: str) -> str:
    """The file name a URL implies: its path's last segment, percent-decoded and made safe.

    Never the query or fragment: a signed URL's signature lives there and must not end up
    in a ticket as part of a file name.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        path = ""
    return safe_file_name(unquote(path.rstrip("/").rsplit("/", 1)[-1])) or DEFAULT_FILE_NAME


def safe_file_name(name: str) -> str:
    """`name` without directories, control or reserved characters and surrounding dots or
    blanks, at most `FILE_NAME_MAX` characters (the extension kept); "" when nothing is left."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", "".join(ch for ch in name if ch.isprintable()))
    name = " ".join(name.split()).strip(" .")
    if len(name) > FILE_NAME_MAX:
        _, dot, extension = name.rpartition(".")
        keep = f"{dot}{extension}" if dot and 0 < len(extension) <= 10 else ""
        name = name[: FILE_NAME_MAX - len(keep)].rstrip(" .") + keep
    return name

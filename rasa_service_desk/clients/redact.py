"""Keep secrets and customer contact data out of the logs.

Two layers: `redact()` masks known secret values (registered from settings at startup) and
patterns that are secret or personal wherever they appear (bearer tokens, `authToken=` query
parameters, JWTs, e-mail addresses, phone numbers); `install_redaction()` applies it to every log
record of the process, so even a third-party library's log line cannot leak them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_SECRETS: set[str] = set()

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (
        re.compile(r"(?i)\b(auth_?token|access_?token|api_?key|apikey|secret|pass(?:word)?|token)"
                   r"(=|\"?\s*:\s*\"?)([^&\s\",}]+)"),
        r"\1\2***",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "***jwt***"),
    (
        re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b"),
        r"\1***@\2",
    ),
    # Phone numbers, but not ISO dates or times ("valid until 2026-11-30").
    (re.compile(r"(?<![\w/:-])(?!\d{4}-\d{2}-\d{2}\b)\+?\d[\d ()-]{6,}(\d{2})\b"), r"***\1"),
)


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values (API keys, tokens) so they are masked in every log line."""
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    """Return `text` with registered secrets, tokens, e-mails and phone numbers masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not break logging
        return
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None


_installed = False


def install_redaction() -> None:
    """Redact every log record of the process, whoever logs it and whichever handler prints it.

    A record factory runs when any record is created, so it also covers handlers that are
    configured later (rasa-sdk and Rasa set up their own) and third-party loggers.
    Idempotent.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True

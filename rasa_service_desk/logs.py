"""Logging of both processes: redaction everywhere, safe identifiers, optional JSON lines.

No personal data or secrets in any log, at any level:

- every record of the process is redacted as it is created
  (`rasa_service_desk.clients.redact`: secrets, credentials in URLs, the Imbee access link,
  e-mail addresses, phone numbers);
- the project's own log lines carry no names, free text or vendor messages verbatim: a
  conversation is named by `conversation_hash()` (`conv=3f9a1c2b`), a vendor's error by its
  status, code and `vendor_message_summary()`;
- Rasa logs the conversation itself (user messages, bot replies, slots, tracker dumps) at
  DEBUG in its own loggers; free text cannot be recognised by pattern, so the shipped
  `config/logging.yml` drops those lines (`CONVERSATION_EVENT_LOGGERS`,
  `CONVERSATION_DEBUG_MESSAGES`, `CONVERSATION_DEBUG_LOGGERS`) even under
  `rasa run --debug` (`ConversationTextFilter`; LOG_CONVERSATION_TEXT=1 lets them through
  on a test system).

Settings (environment, or `.env` in the working directory; the process's variables win):

- `LOG_FORMAT`: `text` (default) or `json`: one JSON object per line with `time`, `level`,
  `logger`, `message` and, where known, `conv`, `vendor`, `operation`, `status`,
  `duration_ms` (`JsonFormatter`);
- `LOG_PHONE_REGION`: regions whose national phone numbers are masked (`ES` or `ES,GB`;
  default `IMBEE_DEFAULT_REGION`; international numbers are always masked);
- `LOG_HASH_KEY`: key of the conversation hash; set the same value for Rasa and the action
  server when sender ids are guessable (phone numbers of SMS or WhatsApp channels).

In Rasa's process: `rasa run --logging-config-file config/logging.yml` (the filter
`RedactionFilter` installs everything when the configuration is loaded). In the action
server: `configure_action_server_logging()`, called when an integration is enabled.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rasa_service_desk.clients.redact import (
    REDACTED,
    add_record_hook,
    install_redaction,
    redact,
    redact_record,
    register_secrets,
)

#: Rasa's normal line format (what `rasa run` prints without a logging configuration).
TEXT_FORMAT = "%(asctime)s %(levelname)-8s %(name)s  - %(message)s"

#: Rasa 3.6 loggers whose structured (structlog) DEBUG events carry the conversation: user
#: text and parse data, slot values, events, dialogue states. `config/logging.yml` drops
#: those events and the plain DEBUG lines starting with `CONVERSATION_DEBUG_MESSAGES`
#: (`ConversationTextFilter(drop="structlog", messages=...)`); their other lines stay.
CONVERSATION_EVENT_LOGGERS = (
    "rasa.core.processor",
    "rasa.core.actions.action",
    "rasa.core.actions.forms",
    "rasa.core.policies.rule_policy",
    "rasa.core.policies.memoization",
    "rasa.core.brokers.kafka",
    "rasa.core.brokers.pika",
)
#: Plain DEBUG lines of those loggers that carry slot values or events.
CONVERSATION_DEBUG_MESSAGES = (
    "Validating extracted slots:",  # rasa.core.actions.action
    "The execution of 'action_extract_slots' resulted in these events:",  # ...forms
    "Canceled reminder because it is outdated",  # rasa.core.processor
)
#: Rasa 3.6 loggers whose plain DEBUG lines carry tracker dumps or replies:
#: `config/logging.yml` drops all their DEBUG lines (`ConversationTextFilter(drop="debug")`).
CONVERSATION_DEBUG_LOGGERS = (
    "rasa.core.nlg.callback",
    "rasa.core.nlg.response",
)

#: Record attributes a log line may carry (`extra=`) or `log_context()` may supply.
CONTEXT_FIELDS = ("conv", "vendor", "operation", "status", "duration_ms")
_CONTEXT_ATTRIBUTE = "_rsd_context"
_context: ContextVar[Mapping[str, Any] | None] = ContextVar("rsd_log_context", default=None)

ENV_FILE = ".env"

# -- settings ----------------------------------------------------------------------------------


def _env_file() -> dict[str, str]:
    """The variables of `.env` in the working directory (read again when it changes)."""
    try:
        stat = os.stat(ENV_FILE)
    except OSError:
        return {}
    return _read_env_file(os.path.abspath(ENV_FILE), stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_env_file(path: str, _mtime_ns: int) -> dict[str, str]:
    try:
        from dotenv import dotenv_values

        return {k: v for k, v in dotenv_values(path, encoding="utf-8").items() if v is not None}
    except Exception:  # an unreadable .env is reported by the settings, not here
        return {}


def setting(name: str, default: str = "") -> str:
    """A logging setting: the process's variable, else `.env` of the working directory."""
    value = os.environ.get(name)
    if value is None:
        value = _env_file().get(name)
    return (value or default).strip()


def log_format() -> str:
    """`json` when LOG_FORMAT=json, else `text`."""
    return "json" if setting("LOG_FORMAT").lower() == "json" else "text"


#: Variables whose values are secrets wherever they appear (their names end so).
_SECRET_VARIABLE = re.compile(r"(?i)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|SALT|HASH_KEY)$")
MIN_ENVIRONMENT_SECRET = 8  # shorter values ("1", "true") would mask ordinary words


def register_environment_secrets() -> None:
    """Mask the values of secret-named variables (`*_TOKEN`, `*_SECRET`, `*_API_KEY`, ...)
    of the environment and `.env`: Rasa's process never loads the vendors' settings, yet
    a secret could reach one of its log lines (an endpoint's token, a channel secret)."""
    values = {**_env_file(), **os.environ}
    register_secrets(v.strip() for k, v in values.items()
                     if _SECRET_VARIABLE.search(k) and len(v.strip()) >= MIN_ENVIRONMENT_SECRET)


# -- safe identifiers and vendor messages ---------------------------------------------------


def conversation_hash(sender_id: object) -> str:
    """A short, stable name for a conversation that does not reveal its sender id (which
    may be a phone number or an e-mail address on some channels): 8 hex digits of an
    HMAC-SHA256 keyed with LOG_HASH_KEY (or a fixed key when unset)."""
    key = setting("LOG_HASH_KEY", "rasa-service-desk").encode()
    digest = hmac.new(key, str(sender_id).encode(), hashlib.sha256).hexdigest()
    return digest[:8]


#: Words a vendor's error message may keep: the vocabulary of API errors. Anything else
#: (names, addresses, what the customer wrote, ids the vendor echoes) becomes `*`.
_SAFE_WORDS = frozenset((
    "a", "about", "above", "accepted", "access", "account", "active", "address", "after",
    "again", "agent", "allowed", "already", "an", "and", "answer", "answered", "any", "api",
    "are", "area", "argument", "array", "as", "at", "attachment", "attachments", "attribute",
    "auth", "authenticated", "authentication", "authorization", "authorized", "available",
    "bad", "base64", "be", "been", "before", "below", "between", "body", "boolean", "bot",
    "but", "by", "bytes", "callback", "can", "cannot", "category", "categoryid", "cellular",
    "celullar", "channel", "character", "characters", "chat", "client", "closed", "code",
    "conflict", "contact", "contain", "contains", "content", "could", "created", "creator",
    "credentials", "custom", "customer", "data", "date", "day", "days", "deleted", "denied",
    "description", "device", "did", "disabled", "does", "domain", "duplicate", "email", "empty",
    "enabled", "encoding", "entity", "equal", "errand", "errands", "error", "errors",
    "exceeded", "exceeds", "exist", "exists", "expected", "expired", "extension", "extradata",
    "failed", "field", "fields", "file", "files", "for", "forbidden", "format", "found", "from",
    "gateway", "given", "got", "greater", "has", "have", "header", "hour", "hours", "html",
    "http", "id", "ids", "idsha", "if", "in", "incorrect", "input", "integer", "internal",
    "invalid", "is", "it", "item", "json", "key", "language", "large", "later", "least",
    "length", "less", "libraries", "library", "limit", "link", "list", "location", "locked",
    "long", "longer", "loop", "loopid", "loops", "mail", "malformed", "many", "match",
    "matches", "max", "maximum", "media", "message", "method", "mime", "minimum", "minute",
    "minutes", "missing", "mobile", "more", "most", "msg", "must", "name", "no", "not", "null",
    "number", "object", "of", "offline", "on", "one", "online", "only", "open", "opened", "or",
    "out", "parameter", "parameters", "password", "pattern", "payload", "per", "permission",
    "phone", "plain", "please", "provided", "question", "questions", "queue", "quota", "rate",
    "reached", "received", "record", "reference", "refused", "reject", "rejected", "request",
    "requested", "required", "resource", "response", "responses", "retries", "retry", "same",
    "second", "seconds", "secret", "send", "sent", "server", "service", "session", "short",
    "shortcode", "shorter", "should", "size", "source", "state", "status", "string", "subject",
    "such", "survey", "taken", "text", "than", "the", "this", "ticket", "tickets", "time",
    "timeout", "title", "to", "token", "too", "try", "type", "unauthorized", "unavailable",
    "undefined", "unique", "unknown", "unsupported", "upload", "url", "use", "used", "user",
    "users", "valid", "validation", "value", "values", "virtual", "was", "were", "will", "with",
    "would", "wrong", "you", "your"
))
_TOKEN = re.compile(r"<email>|<phone>|\*\*\*|[^\W_]+(?:[_.-][^\W_]+)*|\d+|\s+|.", re.UNICODE)
_SAFE_NUMBER = re.compile(r"\d{1,4}")
MAX_VENDOR_MESSAGE = 120


def vendor_message_summary(message: object, limit: int = MAX_VENDOR_MESSAGE) -> str:
    """A vendor's error message fit for a log line: redacted, every word outside the
    vocabulary of API errors masked (a vendor may echo the customer's name or text, which
    no pattern recognises), and at most `limit` characters.

    `creator zoe@example.org (Zoe Private, +34 612 345 678) rejected` becomes
    `creator <email> (* *, <phone>) rejected`.
    """
    text = redact(" ".join(str(message or "").split()))
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if token.isspace() or token in ("<email>", "<phone>", "***"):
            out.append(token)
        elif token[0].isalnum():
            parts = re.split(r"[_.-]", token.lower())
            safe = all(p in _SAFE_WORDS or _SAFE_NUMBER.fullmatch(p) for p in parts)
            out.append(token if safe else "*")
        else:
            out.append(token)  # punctuation
    summary = "".join(out)
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"


def vendor_error_code(body: object) -> str:
    """The vendor's own error code from an error body (`{"error": {"code": ...}}`,
    `{"code": ...}`, `{"errorCode": ...}`), if it is a short token; else ""."""
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return ""
    if not isinstance(body, dict):
        return ""
    candidates = [body.get("error"), body]
    for holder in candidates:
        if isinstance(holder, dict):
            for key in ("code", "errorCode", "error_code", "type"):
                value = holder.get(key)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and \
                        re.fullmatch(r"[A-Za-z0-9_.:-]{1,40}", str(value)):
                    return str(value)
    return ""


def vendor_error_text(status: int | None, body: object, message: object) -> str:
    """`HTTP 422 (code E_USER): <summary>` for a vendor's refusal: its status, its own error
    code and `vendor_message_summary(message)`, never the message verbatim."""
    code = vendor_error_code(body)
    head = f"HTTP {status}" if status is not None else "error"
    if code:
        head += f" (code {code})"
    summary = vendor_message_summary(message)
    return f"{head}: {summary}" if summary else head


def error_text(exc: BaseException) -> str:
    """`str(exc)` for a log line, with the vendor's message it may quote (an
    `IntegrationError`'s `vendor_message`) replaced by `vendor_message_summary()`."""
    text = str(exc)
    quoted = getattr(exc, "vendor_message", "")
    if isinstance(quoted, str) and quoted.strip() and quoted in text:
        text = text.replace(quoted, vendor_message_summary(quoted))
    return text


_SAFE_QUERY_VALUE = re.compile(r"\d{1,6}|true|false")


def safe_url(url: str) -> str:
    """A URL for a log line: scheme, host and path (redacted), and the query's names with
    their values masked but for small numbers and booleans: a query may carry what the
    customer typed (a library search phrase) or a token."""
    parts = urlsplit(url)
    query = "&".join(
        f"{name}={value if _SAFE_QUERY_VALUE.fullmatch(value) else '*'}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return redact(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")))


def http_fields(vendor: str, method: str, url: str, status: int | None = None,
                duration_ms: float | None = None) -> dict[str, Any]:
    """`extra=` of a log line about one vendor call: vendor, operation (method and path,
    no query), status and duration, for the JSON lines."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    fields: dict[str, Any] = {"vendor": vendor,
                              "operation": f"{method} {redact(path)}".strip()}
    if status is not None:
        fields["status"] = status
    if duration_ms is not None:
        fields["duration_ms"] = round(duration_ms)
    return fields


def conversation_fields(sender_id: object) -> dict[str, Any]:
    """`extra=` naming a conversation safely: `{"conv": conversation_hash(sender_id)}`."""
    return {"conv": conversation_hash(sender_id)}


# -- context of a log line --------------------------------------------------------------------


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, every record carries `fields` (e.g. `conv=conversation_hash(...)`,
    `vendor="benti"`) for the JSON lines; fields of an enclosing block stay unless
    overridden."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _attach_context(record: logging.LogRecord) -> None:
    current = _context.get()
    if current:
        setattr(record, _CONTEXT_ATTRIBUTE, current)


# -- JSON lines -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`, and
    where known `conv`, `vendor`, `operation`, `status`, `duration_ms`, `exception`.

    Select it in a logging configuration with `(): rasa_service_desk.logs.JsonFormatter`.
    """

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, REDACTED, False):  # configured without the redaction
            redact_record(record)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, _CONTEXT_ATTRIBUTE, None) or _context.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                entry[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


_json_console = False


def _console_handlers() -> list[logging.StreamHandler[Any]]:
    return [h for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler)
            and getattr(h, "stream", None) in (sys.stdout, sys.stderr)]


def _keep_console_json(record: logging.LogRecord) -> None:
    """Rasa and rasa-sdk replace the console handler after the logging configuration is
    loaded (coloredlogs); in JSON mode, give whatever console handler is there the JSON
    formatter before the record is printed."""
    if _json_console:
        for handler in _console_handlers():
            if not isinstance(handler.formatter, JsonFormatter):
                handler.setFormatter(JsonFormatter())


def use_json_lines(enabled: bool = True) -> None:
    """Print the console log as JSON lines (LOG_FORMAT=json)."""
    global _json_console
    _json_console = enabled
    if enabled:
        add_record_hook(_keep_console_json)
        _keep_console_json(logging.makeLogRecord({}))


# -- set-up -----------------------------------------------------------------------------------


def setup_logging() -> None:
    """Redact every record of this process, attach the log context, mask the secrets of the
    environment, and switch to JSON lines when LOG_FORMAT=json. Idempotent."""
    install_redaction()
    register_environment_secrets()
    add_record_hook(_attach_context)
    if log_format() == "json":
        use_json_lines()


class RedactionFilter(logging.Filter):
    """The hook of `config/logging.yml`: creating it (when Rasa loads the configuration)
    sets up the redaction of every record of the process (`setup_logging`); as a handler's
    filter it also redacts records that escaped the factory."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        setup_logging()

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


class ConversationTextFilter(logging.Filter):
    """A logger's filter in `config/logging.yml` that drops the DEBUG lines carrying the
    conversation: with `drop: structlog` Rasa's structured events (rendered by structlog)
    and the lines starting with one of `messages`, with `drop: debug` every DEBUG line.
    LOG_CONVERSATION_TEXT=1 turns it off."""

    def __init__(self, name: str = "", drop: str = "debug",
                 messages: Iterable[str] = ()) -> None:
        super().__init__(name)
        if drop not in ("debug", "structlog"):
            raise ValueError(f"drop must be 'debug' or 'structlog', not {drop!r}")
        self.drop = drop
        self.messages = tuple(messages)
        self.enabled = setting("LOG_CONVERSATION_TEXT").lower() not in ("1", "true", "yes")

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.enabled or record.levelno >= logging.INFO:
            return True
        if self.drop == "debug" or _STRUCTLOG_PATH in record.pathname.replace("\\", "/"):
            return False
        return not (self.messages and record.getMessage().startswith(self.messages))


#: structlog hands its rendered events to the standard logger from its own module, which
#: the record names as the caller.
_STRUCTLOG_PATH = "/structlog/"


def configure_action_server_logging(level: str | int | None = None) -> None:
    """Logging of the action server: `setup_logging()`, and a console handler at `level`
    (LOG_LEVEL) when the SDK configured none (a Sanic worker process). Idempotent; safe
    to call again after the SDK configured its own handler."""
    setup_logging()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level or logging.INFO, format=TEXT_FORMAT)
    if _json_console:
        _keep_console_json(logging.makeLogRecord({}))

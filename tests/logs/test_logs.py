"""`rasa_service_desk.logs`: safe identifiers, vendor messages, JSON lines, the action
server's set-up, and `config/logging.yml` as Rasa 3.6 applies it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from rasa_service_desk import logs
from rasa_service_desk.logs import (
    CONVERSATION_DEBUG_LOGGERS,
    CONVERSATION_DEBUG_MESSAGES,
    CONVERSATION_EVENT_LOGGERS,
    ConversationTextFilter,
    JsonFormatter,
    conversation_hash,
    http_fields,
    log_context,
    vendor_error_code,
    vendor_error_text,
    vendor_message_summary,
)
from tests.support.servers import ROOT

LOGGING_YML = ROOT / "config" / "logging.yml"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

# -- conversation hash -------------------------------------------------------------------------


def test_conversation_hash_is_short_stable_and_reveals_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_HASH_KEY", raising=False)
    sender = "+34612345678"  # SMS and WhatsApp channels use the phone number as sender id
    first = conversation_hash(sender)
    assert first == conversation_hash(sender)
    assert len(first) == 8 and int(first, 16) >= 0
    assert first != conversation_hash("+34612345679")
    assert "612345678" not in first
    monkeypatch.setenv("LOG_HASH_KEY", "a-key-shared-by-rasa-and-the-action-server")
    assert conversation_hash(sender) != first  # keyed: the id cannot be guessed back


# -- vendor messages ---------------------------------------------------------------------------


def test_a_vendor_message_echoing_the_customer_is_summarised() -> None:
    """The measured defect: `benti HTTP 422: creator z***@example.org (<full name>, ***78)
    rejected` named the customer."""
    message = "creator zoe.private@example.org (Zoe Private, +34 612 345 678) rejected"
    summary = vendor_message_summary(message)
    assert summary == "creator <email> (* *, <phone>) rejected"
    assert vendor_message_summary("The shower in room 12 has no hot water") == \
        "The * in * 12 has no * *"


@pytest.mark.parametrize("message", [
    "title is required",
    "creator does not exist",
    "token expired",
    "Invalid API key",
    "rate limit exceeded, try again later",
    "422 - Invalid - subject too long",
    "customer_email must be a valid email",
])
def test_the_vocabulary_of_api_errors_stays_readable(message: str) -> None:
    assert vendor_message_summary(message) == message


def test_vendor_messages_are_length_capped() -> None:
    summary = vendor_message_summary("invalid " * 100)
    assert len(summary) <= logs.MAX_VENDOR_MESSAGE and summary.endswith("…")


@pytest.mark.parametrize(("body", "code"), [
    (b'{"error": {"code": "E_CREATOR", "message": "x"}}', "E_CREATOR"),
    ({"code": 1003, "message": "bad contacts"}, "1003"),
    ({"errorCode": "QUOTA"}, "QUOTA"),
    ({"code": "Zoe Private said hello"}, ""),  # not a code: free text
    (b"<html>502</html>", ""),
    ({"code": True}, ""),
])
def test_vendor_error_code(body: object, code: str) -> None:
    assert vendor_error_code(body) == code


def test_vendor_error_text() -> None:
    assert vendor_error_text(422, {"error": {"code": "E1"}}, "creator Zoe rejected") == \
        "HTTP 422 (code E1): creator * rejected"
    assert vendor_error_text(503, b"", "") == "HTTP 503"


def test_http_fields_name_the_operation_without_query_or_secrets() -> None:
    fields = http_fields("benti", "GET", "https://h.example/v1/users?address=z%40e.org", 200,
                         12.4)
    assert fields == {"vendor": "benti", "operation": "GET /v1/users", "status": 200,
                      "duration_ms": 12}
    link = http_fields("imbee", "GET", "https://c.example/web/access/s3cr3tT0ken")
    assert "s3cr3tT0ken" not in link["operation"]


# -- JSON lines --------------------------------------------------------------------------------


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.getLogger("rasa_service_desk.test").makeRecord(
        "rasa_service_desk.test", logging.WARNING, __file__, 1, message, args, None,
        extra=extra or None)
    return record


def test_json_formatter_writes_one_object_per_line_with_the_known_fields() -> None:
    logs.setup_logging()  # the record factory keeps the context of where a line was logged
    with log_context(conv="3f9a1c2b", vendor="benti"):
        record = _record("benti %s", "HTTP 422: creator *\nrejected", operation="POST /tickets",
                         status=422, duration_ms=35)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "rasa_service_desk.test"
    assert entry["message"] == "benti HTTP 422: creator *\nrejected"
    assert entry["time"].endswith("Z") and entry["time"][10] == "T"
    assert {k: entry[k] for k in ("conv", "vendor", "operation", "status", "duration_ms")} == {
        "conv": "3f9a1c2b", "vendor": "benti", "operation": "POST /tickets", "status": 422,
        "duration_ms": 35}


def test_json_formatter_redacts_even_without_the_record_factory() -> None:
    try:
        raise ValueError("bad zoe@example.org")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "to %s", ("zoe@example.org",),
                                   sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "zoe@" not in json.dumps(entry)
    assert "ValueError" in entry["exception"]
    assert "conv" not in entry


# -- the conversation-text filter ------------------------------------------------------------


def _at(level: int, pathname: str) -> logging.LogRecord:
    return logging.LogRecord("rasa.core.processor", level, pathname, 1, "m", None, None)


STRUCTLOG = "/venv/lib/python3.10/site-packages/structlog/_base.py"
RASA = "/venv/lib/python3.10/site-packages/rasa/core/processor.py"


def test_conversation_text_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_CONVERSATION_TEXT", raising=False)
    events = ConversationTextFilter(drop="structlog")
    assert not events.filter(_at(logging.DEBUG, STRUCTLOG))
    assert events.filter(_at(logging.DEBUG, RASA))  # "Predicted next action ..." stays
    assert events.filter(_at(logging.INFO, STRUCTLOG))
    slots = ConversationTextFilter(drop="structlog", messages=["Validating extracted slots:"])
    record = _at(logging.DEBUG, RASA)
    record.msg = "Validating extracted slots: {'customer_name': 'Zoe Private'}"
    assert not slots.filter(record)
    record.msg = "Calling action endpoint to run action 'action_x'."
    assert slots.filter(record)
    debug = ConversationTextFilter(drop="debug")
    assert not debug.filter(_at(logging.DEBUG, RASA))
    assert debug.filter(_at(logging.WARNING, RASA))
    monkeypatch.setenv("LOG_CONVERSATION_TEXT", "1")
    assert ConversationTextFilter(drop="debug").filter(_at(logging.DEBUG, RASA))
    with pytest.raises(ValueError, match="drop"):
        ConversationTextFilter(drop="everything")


# -- config/logging.yml ------------------------------------------------------------------------


def test_the_shipped_config_lists_the_conversation_text_loggers() -> None:
    config = yaml.safe_load(LOGGING_YML.read_text())
    assert config["version"] == 1 and config["disable_existing_loggers"] is False
    loggers = config["loggers"]
    assert {n for n, c in loggers.items() if c.get("filters") == ["conversation_events"]} == \
        set(CONVERSATION_EVENT_LOGGERS)
    assert {n for n, c in loggers.items() if c.get("filters") == ["conversation_debug"]} == \
        set(CONVERSATION_DEBUG_LOGGERS)
    assert tuple(config["filters"]["conversation_events"]["messages"]) == \
        CONVERSATION_DEBUG_MESSAGES
    # Rasa's levels stay in charge, but for the project's own loggers (Rasa 3.6 lowers the
    # root logger to WARNING while loading a model)
    assert {n: c["level"] for n, c in loggers.items() if "level" in c} == \
        {"rasa_service_desk": "INFO"}
    assert config["formatters"]["rasa"]["format"] == logs.TEXT_FORMAT


def require_rasa() -> None:
    """Skip without `.venv-rasa`, but fail in CI (CI=true or REQUIRE_RASA=1)."""
    if RASA_PYTHON.exists():
        return
    message = f"Rasa Open Source 3.6.21 is not installed at {RASA_PYTHON.parent.parent}"
    if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_RASA") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run(python: Path | str, code: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("LOG_", "IMBEE_", "PYTEST", "CENTION_"))}
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=120, cwd=cwd or ROOT, check=False,
        env={**keep, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.e2e  # starts Rasa's interpreter (a few seconds): run with the e2e tests
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_rasa_applies_the_shipped_config(log_format: str, tmp_path: Path) -> None:
    """Rasa 3.6's own set-up, in the order `rasa run --debug` applies it: the config file,
    the `rasa` level, coloredlogs (which replaces the console handler), structlog; then
    the root logger at WARNING, as loading a model leaves it (numpy.distutils)."""
    require_rasa()
    names = [*CONVERSATION_EVENT_LOGGERS, *CONVERSATION_DEBUG_LOGGERS]
    result = _run(RASA_PYTHON, f"""
        import importlib.util, logging, sys
        # a module renamed by a Rasa upgrade would silently let conversation text through
        missing = [n for n in {names!r} if importlib.util.find_spec(n) is None]
        assert not missing, missing
        from rasa.utils.common import configure_logging_and_warnings
        from rasa.utils.io import configure_colored_logging
        from rasa.utils.log_utils import configure_structlog
        import structlog
        configure_logging_and_warnings(logging.DEBUG, {str(LOGGING_YML)!r})
        configure_colored_logging(logging.DEBUG)
        configure_structlog(logging.DEBUG)
        from rasa.core import processor  # noqa: the module whose logger Rasa uses
        structlog.get_logger("rasa.core.processor").debug(
            "processor.message.parse", parse_data_text="Zoe Private wrote this")
        logging.getLogger("rasa.core.processor").debug(
            "Predicted next action 'utter_greet' with confidence 0.98.")
        logging.getLogger("rasa.core.actions.action").debug(
            "Validating extracted slots: {{'customer_name': 'Zoe Private'}}")
        logging.getLogger("rasa.core.actions.action").debug("Calling action endpoint")
        logging.getLogger("rasa.core.nlg.callback").debug("Received NLG response: Zoe")
        logging.root.setLevel(logging.WARNING)
        logging.getLogger("rasa_service_desk.connectors.cention").info("held for conv")
        logging.getLogger("rasa.core.tracker_store").debug(
            "stored for +34 612 345 678, zoe@example.org, 612.345.678 "
            "https://c.example/web/access/s3cr3tT0ken and the-env-secret-value-1")
        logging.getLogger("rasa.nlu.classifiers").debug(
            "NLU confidence 0.16065989730970512 for intent 'greet'")
    """, env={"LOG_FORMAT": log_format, "IMBEE_DEFAULT_REGION": "ES",
              "CENTION_CALLBACK_SECRET": "the-env-secret-value-1"}, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for leak in ("Zoe", "612 345 678", "612.345.678", "zoe@", "s3cr3tT0ken",
                 "the-env-secret-value-1"):
        assert leak not in out, f"{leak!r} in:\n{out}"
    assert "Predicted next action 'utter_greet' with confidence 0.98." in out
    assert "0.16065989730970512" in out and "Calling action endpoint" in out
    assert "held for conv" in out
    lines = [line for line in out.splitlines() if "rasa.core.tracker_store" in line]
    assert len(lines) == 1, out
    if log_format == "json":
        entry = json.loads(lines[0])
        assert entry["logger"] == "rasa.core.tracker_store" and entry["level"] == "DEBUG"
        assert "<phone>" in entry["message"] and "/web/access/***" in entry["message"]
    else:
        assert " DEBUG    rasa.core.tracker_store  - stored for <phone>, <email>" in lines[0]


# -- the action server's set-up ---------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_configure_action_server_logging(log_format: str, tmp_path: Path) -> None:
    """In a Sanic worker (no handler yet) it adds one at LOG_LEVEL; in JSON mode every
    console handler prints JSON lines, also one the SDK installs later (coloredlogs)."""
    result = _run(sys.executable, """
        import logging, coloredlogs
        from rasa_service_desk.logs import configure_action_server_logging, log_context
        configure_action_server_logging("DEBUG")
        log = logging.getLogger("rasa_service_desk.clients.http")
        log.debug("first to zoe@example.org", extra={"vendor": "benti", "status": 201})
        coloredlogs.install(level="DEBUG")  # rasa-sdk's set-up replaces the handler
        configure_action_server_logging("DEBUG")  # idempotent
        with log_context(conv="3f9a1c2b"):
            log.info("second")
    """, env={"LOG_FORMAT": log_format}, cwd=tmp_path)
    out = result.stderr
    assert result.returncode == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2, out
    assert "zoe@" not in out
    if log_format == "json":
        first, second = (json.loads(line) for line in lines)
        assert first["level"] == "DEBUG" and first["vendor"] == "benti" and first["status"] == 201
        assert first["message"] == "first to <email>"
        assert second["conv"] == "3f9a1c2b" and second["message"] == "second"
    else:
        assert "DEBUG" in lines[0] and "first to <email>" in lines[0]
        assert lines[1].endswith("second")

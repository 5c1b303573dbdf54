"""The redaction every log record goes through: each category of personal data and secret in
the formats people and programs write them, and the numbers that must survive (a log whose
confidences and timestamps are masked is useless for debugging).

Names and free text cannot be recognised by pattern: the end-to-end tests
(`test_logs_e2e.py`) show they never reach a log by construction."""

from __future__ import annotations

import logging
import time

import pytest

from rasa_service_desk.clients import redact as redaction
from rasa_service_desk.clients.redact import (
    EMAIL_MASK,
    PHONE_MASK,
    install_redaction,
    mask_phones,
    normalise_regions,
    phone_regions,
    redact,
    register_secrets,
    set_phone_regions,
)

# -- phone numbers ---------------------------------------------------------------------------

#: (region in use, what the customer typed, the text around it)
PHONES = [
    # Spain, national: the defect's format and its neighbours
    ("ES", "612.345.678"),
    ("ES", "612 345 678"),
    ("ES", "612 34 56 78"),
    ("ES", "612-345-678"),
    ("ES", "612345678"),
    # Great Britain, national with the trunk prefix
    ("GB", "(020) 7946 0958"),
    ("GB", "020 7946 0958"),
    ("GB", "07911 123456"),
    # Sweden and the United States, national
    ("SE", "070-123 45 67"),
    ("US", "(202) 555-0143"),
    ("US", "202.555.0143"),
    # international: masked whatever the region (none configured here)
    (None, "+34 612 345 678"),
    (None, "+34612345678"),
    (None, "+46 70 123 45 67"),
    (None, "+46 (0)70-123 45 67"),
    (None, "+44 20 7946 0958"),
    (None, "+1 202-555-0143"),
    (None, "0034 612 345 678"),
    (None, "0046701234567"),
]


@pytest.mark.parametrize(("region", "typed"), PHONES)
@pytest.mark.parametrize("template", [
    "{}",
    "my number is {} thanks",
    'user said "{}"',
    '{{"text": "{}", "intent": {{"name": "nlu_fallback", "confidence": 0.6}}}}',
    "SlotSet(key: customer_phone, value: {})",
    "call me on {}.",
    r'{{"text": "call me:\n{}"}}',  # a line break as JSON writes it
])
def test_phone_numbers_are_masked_in_every_format(region: str | None, typed: str,
                                                  template: str) -> None:
    set_phone_regions([region] if region else [])
    line = template.format(typed)
    masked = redact(line)
    assert typed not in masked
    assert PHONE_MASK in masked
    digits = "".join(ch for ch in typed if ch.isdigit())
    assert digits[-6:] not in "".join(ch for ch in masked if ch.isdigit())


def test_national_numbers_need_their_region() -> None:
    """Without a region, `612.345.678` could be an id: only international numbers are
    certain. The region comes from LOG_PHONE_REGION or IMBEE_DEFAULT_REGION."""
    set_phone_regions([])
    assert redact("call 612.345.678") == "call 612.345.678"
    set_phone_regions(["GB", "ES"])
    assert redact("call 612.345.678 or (020) 7946 0958") == f"call {PHONE_MASK} or {PHONE_MASK}"


@pytest.mark.parametrize(("line", "masked"), [
    ("2026-11-23 612345678", "2026-11-23 <phone>"),
    ("ts 1716281234 612345678", "ts 1716281234 <phone>"),
    ("call (020) 7946 0958 / 612 345 678", "call <phone> / <phone>"),
    ("612 345 678 or 612 345 679", "<phone> or <phone>"),
    ("x 612.345.678.", "x <phone>."),
])
def test_numbers_next_to_other_numbers(line: str, masked: str) -> None:
    set_phone_regions(["ES", "GB"])
    assert redact(line) == masked


def test_url_encoded_and_e164_numbers_in_urls() -> None:
    set_phone_regions([])
    assert redact("GET /users?phone=%2B34612345678&x=1") == f"GET /users?phone={PHONE_MASK}&x=1"


def test_regions_come_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOG_PHONE_REGION", raising=False)
    monkeypatch.setenv("IMBEE_DEFAULT_REGION", "es")
    set_phone_regions(None)
    assert phone_regions() == ("ES",)
    monkeypatch.setenv("LOG_PHONE_REGION", "gb, se, XX")  # unknown codes are ignored
    set_phone_regions(None)
    assert phone_regions() == ("GB", "SE")
    monkeypatch.delenv("LOG_PHONE_REGION")
    monkeypatch.delenv("IMBEE_DEFAULT_REGION")
    (tmp_path / ".env").write_text("LOG_PHONE_REGION=US\n")
    set_phone_regions(None)
    assert phone_regions() == ("US",)
    assert normalise_regions(["", " de ", "DE"]) == ("DE",)


#: Numbers in log lines that are not phone numbers, whatever the region.
NOT_PHONES = [
    '"confidence": 0.9851',
    '"confidence": 0.9851234431266785',
    "NLU confidence 0.16065989730970512 for intent 'greet' is lower than NLU threshold 0.60.",
    "Predicted next action 'utter_greet' with confidence 0.98.",
    '"timestamp": 1716281234.5678',
    "at 1716281234 (epoch seconds)",
    "at 1716281234567 (epoch milliseconds)",
    "2026-11-23T09:04:42.123Z",
    "2026-11-23 09:04:42,123 INFO rasa.core.processor - started",
    "link valid until 2026-11-30, 10 uses",
    "valid until 30/11/2026",
    "conversation 3f9a1c2b-1234-5678-9abc-def012345678",
    "errand 5f3c0a8e9b1d2c4a6e8f0a1b opened",
    "imbee chat c71b4afe41da65f919e8be53 ready",
    "EUR 1,234,567.89",
    "amount 1234567.89 EUR",
    "Rasa 3.6.21, rasa-sdk 3.21.1, Python 3.10.14",
    "listening on 192.168.100.200:5005",
    "GET /webhook 200 in 1234567 ms",
    "ticket 1001 created with 1 attachment(s)",
    "model reference-bot-d8f3337c7f5e5d7b.tar.gz",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
]


@pytest.mark.parametrize("line", NOT_PHONES)
@pytest.mark.parametrize("regions", [(), ("ES",), ("GB",), ("US",), ("DE", "SE", "FR")])
def test_numbers_that_are_not_phone_numbers_survive(line: str,
                                                    regions: tuple[str, ...]) -> None:
    set_phone_regions(regions)
    assert redact(line) == line


# -- e-mail addresses --------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "zoe.private@example.org",
    "Zoe.Private+support@Example.ORG",
    "zoë.prívate@exämple.org",
    "o'connor@mail.example.co.uk",
    "ZOE_PRIVATE@EXAMPLE.COM",
])
@pytest.mark.parametrize("template", [
    "{}", "mail {} now", '"customer_email": "{}"', "Zoe <{}>",
    "SlotSet(key: customer_email, value: {})",
])
def test_email_addresses_are_masked(address: str, template: str) -> None:
    masked = redact(template.format(address))
    assert address.split("@")[0] not in masked
    assert address.split("@")[1] not in masked
    assert EMAIL_MASK in masked


def test_url_encoded_email_addresses_are_masked() -> None:
    line = "GET https://t.example/users?address=zoe.private%40example.org -> 200"
    assert redact(line) == f"GET https://t.example/users?address={EMAIL_MASK} -> 200"


# -- secrets and links -------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "leak"), [
    ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("headers {'Authorization': 'Zx81AbcSecret', 'X-WOOS-KEY': 'k3yVal'}", "Zx81AbcSecret"),
    ("headers {'Authorization': 'Zx81AbcSecret', 'X-WOOS-KEY': 'k3yVal'}", "k3yVal"),
    ('{"apikey": "abc123", "pass": "pw1"}', "abc123"),
    ('{"apikey": "abc123", "pass": "pw1"}', "pw1"),
    ('{"client_secret": "s3cr3t", "refresh_token": "r3fr3sh"}', "s3cr3t"),
    ('{"client_secret": "s3cr3t", "refresh_token": "r3fr3sh"}', "r3fr3sh"),
    ("CENTION_CALLBACK_SECRET=cb-secret-1", "cb-secret-1"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJzdWIiOiIxIn0"),
    ("GET https://x.blazeloop.net/api/v1/surveys?authToken=Oldtbksdh&location=1", "Oldtbksdh"),
    ("GET https://h.example/p?token=t0k3n", "t0k3n"),
    ("GET https://h.example/p?a=1&apikey=ap1k3y", "ap1k3y"),
    ("GET https://maps.example/p?key=AIzaSyK3y&q=x", "AIzaSyK3y"),
    ("GET https://h.example/f?sig=s1gnature&se=2026", "s1gnature"),
    ("GET https://h.example/f?signature=s1gn4ture", "s1gn4ture"),
    ("GET https://b.s3.amazonaws.com/f.pdf?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00d",
     "f00d"),
    ("GET https://b.s3.amazonaws.com/f.pdf?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00d",
     "AKIA%2F1"),
    ("state on redis://:redis-pw@redis:6379/0", "redis-pw"),
    ("GET https://zoe:hunter2@files.example/x", "hunter2"),
    ("GET https://zoe:hunter2@files.example/x", "zoe"),
])
def test_credentials_are_masked(line: str, leak: str) -> None:
    assert leak not in redact(line)


@pytest.mark.parametrize("line", [
    "Your chat: https://chat.imbee.example/web/access/sz12APwvSBLwS43MLobzLuvlfandMJ5q",
    "url=http://127.0.0.1:46351/imbee/web/access/sz12APwvSBLwS43MLobzLuvlfandMJ5q\nThe link",
    '"imbee_chat_url": "https://chat.imbee.example/web/access/sz12APwvSBLwS43MLobzLuvlfandMJ5q"',
    "GET /imbee/web/access/sz12APwvSBLwS43MLobzLuvlfandMJ5q HTTP/1.1 200",
    "https://chat.imbee.example/access/sz12APwvSBLwS43MLobzLuvlfandMJ5q",
])
def test_the_imbee_access_link_is_masked(line: str) -> None:
    masked = redact(line)
    assert "sz12APwvSBLwS43MLobzLuvlfandMJ5q" not in masked
    assert "/access/***" in masked  # which page it was stays readable


def test_registered_secrets_are_masked_wherever_they_appear() -> None:
    register_secrets(["corp-token-xyz-0123", None, "abc"])  # too short: not registered
    assert redact("sent corp-token-xyz-0123 twice: corp-token-xyz-0123") == "sent *** twice: ***"
    assert redact("abc") == "abc"


@pytest.mark.parametrize("line", [
    "GET /api/access/settings -> 200",
    "ticket 12345 created in 35 ms",
    "password reset page (https://example.com/account/reset)",
    "token refused (HTTP 401), authenticating again and retrying once",
    '"event_key": "utter_greet", "tokens": 3',
    "benti: access token refreshed",
    "GET https://h.example/p?location=1&page=2",
])
def test_ordinary_lines_survive(line: str) -> None:
    set_phone_regions(["ES", "GB"])
    assert redact(line) == line


# -- records and cost ------------------------------------------------------------------------


def test_every_record_is_redacted_arguments_and_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    set_phone_regions(["ES"])
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("some.library").info("sending %s to %s", "zoe@example.org",
                                               "612.345.678")
        try:
            raise ValueError("bad address zoe@example.org")
        except ValueError:
            logging.getLogger("other").exception("failed for +34 612 345 678")
    assert "zoe@" not in caplog.text and "612.345.678" not in caplog.text
    assert "612 345 678" not in caplog.text
    assert "ValueError" in caplog.text and "<phone>" in caplog.text


def test_records_below_the_level_cost_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    install_redaction()
    calls: list[str] = []
    monkeypatch.setattr(redaction, "redact", lambda text: calls.append(text) or text)
    quiet = logging.getLogger("quiet.library")
    quiet.setLevel(logging.INFO)
    quiet.debug("tracker dump %s", "x" * 10_000)
    assert calls == []


def test_redaction_is_fast_enough_for_every_record() -> None:
    """Rasa at DEBUG logs tracker dumps full of floats and timestamps: most of them must
    be ruled out before the (slower) phone number matcher runs."""
    set_phone_regions(["ES", "GB"])
    event = ('{"event": "user", "timestamp": 1716281234.5678, "text": "hi", "parse_data": '
             '{"intent": {"name": "greet", "confidence": 0.9851234431266785}, '
             '"entities": [], "intent_ranking": [{"name": "bye", "confidence": 0.01234}]}} ')
    dump = event * 60  # about 13 kB
    short = "benti POST https://api.example/ticketing/v1/tickets -> 201 in 35 ms"
    redact(dump)
    started = time.perf_counter()
    for _ in range(20):
        redact(dump)
    per_dump = (time.perf_counter() - started) / 20
    started = time.perf_counter()
    for _ in range(2000):
        redact(short)
    per_line = (time.perf_counter() - started) / 2000
    assert per_dump < 0.05, f"{per_dump * 1000:.1f} ms for a 13 kB dump"
    assert per_line < 0.0005, f"{per_line * 1e6:.0f} µs for a short line"


@pytest.mark.parametrize("text", [
    "x" * 40_000 + " @ ",  # a long word before a lone "@" (base64 in a dump)
    "1 " * 40_000,  # long runs of digits and separators (feature vectors)
    "(1) " * 20_000,
    "0.5 (12) 3-4 " * 5_000,
    "token" * 10_000 + "=",
])
def test_pathological_lines_cost_linear_time(text: str) -> None:
    set_phone_regions(["ES", "GB"])
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 0.5


def test_mask_phones_leaves_text_without_candidates_untouched() -> None:
    text = "no digits here, only words and 12 small 345 numbers"
    assert mask_phones(text) is text or mask_phones(text) == text

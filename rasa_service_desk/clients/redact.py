"""Keep secrets and customer contact data out of the logs.

Two layers: `redact()` masks known secret values (registered from settings at startup) and
what is secret or personal wherever it appears; `install_redaction()` applies it to every log
record of the process, so even a third-party library's log line cannot leak them.

What `redact()` recognises:

- registered secret values (`register_secrets`), wherever they appear;
- credentials in text: `Bearer`/`Basic` values, `token=`/`"apikey": "..."`-style pairs, JWTs;
- URLs that carry credentials: user-info (`redis://:pw@host`), the Imbee access link
  (`.../web/access/<token>`, or `.../access/<token>`: whoever holds it enters the
  customer's chat), and query
  parameters such as `token`, `authToken`, `apikey`, `key`, `signature`, `sig`,
  `X-Amz-Signature`;
- e-mail addresses (also URL-encoded, `%40`);
- phone numbers as `phonenumbers.PhoneNumberMatcher` finds them: international numbers
  (`+34 612 345 678`, `0046 70 123 45 67`) always, national ones (`612.345.678`,
  `(020) 7946 0958`) in the regions of `LOG_PHONE_REGION` (comma-separated, e.g. `ES,GB`),
  else `IMBEE_DEFAULT_REGION`, else none. Numbers that are not phone numbers stay: decimals
  and confidences (`0.9851`), dates and times, Unix timestamps, IP addresses, hexadecimal ids
  and UUIDs, amounts, versions.

Free text (a customer's name, a description) cannot be recognised by pattern: the project's
log lines never carry it, and the shipped logging configuration keeps Rasa's
conversation-text loggers quiet (see `rasa_service_desk.logs`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable

import phonenumbers

_SECRETS: set[str] = set()

MASK = "***"
EMAIL_MASK = "<email>"
PHONE_MASK = "<phone>"

#: Names whose value is masked in `name=value`, `"name": "value"` and `name: value` forms
#: (query strings, JSON, headers, Python reprs): any name ending in token, secret,
#: password, apikey, ... (`authToken`, `CENTION_CALLBACK_SECRET`, `x-woos-key`).
_SECRET_NAMES = (
    r"[\w-]*?(?:token|secret|passw(?:or)?d|pass|api_?key|apikey|authorization|woos-key|salt)"  # noqa: S105
)
#: Further query-parameter names that carry credentials in URLs (pre-signed links).
_QUERY_NAMES = (
    r"key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|jwt|session|sessionid|access_key"
)

_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@?#\"'<>]+@")
#: The Imbee access link: `/web/access/<token>` (the simulator, the documented shape), and
#: any `/access/<token>` whose last segment looks like a token (12+ URL-safe characters).
_ACCESS_LINK = re.compile(
    r"(/web/access/)[^\s/?#\"'<>&\\]+|(/access/)(?=[A-Za-z_-]*\d)[A-Za-z0-9_~.%-]{12,}"
)
_QUERY_SECRET = re.compile(
    rf"(?i)([?&;](?:{_SECRET_NAMES}|{_QUERY_NAMES})=)[^&\s\"'#<>\\]+"
)
#: Every name `_SECRET_NAMES` matches contains one of these once case-folded, so a line with
#: none of them skips the costly `_PAIR_SECRET`. re's IGNORECASE also takes a long s for an
#: s and the Kelvin sign for a k, which case-fold to them; the dotted and dotless i, which do
#: not, could only stand in "authorization", and "author" has no i.
_SECRET_NAME_PARTS = ("token", "secret", "pass", "key", "author", "salt")
_PAIR_SECRET = re.compile(
    rf"(?i)\b({_SECRET_NAMES})(\\?['\"]?\s*[:=]\s*\\?['\"]?)([^&\s\"',}}\\]+)"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Bounded (a local part has at most 64 characters): an unbounded class would make a long
#: word before a lone "@" cost quadratic time.
_EMAIL = re.compile(
    r"[\w.%+'-]{1,64}(?:@|%40)[\w-]{1,63}(?:\.[\w-]{1,63}){0,10}\.[A-Za-z]{2,24}\b"
)

# -- phone numbers ---------------------------------------------------------------------------

#: Where a phone number may be: 7 to 21 digits, separated by at most 3 of the characters
#: people type between them; optionally after `+` (or its URL encoding) or `(`.
_PHONE_CANDIDATE = re.compile(r"(?:\+|%2[Bb])?\(?\d(?:[ \t().\-/]{0,3}\d){6,20}")
#: Candidates that are numbers of another kind.
_DECIMAL = re.compile(r"\d+\.\d+")
_TRUNK_DECIMAL = re.compile(r"0\d{2,}\.\d+")  # "0171.2345678" is a number someone typed
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{4}")
_UNIX_TIME = re.compile(r"1[5-9]\d{8}(?:\d{3})?")  # seconds or milliseconds, 2017-2033
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_WORD = re.compile(r"[A-Za-z0-9_]")
_SEPARATORS = " \t().-/"
_MIN_DIGITS = 7
_ESCAPES = re.compile(r"\\[ntr]")  # line breaks and tabs as JSON and reprs write them
_CONTEXT = 8  # characters around a candidate the matcher sees (it checks its neighbours)
#: A region whose international prefix is 00, to read "0046 70 ..." without a region.
_IDD_00_REGION = "DE"

_phone_regions: tuple[str, ...] | None = None


def _regions_from_environment() -> tuple[str, ...]:
    """LOG_PHONE_REGION (comma-separated), else IMBEE_DEFAULT_REGION, from the environment
    or the `.env` of the working directory; unknown region codes are ignored."""
    values: dict[str, str | None] = {}
    if os.path.isfile(".env"):
        try:
            from dotenv import dotenv_values

            values = dict(dotenv_values(".env", encoding="utf-8"))
        except Exception:  # an unreadable .env is reported by the settings, not here
            values = {}
    values.update(os.environ)  # the process's variables win over the file
    raw = values.get("LOG_PHONE_REGION") or values.get("IMBEE_DEFAULT_REGION") or ""
    return normalise_regions(raw.split(","))


def normalise_regions(codes: Iterable[str]) -> tuple[str, ...]:
    """Upper-cased, known `phonenumbers` region codes, in order, without duplicates."""
    regions: list[str] = []
    for code in codes:
        code = code.strip().upper()
        if code in phonenumbers.SUPPORTED_REGIONS and code not in regions:
            regions.append(code)
    return tuple(regions)


def set_phone_regions(codes: Iterable[str] | None) -> None:
    """The regions whose national numbers are masked (None: read the settings again)."""
    global _phone_regions
    _phone_regions = None if codes is None else normalise_regions(codes)


def phone_regions() -> tuple[str, ...]:
    """The regions in use (read from the settings on first use)."""
    global _phone_regions
    if _phone_regions is None:
        _phone_regions = _regions_from_environment()
    return _phone_regions


def _other_number(raw: str, text: str, start: int, end: int) -> bool:
    """Whether a candidate is obviously not a phone number (skips the matcher)."""
    if start > 0 and not raw.startswith(("+", "%")):
        before = text[start - 1]
        escaped = before in "ntr" and start > 1 and text[start - 2] == "\\"  # JSON's "\n"
        if (_WORD.match(before) and not escaped) or (
            before == "." and start > 1 and text[start - 2].isdigit()
        ):
            return True  # inside a longer token: a hexadecimal id, a UUID, a decimal
        lead = text[max(0, start - 3):start]
        gap = len(lead) - len(lead.rstrip(_SEPARATORS))  # separators right before it
        if gap > 0 and start - gap > 0 and text[start - gap - 1].isdigit():
            return True  # continues a run of digits longer than any phone number
    if end < len(text) and _WORD.match(text[end]):
        return True
    if _DECIMAL.fullmatch(raw) and not _TRUNK_DECIMAL.fullmatch(raw):
        return True  # 0.9851234, 1716281234.5678, 1234567.89
    return bool(_UNIX_TIME.fullmatch(raw) or _IPV4.fullmatch(raw))


def _phone_spans(window: str, offset: int, regions: tuple[str, ...]) -> list[tuple[int, int]]:
    """Spans (in the whole text) of the phone numbers the matcher finds in `window`."""
    passes: list[tuple[str | None, bool]] = [(None, False)]
    passes += [(region, False) for region in regions]
    if "00" in window and _IDD_00_REGION not in regions:
        passes.append((_IDD_00_REGION, True))  # international numbers written 00 46 ...
    found: list[tuple[int, int]] = []
    for region, international_only in passes:  # each region may find other numbers
        for match in phonenumbers.PhoneNumberMatcher(window, region):
            raw = match.raw_string  # an inner match may keep the space before it
            if international_only and not raw.strip().startswith("00"):
                continue
            found.append((offset + match.start + len(raw) - len(raw.lstrip()),
                          offset + match.end - (len(raw) - len(raw.rstrip()))))
    return found


def mask_phones(text: str) -> str:
    """`text` with the phone numbers `phonenumbers` finds replaced by `<phone>`."""
    spans: list[tuple[int, int]] = []
    regions = phone_regions()
    for candidate in _PHONE_CANDIDATE.finditer(text):
        start, end = candidate.span()
        raw = candidate.group()
        if _other_number(raw, text, start, end):
            continue
        date = _DATE_START.match(raw)
        if date:  # a date, or a date and then a number ("2026-11-23 612345678")
            start += date.end()
            while start < end and text[start] in _SEPARATORS:
                start += 1
            raw = text[start:end]
            if sum(ch.isdigit() for ch in raw) < _MIN_DIGITS:
                continue
        if raw.startswith("%"):  # URL-encoded "+"
            if _phone_spans("+" + raw[3:], start, regions):
                spans.append((start, end))
            continue
        lo, hi = max(0, start - _CONTEXT), min(len(text), end + _CONTEXT)
        window = _ESCAPES.sub("  ", text[lo:hi])  # same length: offsets stay valid
        spans += [(max(s, lo), min(e, hi)) for s, e in _phone_spans(window, lo, regions)]
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + PHONE_MASK + text[end:]
    return text


# -- the whole redaction -----------------------------------------------------------------------


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values (API keys, tokens) so they are masked in every log line."""
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def _sub(pattern: re.Pattern[str], replacement: str) -> Callable[[str], str]:
    return lambda text: pattern.sub(replacement, text)


#: (cheap precondition on the case-folded text, masking step), in order.
_STEPS: tuple[tuple[Callable[[str], bool], Callable[[str], str]], ...] = (
    (lambda low: "bearer" in low or "basic" in low, _sub(_BEARER, rf"\1\2{MASK}")),
    (lambda low: "://" in low and "@" in low, _sub(_USERINFO, rf"\1{MASK}@")),
    (lambda low: "/access/" in low, _sub(_ACCESS_LINK, rf"\1\2{MASK}")),
    (lambda low: "=" in low, _sub(_QUERY_SECRET, rf"\1{MASK}")),
    (lambda low: ("=" in low or ":" in low) and any(part in low for part in _SECRET_NAME_PARTS),
     _sub(_PAIR_SECRET, rf"\1\2{MASK}")),
    (lambda low: "eyj" in low, _sub(_JWT, "***jwt***")),
    (lambda low: "@" in low or "%40" in low, _sub(_EMAIL, EMAIL_MASK)),
    (lambda low: True, mask_phones),
)


def redact(text: str) -> str:
    """Return `text` with registered secrets, credentials, access links, e-mail addresses
    and phone numbers masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    low = text.casefold()
    for applies, step in _STEPS:
        if applies(low):
            text = step(text)
    return text


#: Set on a record once redacted, so the filter of a handler does not redact it again.
REDACTED = "_rsd_redacted"


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: its message (arguments merged in) and its traceback."""
    if getattr(record, REDACTED, False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not break logging
        return
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    setattr(record, REDACTED, True)


_redact_record = redact_record  # the name earlier releases used

_installed = False
#: Called with each new record after redaction (`rasa_service_desk.logs` adds context).
_record_hooks: list[Callable[[logging.LogRecord], None]] = []


def add_record_hook(hook: Callable[[logging.LogRecord], None]) -> None:
    """Run `hook` on every record the redaction factory creates (idempotent)."""
    if hook not in _record_hooks:
        _record_hooks.append(hook)


def install_redaction() -> None:
    """Redact every log record of the process, whoever logs it and whichever handler prints it.

    A record factory runs when any record is created, so it also covers handlers that are
    configured later (rasa-sdk and Rasa set up their own) and third-party loggers. A record
    is only created for a logger enabled at its level, so what is not logged costs nothing.
    Idempotent.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        for hook in _record_hooks:
            hook(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True

"""Checks shared by the form validators: e-mail, phone number, bounded free text.

Each returns the cleaned value, or None when the customer must be asked again; the validator
then utters the matching response from `domain/shared.yml`.

Text that goes to a vendor (names, titles, subjects, descriptions) never carries control
characters: NUL, escape sequences, bidirectional overrides, lone surrogates and the like are
removed. Multi-line free text keeps its line breaks (any newline convention becomes `\n`)
and tabs; single-line text (`multiline=False`, and every name) turns them into spaces.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

DomainDict = dict[str, Any]
T = TypeVar("T")

logger = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
#: Terminal escape sequences (colours, cursor moves, window titles): removed whole.
_ANSI_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]"
)
#: Every line break convention, read as one `\n`.
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: Invisible characters that reorder or hide text on an agent's screen ("Trojan source").
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


def strip_controls(text: str, multiline: bool = True) -> str:
    """`text` without control characters: line breaks become `\n` and tabs stay in
    `multiline` text; in single-line text both become spaces. Everything else of Unicode
    categories Cc (C0/C1 controls: NUL, ESC, DEL, ...) and Cs (lone surrogates, which no
    vendor can even encode), plus the bidirectional overrides, is removed."""
    if text.isprintable():
        # Nothing to strip (every character removed or replaced below is unprintable): the
        # common case, at a fiftieth of the character-by-character walk's cost.
        return text
    text = _LINE_BREAKS.sub("\n", _ANSI_SEQUENCES.sub("", text))
    kept = []
    for ch in text:
        if ch in "\n\t":
            kept.append(ch if multiline else " ")
        elif ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs"):
            continue
        else:
            kept.append(ch)
    return "".join(kept)


def clean_email(value: Any) -> str | None:
    """A syntactically valid address, normalised (no DNS lookup: the bot must stay fast)."""
    if not isinstance(value, str):
        return None
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def clean_phone(value: Any, default_region: str | None = None) -> str | None:
    """A possible phone number in E.164 form (`+46701234567`), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value.strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_text(
    value: Any, max_length: int, min_length: int = 1, *, multiline: bool = True
) -> str | None:
    """Free text without control characters, between `min_length` and `max_length`
    characters. Single-line text (`multiline=False`, or text typed on one line) has its
    spaces collapsed; multi-line text keeps its lines, tabs and indentation."""
    if not isinstance(value, str):
        return None
    text = strip_controls(value, multiline).strip()
    if "\n" not in text:
        text = _SPACES.sub(" ", text)
    return text if min_length <= len(text) <= max_length else None


def clean_line(value: Any, max_length: int, min_length: int = 1) -> str | None:
    """Single-line text (a title, a subject): `clean_text` with line breaks and tabs turned
    into spaces."""
    return clean_text(value, max_length, min_length, multiline=False)


def clean_name(value: Any, max_length: int = 100) -> str | None:
    """A person's name: bounded single-line text with at least one letter."""
    text = clean_line(value, max_length)
    return text if text and any(ch.isalpha() for ch in text) else None


def validated_text(
    dispatcher: CollectingDispatcher, slot: str, value: Any, max_length: int, min_length: int = 1,
    *, multiline: bool = True,
) -> dict[str, Any]:
    """Slot update for a bounded free-text answer; asks again with `utter_invalid_text`.
    Pass `multiline=False` for a title or a subject."""
    text = clean_text(value, max_length, min_length, multiline=multiline)
    if text is None:
        dispatcher.utter_message(
            response="utter_invalid_text", min_length=min_length, max_length=max_length
        )
    return {slot: text}


# -- slots read with the type the action expects ------------------------------------------
#
# Any custom action, story or client can put any JSON value in any slot. A value of another
# type or shape than the code expects is treated as absent (so the form asks again, or the
# action says what is missing), with a warning that names the slot, never its value.

#: Python types of the domain's slot types (`any` and unknown types accept anything).
_DOMAIN_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "categorical": (str,), "bool": (bool,), "float": (int, float),
    "list": (list,),
}


def wrong_type(slot: str, value: Any, expected: str) -> None:
    """Log that `slot` holds something unusable: its name and the value's type only (the
    value may be a customer's personal data)."""
    logger.warning("slot %s holds a %s where %s is expected: treated as empty", slot,
                   type(value).__name__, expected)


def typed_slot(tracker: Tracker, slot: str, expected: type[T], what: str = "") -> T | None:
    """The value of `slot` when it is an `expected` (a bool is not an int here), else None,
    with a warning when it held something else."""
    value = tracker.slots.get(slot)
    if value is None:
        return None
    if isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool):
        return value
    wrong_type(slot, value, what or f"a {expected.__name__}")
    return None


def text_slot(tracker: Tracker, slot: str) -> str | None:
    """A text slot's value as it is, or None (absent, or not a string)."""
    return typed_slot(tracker, slot, str, "text")


def bool_slot(tracker: Tracker, slot: str) -> bool | None:
    """A bool slot's value, or None (absent, or not true/false)."""
    return typed_slot(tracker, slot, bool, "true or false")


def text_list_slot(tracker: Tracker, slot: str) -> list[str] | None:
    """A list of strings, or None (absent, not a list, or an item that is not a string)."""
    value = typed_slot(tracker, slot, list, "a list of text")
    if value is None:
        return None
    if not all(isinstance(item, str) for item in value):
        wrong_type(slot, value, "a list of text")
        return None
    return list(value)


def mapping_slot(tracker: Tracker, slot: str) -> dict[str, Any] | None:
    """A JSON object with text keys (a copy), or None (absent, or anything else)."""
    value = typed_slot(tracker, slot, dict, "an object")
    if value is None:
        return None
    if not all(isinstance(key, str) for key in value):
        wrong_type(slot, value, "an object")
        return None
    return dict(value)


def fits_domain_type(domain: DomainDict, slot: str, value: Any) -> bool:
    """Whether `value` has the type the domain declares for `slot` (None always has)."""
    spec = (domain.get("slots") or {}).get(slot)
    kind = spec.get("type") if isinstance(spec, dict) else None
    expected = _DOMAIN_TYPES.get(kind) if isinstance(kind, str) else None
    if value is None or expected is None:
        return True
    if isinstance(value, bool) and bool not in expected:
        return False
    return isinstance(value, expected)


EMAIL_SLOT = "customer_email"
PHONE_SLOT = "customer_phone"
NAME_SLOT = "customer_name"


def email_or_phone(value: Any, default_region: str | None = None) -> dict[str, Any] | None:
    """Read one answer as an e-mail address or a mobile number, for forms that accept either.

    The answer arrives in `customer_email`; a phone number is moved to `customer_phone`
    (E.164). Returns the slot updates, or None when it is neither.
    """
    email = clean_email(value)
    if email:
        return {EMAIL_SLOT: email}
    phone = clean_phone(value, default_region)
    if phone:
        return {EMAIL_SLOT: None, PHONE_SLOT: phone}
    return None


#: How Rasa writes the text of an intent triggered through its HTTP API.
EXTERNAL_MESSAGE_PREFIX = "EXTERNAL: "


def answer_to(tracker: Tracker, slot: str) -> dict[str, Any]:
    """The customer's latest message as the value of `slot`, when the form just asked for it.

    The shared contact slots have `custom` mappings (domain/shared.yml), so that the shared
    domain file names no integration's form; each form's validator fills them through this
    (`actions.forms.TextSlotForm`),
    which is what a `from_text` mapping conditioned on the form would do. A message in
    Rasa's intent syntax (`/intent{...}`, a button or a message injected by a connector) is
    never a contact detail and is left alone, nor is an intent Rasa's HTTP API triggered
    (`trigger_intent`, e.g. the outbox announcing a filed ticket), whose text Rasa writes
    as `EXTERNAL: <intent>`.
    """
    if tracker.get_slot("requested_slot") != slot:
        return {}
    latest = tracker.latest_message or {}
    text = latest.get("text")
    if not isinstance(text, str) or not text.strip() or text.lstrip().startswith("/"):
        return {}
    metadata = latest.get("metadata")
    if text.startswith(EXTERNAL_MESSAGE_PREFIX) or (
            isinstance(metadata, dict) and metadata.get("is_external") is True):
        return {}
    return {slot: text}


class ContactSlotValidation:
    """`validate_customer_name` and `validate_customer_email` for forms that ask for both
    (the form lists both in its `text_slots`, see `actions.forms.TextSlotForm`).

    Mixed into a vendor's `FormValidationAction`, so every form checks the shared contact
    slots the same way and answers with the same shared responses.
    """

    async def validate_customer_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        name = clean_name(value)
        if name is None:
            dispatcher.utter_message(response="utter_invalid_name")
        return {NAME_SLOT: name}

    async def validate_customer_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        email = clean_email(value)
        if email is None:
            dispatcher.utter_message(response="utter_invalid_email")
        return {EMAIL_SLOT: email}

"""Checks shared by the form validators: e-mail, phone number, bounded free text.

Each returns the cleaned value, or None when the customer must be asked again; the validator
then utters the matching response from `domain/shared.yml`.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

_SPACES = re.compile(r"\s+")


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


def clean_text(value: Any, max_length: int, min_length: int = 1) -> str | None:
    """Free text with collapsed spaces, between `min_length` and `max_length` characters."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "\n" not in text:
        text = _SPACES.sub(" ", text)
    return text if min_length <= len(text) <= max_length else None


def clean_name(value: Any, max_length: int = 100) -> str | None:
    """A person's name: bounded text with at least one letter."""
    text = clean_text(value, max_length)
    return text if text and any(ch.isalpha() for ch in text) else None

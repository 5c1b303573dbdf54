"""The contact checks: a normalised address or number, or None when the customer must be
asked again."""

from __future__ import annotations

from rasa_service_desk.actions.validation import clean_email, clean_phone


def test_an_address_is_normalised_or_refused() -> None:
    assert clean_email("  Ana@Example.COM ") == "Ana@example.com"
    assert clean_email("ana@example") is None
    assert clean_email("not an address") is None
    assert clean_email(42) is None


def test_a_number_depends_on_the_region_it_is_read_in() -> None:
    assert clean_phone("612 34 56 78", "ES") == "+34612345678"
    assert clean_phone("612 34 56 78", "GB") is None
    assert clean_phone("+34 612 34 56 78", None) == "+34612345678"
    assert clean_phone("   ", "ES") is None

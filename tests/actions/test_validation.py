"""The contact checks remember recent answers: same answers as before, bounded memory."""

from __future__ import annotations

from rasa_service_desk.actions import validation
from rasa_service_desk.actions.validation import CHECKED_CONTACTS, clean_email, clean_phone


def test_an_address_is_normalised_or_refused_the_same_every_time() -> None:
    for _ in range(2):  # the second round answers from what the first remembered
        assert clean_email("  Ana@Example.COM ") == "Ana@example.com"
        assert clean_email("ana@example") is None
        assert clean_email("not an address") is None
        assert clean_email(42) is None


def test_a_number_depends_on_the_region_it_is_read_in() -> None:
    for _ in range(2):
        assert clean_phone("612 34 56 78", "ES") == "+34612345678"
        assert clean_phone("612 34 56 78", "GB") is None
        assert clean_phone("+34 612 34 56 78", None) == "+34612345678"
        assert clean_phone("   ", "ES") is None


def test_only_a_bounded_number_of_answers_is_remembered() -> None:
    for number in range(CHECKED_CONTACTS + 200):
        clean_email(f"customer-{number}@example.com")
        clean_phone(f"+3461{number:07d}", None)
    assert validation._normalised_email.cache_info().currsize <= CHECKED_CONTACTS
    assert validation._normalised_phone.cache_info().currsize <= CHECKED_CONTACTS

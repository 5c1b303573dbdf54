"""The redaction's process-wide state is the same for every test of this folder: no secret
registered by another test (a short one would mask ordinary words), the regions restored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rasa_service_desk.clients import redact


@pytest.fixture(autouse=True)
def _own_redaction_state() -> Iterator[None]:
    secrets, regions = set(redact._SECRETS), redact._phone_regions
    redact._SECRETS.clear()
    yield
    redact._SECRETS.clear()
    redact._SECRETS.update(secrets)
    redact._phone_regions = regions

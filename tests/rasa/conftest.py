"""Tests that run inside .venv-rasa (Rasa Open Source 3.6), where the project is installed
without its own dependencies: nothing here opens the action server's shared HTTP session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _close_http_sessions() -> Iterator[None]:
    """Replaces the main conftest's fixture, whose import of `clients.http` needs tenacity."""
    yield

"""Session-wide real servers: the simulators and an action server wired to them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import ActionServer, Sandbox, running_action_server, running_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """All four simulators in one process on a free port."""
    with running_sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def action_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """The real rasa-sdk action server (`python -m rasa_sdk --actions actions`), every
    integration pointed at the simulators with SANDBOX=1."""
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url}) as server:
        yield server

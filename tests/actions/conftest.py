"""Action servers shared by the Loop action tests: one without the outbox, one with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import ActionServer, Sandbox, running_action_server


@pytest.fixture(scope="module")
def loop_try_again_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """An action server without the outbox (`OUTBOX_ENABLED=0`, still supported): an outage
    is told to the customer, who says "try again"."""
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "OUTBOX_ENABLED": "0"}) as server:
        yield server


@pytest.fixture(scope="module")
def loop_outbox_server(sandbox: Sandbox) -> Iterator[ActionServer]:
    """An action server whose outbox (on, the default) looks every 0.2 s and waits at most
    1 s between two attempts."""
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "OUTBOX_POLL_SECONDS": "0.2",
                                "OUTBOX_MAX_BACKOFF_SECONDS": "1"}) as server:
        yield server

"""Cention's callbacks counted inside Rasa 3.6 (run in .venv-rasa), read from the connector's
own `/webhooks/cention/metrics`: accepted, duplicate and refused deliveries by reason."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("rasa", reason="Rasa Open Source 3.6 tests run in .venv-rasa")

import aiohttp
from aioresponses import aioresponses
from prometheus_client.parser import text_string_to_metric_families

from rasa_service_desk.connectors.cention import CentionInput
from tests.clients.test_cention_callback import sample_callback
from tests.connectors.test_cention import (  # noqa: F401  (fixtures)
    WEBHOOK,
    attachments,
    credentials,
    post,
    rasa_app,
    record_owner,
    state_url,
)

pytestmark = pytest.mark.rasa
METRICS = "/webhooks/cention/metrics"


async def callback_counts(base: str) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as session, \
            session.get(base + METRICS, proxy=None) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = await reply.text()
    return {(s.labels["decision"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "service_desk_callback_deliveries_total"}


async def test_callbacks_are_counted_by_decision_and_reason(
    state_url: str, attachments: aioresponses  # noqa: F811
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, _, _
    ):
        before = await callback_counts(base)
        assert await post(base + WEBHOOK, json.dumps(sample_callback())) == (
            200, {"status": "accepted"})
        await post(base + WEBHOOK, json.dumps(sample_callback()))  # Cention calls again
        await post(base + WEBHOOK, json.dumps(sample_callback(secret="654321")))
        await post(base + WEBHOOK, "{not json")
        after = await callback_counts(base)

    def moved(decision: str, reason: str) -> float:
        return after.get((decision, reason), 0) - before.get((decision, reason), 0)

    assert moved("accepted", "accepted") == 1
    assert moved("accepted", "duplicate") == 1
    assert moved("refused", "unauthorized") == 2
    assert moved("refused", "malformed") == 0

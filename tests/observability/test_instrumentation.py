"""The one instrumentation point, the shared HTTP layer: metrics by vendor, operation and
outcome, spans under the action's span, and the multiprocess set-up (aioresponses, no
network)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aioresponses import aioresponses
from prometheus_client import REGISTRY

from rasa_service_desk.clients.errors import RateLimited, RejectedInput, VendorUnavailable
from rasa_service_desk.clients.http import HttpClient, RetryPolicy
from rasa_service_desk.observability import metrics, readiness, tracing

URL = "https://vendor.example/api/users/4711?address=ada%40example.com"
FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, jitter=0)
ROOT = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(vendor: str, operation: str, outcome: str) -> float:
    return sample("service_desk_vendor_calls_total", vendor=vendor, operation=operation,
                  outcome=outcome)


async def test_each_outcome_is_counted_under_the_named_operation() -> None:
    client = HttpClient("unit-a", retry=FAST)
    with aioresponses() as mocked:
        mocked.get(URL, payload={})
        mocked.get(URL, status=422, payload={"error": "bad"})
        for _ in range(3):
            mocked.get(URL, status=503)
        await client.request("GET", URL, operation="find_user")
        with pytest.raises(RejectedInput):
            await client.request("GET", URL, operation="find_user")
        with pytest.raises(VendorUnavailable):
            await client.request("GET", URL, operation="find_user")

    assert calls("unit-a", "find_user", "ok") == 1
    assert calls("unit-a", "find_user", "rejected") == 1
    assert calls("unit-a", "find_user", "unavailable") == 1
    assert sample("service_desk_vendor_retries_total", vendor="unit-a",
                  operation="find_user", reason="unavailable") == 2
    assert sample("service_desk_vendor_request_duration_seconds_count", vendor="unit-a",
                  operation="find_user") == 5
    assert sample("service_desk_vendor_calls_in_flight", vendor="unit-a") == 0
    # No label carries the URL, its id or the customer's address. (Sample values are left
    # out: a `_created` timestamp such as 1.7962882471e+09 may hold the digits "4711".)
    exposed = "\n".join(line.rsplit(" ", 1)[0]
                        for line in metrics.exposition().decode().splitlines()
                        if line and not line.startswith("#"))
    assert "4711" not in exposed and "example" not in exposed
    assert readiness.report(["unit-a"])[1]["integrations"]["unit-a"]["last_call"] == \
        "unavailable"


async def test_an_unnamed_call_is_labelled_by_its_method_only() -> None:
    with aioresponses() as mocked:
        mocked.post(URL, payload={})
        await HttpClient("unit-b", retry=FAST).request("POST", URL, json_body={})
    assert calls("unit-b", "post", "ok") == 1


async def test_a_refused_long_wait_is_counted_and_a_short_one_waited() -> None:
    client = HttpClient("unit-c", retry=RetryPolicy(attempts=3, initial_wait=0.001,
                                                    max_wait=1.0, jitter=0))
    with aioresponses() as mocked:
        mocked.post(URL, status=429, headers={"Retry-After": "3600"})
        mocked.post(URL, status=429, headers={"Retry-After": "0.05"})
        mocked.post(URL, payload={})
        with pytest.raises(RateLimited):
            await client.request("POST", URL, json_body={}, operation="create_ticket")
        await client.request("POST", URL, json_body={}, operation="create_ticket")
    waits = "service_desk_vendor_rate_limit_waits_total"
    assert sample(waits, vendor="unit-c", operation="create_ticket", decision="refused") == 1
    assert sample(waits, vendor="unit-c", operation="create_ticket", decision="waited") == 1
    assert calls("unit-c", "create_ticket", "rate_limited") == 1
    assert calls("unit-c", "create_ticket", "ok") == 1


def test_label_children_are_bound_once_per_vendor_and_operation() -> None:
    assert metrics.call_metrics("unit-d", "x") is metrics.call_metrics("unit-d", "x")
    assert metrics.call_metrics("unit-d", "x") is not metrics.call_metrics("unit-d", "y")


# -- tracing -------------------------------------------------------------------------------


@pytest.fixture
def exporter():  # type: ignore[no-untyped-def]
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use_tracer_provider(provider)
    yield provider, memory
    tracing.use_tracer_provider(None)


async def test_a_vendor_call_is_a_child_span_of_the_action_without_personal_data(
        exporter) -> None:  # type: ignore[no-untyped-def]
    provider, memory = exporter
    action_tracer = provider.get_tracer("rasa_sdk")
    with aioresponses() as mocked:
        mocked.post(URL, status=201, payload={"id": 1})
        mocked.post(URL, status=422, payload={})
        mocked.get(URL, payload={})
        with action_tracer.start_as_current_span("ActionExecutor.run"):
            await HttpClient("benti", retry=FAST).request(
                "POST", URL, json_body={"name": "Ada Lovelace"}, operation="create_ticket")
            with pytest.raises(RejectedInput):
                await HttpClient("benti", retry=FAST).request(
                    "POST", URL, json_body={"name": "Ada Lovelace"}, operation="create_user")
        await HttpClient("benti", retry=FAST).request("GET", URL,
                                                      operation="outside")  # no action

    spans = {span.name: span for span in memory.get_finished_spans()}
    assert set(spans) == {"ActionExecutor.run", "benti create_ticket", "benti create_user"}
    parent = spans["ActionExecutor.run"]
    ticket, user = spans["benti create_ticket"], spans["benti create_user"]
    for child in (ticket, user):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
        assert child.context.trace_id == parent.context.trace_id
    assert dict(ticket.attributes) == {
        "service_desk.vendor": "benti", "service_desk.operation": "create_ticket",
        "http.request.method": "POST", "service_desk.outcome": "ok",
        "service_desk.attempts": 1, "http.response.status_code": 201}
    assert user.attributes["service_desk.outcome"] == "rejected"
    assert user.status.status_code.name == "ERROR"
    recorded = repr([(s.name, dict(s.attributes)) for s in (ticket, user)])
    for secret in ("Ada", "4711", "example", "vendor.example"):
        assert secret not in recorded


async def test_without_a_provider_no_span_is_made() -> None:
    tracing.use_tracer_provider(None)
    assert tracing.start("benti", "create_ticket", "POST") is None


# -- several workers -----------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import asyncio, sys
    from aioresponses import aioresponses
    from rasa_service_desk.clients.http import HttpClient, RetryPolicy
    async def main(n):
        with aioresponses() as mocked:
            for _ in range(n):
                mocked.get("https://v.example/x", payload={})
            for _ in range(n):
                await HttpClient("multi", retry=RetryPolicy(attempts=1)).request(
                    "GET", "https://v.example/x", operation="read")
    asyncio.run(main(int(sys.argv[1])))
""")
SCRAPE = textwrap.dedent("""
    from rasa_service_desk.observability import metrics
    print(metrics.exposition().decode())
""")


def test_multiprocess_mode_sums_every_worker_and_starts_empty(tmp_path: Path) -> None:
    """Three processes write to PROMETHEUS_MULTIPROC_DIR; a fourth (the one a scrape
    reaches) reports their sum. A restart empties the directory first."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    stale = tmp_path / "counter_99999.db"
    stale.write_bytes(b"left by an earlier run")
    subprocess.run([sys.executable, "-c", "from rasa_service_desk.observability import "
                    "metrics; metrics.prepare_multiprocess_dir()"], env=env, check=True)
    assert not stale.exists()
    for n in (2, 3, 4):
        subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", SCRAPE], env=env, check=True,
                         capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines()
                if line.startswith("service_desk_vendor_calls_total{")
                and 'vendor="multi"' in line)
    assert float(line.rsplit(" ", 1)[1]) == 9
    assert len(list(tmp_path.glob("counter_*.db"))) == 3


def test_several_workers_without_the_directory_is_reported(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metrics.multiprocess_problem(1) is None
    assert "PROMETHEUS_MULTIPROC_DIR" in (metrics.multiprocess_problem(2) or "")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert "not a writable directory" in (metrics.multiprocess_problem(2) or "")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics.multiprocess_problem(4) is None

"""`/metrics`, `/ready` and long vendor waits through the real action server over HTTP
(`python -m rasa_sdk --actions actions`), against the simulators."""

from __future__ import annotations

import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import ActionServer, Sandbox, running_action_server

CREATE = "action_benti_create_ticket"
ANSWER = "action_cention_answer"
SLOTS = {
    "customer_name": "Ada Lovelace",
    "customer_email": "ada.lovelace@example.com",
    "benti_ticket_title": "Printer on fire",
    "benti_ticket_description": "It smokes every time I print.",
}
PERSONAL = ("Ada", "Lovelace", "ada.lovelace", "example.com", "Printer", "refund")
TOKEN = "s3cret-action-token-0123456789abcdef"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ActionServer) -> tuple[str, Samples]:
    reply = requests.get(f"{server.url}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return reply.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def calls(samples: Samples, vendor: str, operation: str, outcome: str) -> float:
    return value(samples, "service_desk_vendor_calls_total", vendor=vendor,
                 operation=operation, outcome=outcome)


@pytest.fixture
def server(sandbox: Sandbox) -> Any:
    sandbox.reset("benti")
    sandbox.reset("cention")
    # The outbox (on, the default) looks for due submissions only every 300 s: a queued
    # ticket is not sent again while a test reads the counters.
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "ACTION_SERVER_TOKEN": TOKEN,
           "OUTBOX_POLL_SECONDS": "300"}
    with running_action_server(env) as running:
        yield running


def run(server: ActionServer, payload: dict[str, Any]) -> dict[str, Any]:
    reply = requests.post(f"{server.url}/webhook", json=payload, timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200, reply.text[:300]
    return dict(reply.json())


def test_metrics_move_with_a_conversation_and_count_an_injected_fault(
        sandbox: Sandbox, server: ActionServer) -> None:
    """Read before and after: a library answer, a ticket, then a ticket the vendor refuses
    with a 500 (counted as `unavailable`, its retry counted). Open without the token, like
    `/health`, and free of the customer's data and of URLs."""
    _, before = scrape(server)
    assert calls(before, "benti", "create_ticket", "ok") == 0

    assert responses(run(server, webhook_payload(ANSWER, text="When will I get my refund?"))
                     )[0] == "utter_cention_answer"
    ticket = run(server, webhook_payload(CREATE, slots=SLOTS))
    assert responses(ticket) == ["utter_benti_ticket_created"]
    _, middle = scrape(server)

    assert calls(middle, "benti", "create_ticket", "ok") == 1
    assert calls(middle, "benti", "authenticate", "ok") == 1
    assert calls(middle, "cention", "search_questions", "ok") >= 1
    assert value(middle, "service_desk_vendor_request_duration_seconds_count",
                 vendor="benti", operation="create_ticket") == 1
    assert value(middle, "service_desk_vendor_calls_in_flight", vendor="benti") == 0

    # A lookup (idempotent) answered 503 every time: retried, then the ticket is queued in
    # the outbox and the customer hears it will be filed.
    sandbox.inject("benti", {"status": 503, "times": 5, "path": "/ticketing/v1/users",
                             "method": "GET"})
    failed = run(server, webhook_payload(CREATE, slots=SLOTS))
    assert responses(failed) == ["utter_benti_ticket_queued"]
    text, after = scrape(server)

    assert value(after, "service_desk_outbox_submissions_total", vendor="benti",
                 event="queued") == 1

    assert calls(after, "benti", "find_user", "unavailable") == 1
    assert value(after, "service_desk_vendor_retries_total", vendor="benti",
                 operation="find_user", reason="unavailable") == 2  # 3 attempts
    assert value(after, "service_desk_vendor_retry_wait_seconds_total", vendor="benti",
                 operation="find_user") > 0
    assert calls(after, "benti", "create_ticket", "ok") == 1  # not reached this time
    assert value(after, "service_desk_vendor_request_duration_seconds_count",
                 vendor="benti", operation="find_user") == 4  # 1 ok + 3 attempts
    for word in PERSONAL:
        assert word not in text
    assert "/ticketing" not in text and "http" not in text.replace("http_", "")


def test_a_429_asking_for_an_hour_is_not_retried_and_the_customer_hears_busy(
        sandbox: Sandbox, server: ActionServer) -> None:
    """`Retry-After: 3600` on the ticket: one vendor call, the ticket queued in the outbox
    and the customer told so at once (not after 5 s of hammering), and the refusal
    counted."""
    run(server, webhook_payload(CREATE, slots=SLOTS))  # token and user lookup warm
    before = sandbox.calls("benti")
    sandbox.inject("benti", {"status": 429, "path": "/ticketing/v1/tickets", "method": "POST",
                             "headers": {"Retry-After": "3600"}, "times": 5})

    started = time.monotonic()
    reply = run(server, webhook_payload(CREATE, slots=SLOTS))
    elapsed = time.monotonic() - started

    assert responses(reply) == ["utter_benti_ticket_queued"]
    assert slot_events(reply) == {"benti_ticket_title": None, "benti_ticket_description": None}
    assert elapsed < 2
    now = sandbox.calls("benti")
    ticket_calls = {route: now[route] - before.get(route, 0) for route in now
                    if "tickets" in route}
    assert sum(ticket_calls.values()) == 1, ticket_calls
    _, samples = scrape(server)
    assert value(samples, "service_desk_vendor_rate_limit_waits_total", vendor="benti",
                 operation="create_ticket", decision="refused") == 1
    assert value(samples, "service_desk_vendor_rate_limit_waits_total", vendor="benti",
                 operation="create_ticket", decision="waited") == 0
    assert calls(samples, "benti", "create_ticket", "rate_limited") == 1
    assert value(samples, "service_desk_outbox_submissions_total", vendor="benti",
                 event="queued") == 1


def test_ready_lists_integrations_and_turns_503_on_sigterm_while_draining(
        sandbox: Sandbox) -> None:
    """Readiness: 200 with the enabled integrations and each one's last call, no vendor
    called by the probe; after SIGTERM, while a slow action is in flight, 503 (a load
    balancer drains the replica) and `/health` still 200; the action still gets its answer
    and the server then exits cleanly."""
    sandbox.reset("benti")
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url}) as server:
        ready = requests.get(f"{server.url}/ready", timeout=5)
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready"
        assert set(body["integrations"]) == {"benti", "cention", "imbee", "loop"}
        assert body["integrations"]["benti"] == {"last_call": None}

        server.run(webhook_payload(CREATE, slots=SLOTS))
        calls_before_probe = sandbox.calls("benti")
        benti = requests.get(f"{server.url}/ready", timeout=5).json()["integrations"]["benti"]
        assert benti["last_call"] == "ok" and benti["last_call_ok"] is True
        assert sandbox.calls("benti") == calls_before_probe  # the probe called no vendor

        sandbox.latency("benti", 2.5)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(server.run, webhook_payload(CREATE, slots=SLOTS))
            time.sleep(1.0)  # inside the action, waiting on the vendor
            server.process.popen.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            draining = requests.get(f"{server.url}/ready", timeout=5)
            health = requests.get(f"{server.url}/health", timeout=5)
            assert not slow.done()
            reply = slow.result(timeout=30)
        exit_code = server.process.popen.wait(30)
    sandbox.latency("benti", 0)

    assert draining.status_code == 503
    assert draining.json()["status"] == "stopping"
    assert health.status_code == 200
    assert responses(reply) == ["utter_benti_ticket_created"]
    assert exit_code == 0


def test_several_workers_share_one_truthful_metrics_view(sandbox: Sandbox) -> None:
    """Two Sanic workers with PROMETHEUS_MULTIPROC_DIR: whichever worker answers the scrape,
    the counts are those of the whole server (the library's multiprocess mode)."""
    sandbox.reset("cention")
    directory = tempfile.mkdtemp(prefix="prom-")
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "ACTION_SERVER_SANIC_WORKERS": "2",
           "PROMETHEUS_MULTIPROC_DIR": directory}
    with running_action_server(env) as server:
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(
                lambda _: server.run(webhook_payload(ANSWER, text="Do you sell vouchers?")),
                range(24)))
        assert all(responses(reply) for reply in replies)
        vendor_saw = sum(sandbox.calls("cention").values())
        totals = set()
        for _ in range(8):  # several scrapes, on new connections: both workers answer some
            _, samples = scrape(server)
            totals.add(sum(v for (name, labels), v in samples.items()
                           if name == "service_desk_vendor_calls_total"
                           and ("vendor", "cention") in labels))
        writers = {path.stem.rsplit("_", 1)[-1] for path in Path(directory).glob("counter_*.db")}
    assert len(writers) >= 2, writers  # both workers made vendor calls...
    assert totals == {vendor_saw}, (totals, vendor_saw)  # ...and every scrape sums them


def test_metrics_refuse_several_workers_without_a_shared_directory(sandbox: Sandbox) -> None:
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "ACTION_SERVER_SANIC_WORKERS": "2"}
    with running_action_server(env) as server:
        reply = requests.get(f"{server.url}/metrics", timeout=5)
        log = server.process.output()
    assert reply.status_code == 503
    assert "PROMETHEUS_MULTIPROC_DIR" in reply.json()["error"]
    assert "PROMETHEUS_MULTIPROC_DIR" in log

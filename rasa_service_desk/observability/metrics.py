"""Prometheus metrics of vendor calls and of Cention's callbacks (`prometheus-client`).

Every vendor call passes through `rasa_service_desk.clients.http.HttpClient.request`, the
one place that records them here. Labels stay few and free of personal data: `vendor` (four
values), `operation` (a name the client gives the call, such as `create_ticket`; never a URL
path, which could carry ids or a customer's search words), `outcome` and `reason`.

Cheap on the hot path: each (vendor, operation) gets a `CallMetrics` of pre-bound label
children, created once and cached, so a call costs a dict lookup and a few increments.

Several Sanic workers (`ACTION_SERVER_SANIC_WORKERS`): each worker is a process with its
own counters, and a scrape reaches one of them. With `PROMETHEUS_MULTIPROC_DIR` set (before
the server starts: prometheus-client reads it on import) every process writes its values to
files there and `/metrics` sums them (the library's multiprocess mode). The directory is
emptied when the server starts (`prepare_multiprocess_dir`), and a stopped worker's
in-flight gauge is dropped (`mark_worker_stopped`). Several workers without it would serve
one worker's numbers as if they were the server's: `/metrics` then refuses (503) instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    IntegrationError,
    MalformedReply,
    RateLimited,
    RejectedInput,
    VendorUnavailable,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Outcome of a call that got its 2xx reply.
OK = "ok"
#: Outcome of a call stopped from outside (the action deadline) before it ended.
CANCELLED = "cancelled"
#: Error class -> outcome label (the most specific class wins).
ERROR_OUTCOMES: tuple[tuple[type[IntegrationError], str], ...] = (
    (RateLimited, "rate_limited"),
    (AuthenticationError, "auth"),
    (ConfigurationError, "config"),
    (RejectedInput, "rejected"),
    (MalformedReply, "malformed"),
    (VendorUnavailable, "unavailable"),
)

#: Why a request was tried again (`service_desk_vendor_retries_total{reason}`).
RETRY_REASONS = ("rate_limited", "unavailable", "timeout", "connection")

CALLS = Counter(
    "service_desk_vendor_calls", "Vendor calls by final outcome (after any retries).",
    ["vendor", "operation", "outcome"])
DURATION = Histogram(
    "service_desk_vendor_request_duration_seconds",
    "Time of one HTTP exchange with a vendor (each attempt, any status).",
    ["vendor", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 15.0, 30.0))
RETRIES = Counter(
    "service_desk_vendor_retries", "Vendor requests sent again, by why.",
    ["vendor", "operation", "reason"])
RETRY_WAIT = Counter(
    "service_desk_vendor_retry_wait_seconds",
    "Seconds spent waiting before retries (the customer waits too).",
    ["vendor", "operation"])
RATE_LIMIT_WAITS = Counter(
    "service_desk_vendor_rate_limit_waits",
    "Waits a vendor asked for (Retry-After, rate-limit reset headers): `waited` when honoured "
    "before a retry, `refused` when longer than the customer can be kept waiting.",
    ["vendor", "operation", "decision"])
IN_FLIGHT = Gauge(
    "service_desk_vendor_calls_in_flight", "Vendor calls started and not yet ended.",
    ["vendor"], multiprocess_mode="livesum")
CALLBACKS = Counter(
    "service_desk_callback_deliveries",
    "Vendor callbacks received (Cention's agent answers), accepted or refused, by reason.",
    ["vendor", "decision", "reason"])


def outcome_of(exc: BaseException) -> str:
    """The `outcome` label of a failed call."""
    for cls, outcome in ERROR_OUTCOMES:
        if isinstance(exc, cls):
            return outcome
    return "error"


class CallMetrics:
    """The label children of one (vendor, operation), bound once (see `call_metrics`)."""

    __slots__ = ("_outcomes", "_retries", "duration", "in_flight", "operation",
                 "rate_limit_refused", "rate_limit_waited", "retry_wait", "vendor")

    def __init__(self, vendor: str, operation: str) -> None:
        self.vendor = vendor
        self.operation = operation
        self.duration = DURATION.labels(vendor, operation)
        self.in_flight = IN_FLIGHT.labels(vendor)
        self.retry_wait = RETRY_WAIT.labels(vendor, operation)
        self.rate_limit_waited = RATE_LIMIT_WAITS.labels(vendor, operation, "waited")
        self.rate_limit_refused = RATE_LIMIT_WAITS.labels(vendor, operation, "refused")
        self._outcomes = {OK: CALLS.labels(vendor, operation, OK)}
        self._retries = {reason: RETRIES.labels(vendor, operation, reason)
                         for reason in RETRY_REASONS}

    def ended(self, outcome: str) -> None:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = CALLS.labels(self.vendor, self.operation, outcome)
        child.inc()

    def retried(self, reason: str, wait: float) -> None:
        self._retries[reason].inc()
        self.retry_wait.inc(wait)


_bound: dict[tuple[str, str], CallMetrics] = {}


def call_metrics(vendor: str, operation: str) -> CallMetrics:
    """The cached `CallMetrics` of (vendor, operation)."""
    key = (vendor, operation)
    metrics = _bound.get(key)
    if metrics is None:
        metrics = _bound[key] = CallMetrics(vendor, operation)
    return metrics


def count_callback(vendor: str, status: int, reason: str) -> None:
    """One callback answered with `status` (2xx: accepted, anything else: refused)."""
    decision = "accepted" if 200 <= status < 300 else "refused"
    CALLBACKS.labels(vendor, decision, reason).inc()


# -- exposition ------------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(value) if value else None


_multiprocess_registry: CollectorRegistry | None = None


def exposition() -> bytes:
    """The metrics in Prometheus text format: summed over every process writing to
    `PROMETHEUS_MULTIPROC_DIR` when it is set, this process's own otherwise."""
    global _multiprocess_registry
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    if _multiprocess_registry is None:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        _multiprocess_registry = registry
    return generate_latest(_multiprocess_registry)


def multiprocess_problem(workers: int) -> str | None:
    """Why `/metrics` cannot answer truthfully, or None."""
    directory = multiprocess_dir()
    if directory is None:
        if workers > 1:
            return (f"{workers} Sanic workers without {MULTIPROC_ENV}: each worker counts "
                    f"apart; set {MULTIPROC_ENV} to an empty writable directory")
        return None
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        return f"{MULTIPROC_ENV} is not a writable directory"
    return None


def prepare_multiprocess_dir() -> None:
    """Empty the multiprocess directory before the workers start: files left by an earlier
    run (a restarted container keeps its volume) would be counted again. Only the
    library's own `*.db` files are removed."""
    directory = multiprocess_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def mark_worker_stopped(pid: int | None = None) -> None:
    """Drop a stopped worker's live gauges (in-flight calls) from the sums."""
    if multiprocess_dir() is not None:
        _multiprocess.mark_process_dead(os.getpid() if pid is None else pid)
OUTBOX = Counter(
    "service_desk_outbox_submissions",
    "Submissions through the outbox: `queued` (the vendor was down or busy), `delivered`, "
    "`retried` (another attempt failed), `failed` (given up), `notified` (the conversation "
    "was told).",
    ["vendor", "event"])
OUTBOX_WAITING = Gauge(
    "service_desk_outbox_waiting",
    "Submissions waiting in the outbox for their vendor, at the last delivery pass.",
    ["vendor"], multiprocess_mode="max")
OUTBOX_OLDEST = Gauge(
    "service_desk_outbox_oldest_seconds",
    "Age of the oldest submission waiting in the outbox, at the last delivery pass.",
    multiprocess_mode="max")

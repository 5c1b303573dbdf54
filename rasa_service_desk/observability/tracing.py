"""OpenTelemetry spans of vendor calls, when the operator turned on rasa-sdk's tracing.

rasa-sdk (newer than 3.6) traces each action call when `--endpoints` has a `tracing:`
section; it keeps its tracer provider on the Sanic app (`app.ctx.tracer_provider`) rather
than installing it globally. The plugin hook hands that provider to `use_tracer_provider`,
and from then on every vendor call made inside a traced action is a child span of the
action's span: `<vendor> <operation>`, kind CLIENT, with the vendor, operation, method,
final HTTP status, outcome and attempts. No URL, query, header or body is recorded: they
can carry ids, a customer's words or credentials.

`opentelemetry-api` is optional: without it (rasa-sdk 3.6 environments), or without a
provider, `start` returns None at the cost of one comparison.
"""

from __future__ import annotations

from typing import Any

try:  # optional: rasa-sdk 3.6 environments may not have it
    from opentelemetry import trace as _trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - depends on the environment
    _trace = None  # type: ignore[assignment]

TRACER_NAME = "rasa_service_desk"

_tracer: Any = None


def use_tracer_provider(provider: Any) -> None:
    """Trace vendor calls with `provider` (None: stop tracing)."""
    global _tracer
    _tracer = provider.get_tracer(TRACER_NAME) if provider is not None and _trace else None


def enabled() -> bool:
    return _tracer is not None


def start(vendor: str, operation: str, method: str) -> Any:
    """A started span for one vendor call, child of the current (action's) span; None when
    tracing is off or the call is not made inside a traced action."""
    if _tracer is None:
        return None
    if not _trace.get_current_span().is_recording():
        return None
    return _tracer.start_span(
        f"{vendor} {operation}", kind=SpanKind.CLIENT,
        attributes={"service_desk.vendor": vendor, "service_desk.operation": operation,
                    "http.request.method": method})


def end(span: Any, outcome: str, status: int | None, attempts: int) -> None:
    """End `span` with the call's outcome (`ok` or an error kind) and final HTTP status."""
    span.set_attribute("service_desk.outcome", outcome)
    span.set_attribute("service_desk.attempts", attempts)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if outcome != "ok":
        span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()

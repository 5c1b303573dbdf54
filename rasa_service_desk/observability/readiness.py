"""What `/ready` reports: the enabled integrations, each one's last vendor call, and whether
the server is stopping.

Readiness is not liveness. `/health` (rasa-sdk's) says the process answers; `/ready` says
whether a load balancer should send it new conversations: 503 from the SIGTERM on (while
the requests in flight finish), 200 otherwise. A vendor that fails does not make the server
unready: its customers still need the "service unavailable" reply and "try again", and
every replica talks to the same vendor, so taking replicas out would help no one. The last
call of each vendor is reported for people and dashboards, and comes from calls the
customers made: a probe never calls a vendor.

The state is per process: with several Sanic workers each answers for itself.
"""

from __future__ import annotations

import time
from typing import Any

from rasa_service_desk.observability.metrics import OK

_last_call: dict[str, tuple[str, float]] = {}
_stopping = False


def record_call(vendor: str, outcome: str) -> None:
    """Remember how `vendor`'s latest call ended (called by the HTTP layer)."""
    _last_call[vendor] = (outcome, time.time())


def mark_stopping() -> None:
    global _stopping
    _stopping = True


def stopping() -> bool:
    return _stopping


def report(integrations: list[str], now: float | None = None) -> tuple[int, dict[str, Any]]:
    """The status code and body of `/ready` for the enabled `integrations`."""
    now = time.time() if now is None else now
    listed: dict[str, Any] = {}
    for name in integrations:
        last = _last_call.get(name)
        if last is None:
            listed[name] = {"last_call": None}
        else:
            outcome, at = last
            listed[name] = {"last_call": outcome, "last_call_ok": outcome == OK,
                            "seconds_ago": round(max(0.0, now - at), 1)}
    status = "stopping" if _stopping else "ready"
    return (503 if _stopping else 200), {"status": status, "integrations": listed}


def reset() -> None:
    """Forget everything (tests)."""
    global _stopping
    _stopping = False
    _last_call.clear()

"""A closed-loop load generator: `concurrency` simulated conversations, each posting its
next `/webhook` request as soon as the previous reply arrives.

A request counts as an error when the server does not answer 200 with JSON, or when the
action reports a failure the way the product's actions do: by setting `pending_action`
(the slot that lets the customer say "try again"), or by uttering a shared error response.
A run stops after `max_requests` or once `max_seconds` have passed (requests in flight are
then awaited), whichever comes first.

Conversation `i` of `c` starts `i / c x stagger` seconds late. Real conversations arrive
independently; started all at once against a simulator whose latency never varies, they
would stay in lockstep for the whole run, so every vendor reply would arrive in a burst of
`c` and the action server would see bursts instead of a steady load (queueing behind the
burst that no real traffic shows). The runner staggers over one action's duration, k x L.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

FAILURE_RESPONSES = frozenset({
    "utter_vendor_unavailable", "utter_vendor_busy", "utter_vendor_rejected",
    "utter_integration_unavailable", "utter_something_went_wrong",
})
HEADERS = {"Content-Type": "application/json"}


@dataclass
class LoadResult:
    """What one run measured. Latencies are in seconds, one per completed request."""

    concurrency: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies (seconds)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def note_error(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5 and reason not in self.error_samples:
            self.error_samples.append(reason)


def failure_of(status: int, raw: bytes, expected_response: str | None) -> str | None:
    """Why a reply is a failure, or None when the action succeeded."""
    if status != 200:
        return f"HTTP {status}: {raw[:200].decode(errors='replace')}"
    try:
        reply = json.loads(raw)
    except ValueError:
        return "reply is not JSON"
    uttered = [m.get("response") for m in reply.get("responses", [])]
    failed = FAILURE_RESPONSES.intersection(uttered)
    if failed:
        return f"action uttered {sorted(failed)[0]}"
    for event in reply.get("events", []):
        if event.get("event") == "slot" and event.get("name") == "pending_action" \
                and event.get("value"):
            return "action set pending_action (failure)"
    if expected_response and expected_response not in uttered:
        return f"expected {expected_response}, got {uttered}"
    return None


async def drive(url: str, make: Callable[[int], tuple[bytes, str | None]], *,
                concurrency: int, max_requests: int, max_seconds: float,
                first_index: int = 0, timeout: float = 600.0,
                stagger: float = 0.0, connection_per_call: bool = False) -> LoadResult:
    """Post request number `first_index + i` to `url` from `concurrency` conversations.

    `make(index)` gives the request's body and the response the action must utter (or None).
    Each conversation keeps its connection, unless `connection_per_call`: then every request
    opens its own, as Rasa 3.6 does (a client session per action call), which lets the
    kernel hand each call to whichever Sanic worker accepts it first.
    """
    result = LoadResult(concurrency)
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=connection_per_call)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def conversation(number: int) -> None:
            nonlocal issued
            if stagger > 0:
                await asyncio.sleep(number / concurrency * stagger)
            while issued < max_requests and time.perf_counter() < deadline:
                data, expected_response = make(first_index + issued)
                issued += 1
                sent = time.perf_counter()
                try:
                    async with session.post(url, data=data, headers=HEADERS) as resp:
                        raw = await resp.read()
                        reason = failure_of(resp.status, raw, expected_response)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                result.latencies.append(time.perf_counter() - sent)
                if reason is not None:
                    result.note_error(reason)

        await asyncio.gather(*(conversation(number) for number in range(concurrency)))
        result.elapsed = time.perf_counter() - started
    return result

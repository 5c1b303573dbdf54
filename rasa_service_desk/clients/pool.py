"""The vendor connection pool: its size, and a log line when it runs out.

Every in-flight vendor call holds one connection of the process's pool (`shared_session()`
in `rasa_service_desk.clients.http`). When the pool is full, aiohttp makes the next request
wait for a free connection: latency that shows nowhere else. The sizes are settings
(`HTTP_POOL_SIZE`, `HTTP_POOL_SIZE_PER_HOST`, declared and checked with the other global
settings), and `PoolWatch` turns the waits into a warning, at most one per interval per
process, naming the settings to raise.

The per-host limit applies to one host and port: a real deployment has one host per vendor,
while the local simulators share one (so the benchmark needs the per-host limit to cover
every vendor's concurrent calls together).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from rasa_service_desk.clients import jsoncodec

logger = logging.getLogger(__name__)

#: Defaults: room for 512 concurrent vendor calls per process, 256 to any one vendor (e.g. 128
#: conversations in Benti's two parallel calls at once). Each connection is a file descriptor.
DEFAULT_POOL_SIZE = 512
DEFAULT_POOL_SIZE_PER_HOST = 256
MAX_POOL_SIZE = 65536
#: At most one "pool full" warning per this many seconds per process.
WARN_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class PoolLimits:
    """Connections per process: in total and to one host (host and port)."""

    total: int = DEFAULT_POOL_SIZE
    per_host: int = DEFAULT_POOL_SIZE_PER_HOST


_limits = [PoolLimits()]


def configure_pool(total: int, per_host: int) -> None:
    """Set the sizes of sessions opened from now on (called when the settings are loaded)."""
    _limits[0] = PoolLimits(total, per_host)


def pool_limits() -> PoolLimits:
    return _limits[0]


class PoolWatch:
    """Counts requests that waited for a free connection; warns at most once per interval."""

    def __init__(self, limits: PoolLimits, interval: float = WARN_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.interval = interval
        self._clock = clock
        #: Waits since the process started, and since the last warning.
        self.waits = 0
        self._unreported = 0
        self._longest = 0.0
        self._last_warning: float | None = None

    def record(self, waited: float) -> None:
        """One request waited `waited` seconds for a connection; warn if the interval allows."""
        self.waits += 1
        self._unreported += 1
        self._longest = max(self._longest, waited)
        now = self._clock()
        if self._last_warning is not None and now - self._last_warning < self.interval:
            return
        logger.warning(
            "vendor connection pool full: %d request(s) waited for a free connection (longest "
            "%.0f ms) since the last report; raise HTTP_POOL_SIZE (now %d) or "
            "HTTP_POOL_SIZE_PER_HOST (now %d) if this repeats", self._unreported,
            self._longest * 1000, self.limits.total, self.limits.per_host,
            extra={"operation": "connection_pool", "duration_ms": round(self._longest * 1000)})
        self._last_warning = now
        self._unreported = 0
        self._longest = 0.0


class WatchedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, timing the requests that find the pool full.

    A request waits in `connect()` only when no connection is available for its host; such
    a request is timed and recorded in the watch. The check reads aiohttp's
    `_available_connections` (present, with this meaning, in every aiohttp the project
    allows, 3.9 to 3.13; `tests/clients/test_pool.py` fails if it changes). aiohttp's
    tracing signals (`on_connection_queued_start`) would tell the same, but a session with
    a trace config sends every signal of every request: about 45 microseconds of CPU per
    vendor call, a quarter of a bare aiohttp call, for a pool that is almost never full.
    """

    def __init__(self, watch: PoolWatch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch = watch

    async def connect(self, req: Any, *args: Any, **kwargs: Any) -> Any:
        if self._available_connections(req.connection_key) > 0:
            return await super().connect(req, *args, **kwargs)
        started = time.monotonic()
        try:
            return await super().connect(req, *args, **kwargs)
        finally:
            self.watch.record(time.monotonic() - started)


_watches: list[PoolWatch] = []


def new_session(**kwargs: Any) -> aiohttp.ClientSession:
    """A session with the configured pool and its watch (one per process and event loop)."""
    limits = pool_limits()
    watch = PoolWatch(limits)
    _watches.append(watch)
    del _watches[:-8]  # only the recent ones (a test opens many loops)
    connector = WatchedConnector(watch, limit=limits.total, limit_per_host=limits.per_host,
                                 ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, json_serialize=jsoncodec.dumps,
                                 **kwargs)


def pool_waits() -> int:
    """Requests of this process that waited for a free connection (the latest session's)."""
    return _watches[-1].waits if _watches else 0

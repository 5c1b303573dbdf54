"""A small TTL cache for library content that also merges concurrent identical lookups.

A library changes rarely while the same questions arrive all the time, so each distinct
lookup reaches Cention at most once per TTL; lookups that arrive while the first one is still
in flight wait for its result instead of sending their own request. Failures are not cached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    """`await cache.get(key, load)`: a fresh cached value, or `load()` run once for everyone."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._values: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future[T]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        entry = self._values.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._values.move_to_end(key)
                return entry[1]
            del self._values[key]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = pending
            pending.add_done_callback(_consume_exception)
        # shield: one waiter giving up (cancelled request) must not cancel the others' lookup
        return await asyncio.shield(pending)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await load()
        finally:
            self._loading.pop(key, None)
        if self.ttl > 0:
            self._values[key] = (self._clock() + self.ttl, value)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        self._values.clear()


def _consume_exception(future: asyncio.Future[T]) -> None:
    """Mark a failure as seen even if every waiter was cancelled (no asyncio warning)."""
    if not future.cancelled():
        future.exception()

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
        while True:
            entry = self._values.get(key)
            if entry is not None:
                if entry[0] > self._clock():
                    self._values.move_to_end(key)
                    return entry[1]
                del self._values[key]
            pending = self._loading.get(key)
            if pending is None:
                return await self._load(key, load)
            try:
                # shield: one waiter giving up (a cancelled request) must not cancel the
                # lookup the others wait for
                return await asyncio.shield(pending)
            except _LoaderCancelled:
                continue  # the request that was loading it gave up: load it anew

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """`load()` in the caller's own task (a task per lookup showed in profiles), its
        outcome shared with the callers that ask for `key` meanwhile."""
        shared: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        shared.add_done_callback(_consume_exception)
        self._loading[key] = shared
        try:
            value = await load()
        except asyncio.CancelledError:
            shared.set_exception(_LoaderCancelled())
            raise
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        finally:
            self._loading.pop(key, None)
        if self.ttl > 0:
            self._values[key] = (self._clock() + self.ttl, value)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        shared.set_result(value)
        return value

    def clear(self) -> None:
        self._values.clear()


class _LoaderCancelled(Exception):
    """The caller that was loading a key was cancelled: a waiter loads it itself."""


def _consume_exception(future: asyncio.Future[T]) -> None:
    """Mark a failure as seen even if every waiter was cancelled (no asyncio warning)."""
    if not future.cancelled():
        future.exception()

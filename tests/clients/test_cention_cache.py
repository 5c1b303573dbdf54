"""The library cache: concurrent identical lookups reach Cention once, and no caller's
cancellation (a customer who left, an action past its deadline) fails another's lookup."""

from __future__ import annotations

import asyncio

import pytest

from rasa_service_desk.clients.cention.cache import TtlCache


class Library:
    """A lookup that takes `delay` seconds and counts its calls."""

    def __init__(self, delay: float = 0.05, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def load(self) -> list[str]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("library down")
        return [f"answer {self.calls}"]


async def test_concurrent_identical_lookups_load_once() -> None:
    cache: TtlCache[list[str]] = TtlCache(60)
    library = Library()
    results = await asyncio.gather(*(cache.get("q", library.load) for _ in range(20)))
    assert library.calls == 1
    assert results == [["answer 1"]] * 20
    assert await cache.get("q", library.load) == ["answer 1"]  # now from the cache
    assert library.calls == 1


async def test_a_waiter_giving_up_leaves_the_lookup_to_the_others() -> None:
    cache: TtlCache[list[str]] = TtlCache(60)
    library = Library()
    loader = asyncio.ensure_future(cache.get("q", library.load))
    await asyncio.sleep(0)
    quitter = asyncio.ensure_future(cache.get("q", library.load))
    stayer = asyncio.ensure_future(cache.get("q", library.load))
    await asyncio.sleep(0.01)
    quitter.cancel()
    assert await loader == ["answer 1"]
    assert await stayer == ["answer 1"]
    assert quitter.cancelled()
    assert library.calls == 1


async def test_when_the_loading_request_gives_up_a_waiter_loads_it_itself() -> None:
    cache: TtlCache[list[str]] = TtlCache(60)
    library = Library()
    loader = asyncio.ensure_future(cache.get("q", library.load))
    await asyncio.sleep(0)
    waiters = asyncio.gather(*(cache.get("q", library.load) for _ in range(5)))
    await asyncio.sleep(0.01)
    loader.cancel()
    assert await waiters == [["answer 2"]] * 5  # one of them loaded it again, once
    assert library.calls == 2
    with pytest.raises(asyncio.CancelledError):
        await loader


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache: TtlCache[list[str]] = TtlCache(60)
    library = Library(fail=True)
    results = await asyncio.gather(*(cache.get("q", library.load) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert library.calls == 1
    library.fail = False
    assert await cache.get("q", library.load) == ["answer 2"]

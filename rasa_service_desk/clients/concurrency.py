"""Running a client's independent vendor calls at the same time.

A client whose calls do not depend on each other (Benti's user lookup and uploads, Imbee's
chat and access link) runs them concurrently, so the customer waits for the slowest call
instead of their sum. When one fails, nothing should keep calling the vendor after the
customer has been answered, so the others are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


async def gather_or_cancel(*steps: Awaitable[T]) -> list[T]:
    """`asyncio.gather`, but the first failure cancels the other steps (and waits for them to
    stop) before it is raised, like a `TaskGroup` on Python 3.10."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """`gather_or_cancel` of two steps of different types, keeping each one's type."""
    results: list[Any] = await gather_or_cancel(first, second)
    return cast(A, results[0]), cast(B, results[1])

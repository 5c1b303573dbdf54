"""`within`: one deadline for a whole piece of async work, as cheap as Python allows.

Shared by the actions (an action run, a submission's budget) and the Redis store (one bound
per pipeline instead of one per socket operation), which is why it sits outside both.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

R = TypeVar("R")


async def within(coroutine: Awaitable[R], seconds: float) -> R:
    """`await coroutine`, raising `asyncio.TimeoutError` after `seconds`. From Python 3.11
    it runs in the caller's task (`asyncio.timeout`): `wait_for` there wrapped every action
    run and every submission in a task of its own, which showed in the server's profile."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await coroutine
    return await asyncio.wait_for(coroutine, seconds)

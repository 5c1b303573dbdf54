"""Retries that cost nothing until a request fails.

tenacity's `AsyncRetrying` builds its state, stop/wait/retry strategies and statistics for
every call, which on the happy path (almost every vendor call) is pure overhead. `FirstTry`
iterates like `AsyncRetrying` (`async for attempt in ...: with attempt: ...`) but yields a
plain first attempt; only when that attempt fails with one of the `retry_on` exceptions is
the `AsyncRetrying` built, and the failure replayed into it as its first attempt. So tenacity
still decides everything that follows (whether to retry, how long to wait, when to stop)
exactly as if it had run the first attempt itself.

Other exceptions propagate at once, as `AsyncRetrying(reraise=True)` would raise them when its
`retry` predicate refuses them: the predicate must return False for anything that is not one
of `retry_on`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from tenacity import AsyncRetrying


class _FirstAttempt:
    """The first attempt's context: keeps a `retry_on` failure for tenacity, lets others go."""

    def __init__(self, retry_on: tuple[type[BaseException], ...]) -> None:
        self.retry_on = retry_on
        self.error: BaseException | None = None

    def __enter__(self) -> _FirstAttempt:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is not None and isinstance(exc, self.retry_on):
            self.error = exc
            return True
        return False


class FirstTry:
    """`async for attempt in FirstTry(make_retrying, retry_on): with attempt: ...`"""

    def __init__(self, make_retrying: Callable[[], AsyncRetrying],
                 retry_on: tuple[type[BaseException], ...]) -> None:
        self._make_retrying = make_retrying
        self._retry_on = retry_on
        self._first: _FirstAttempt | None = None
        self._rest: Any = None

    def __aiter__(self) -> FirstTry:
        return self

    async def __anext__(self) -> Any:
        if self._first is None:
            self._first = _FirstAttempt(self._retry_on)
            return self._first
        if self._rest is None:
            error = self._first.error
            if error is None:  # the block completed without returning or raising
                raise StopAsyncIteration
            self._rest = self._make_retrying().__aiter__()
            replay = await self._rest.__anext__()
            with replay:  # tenacity records the first failure as its own attempt 1
                raise error
        return await self._rest.__anext__()

"""The action server's `/metrics` and `/ready` routes and its drain on SIGTERM (Sanic 21.12
and 25), attached by the rasa-sdk plugin hook.

The drain: Sanic's own stop handler stops listening at once, so a load balancer polling
`/ready` would only ever see a refused connection. Here the stop signal first marks the
server as stopping (`/ready` answers 503, `/health` still 200) and keeps serving while
action calls are in flight, up to `limit` seconds; then Sanic's usual graceful stop follows
(which drains whatever arrived meanwhile). With nothing in flight the stop is immediate.

Which signal reaches a worker: SIGTERM (or Ctrl-C's SIGINT) itself with Sanic 21.12 and one
worker; SIGTERM from the main process with Sanic 21.12 and several; SIGINT from Sanic 25's
worker manager, which receives the SIGTERM. The worker's handlers of both are replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import weakref
from typing import Any

from rasa_service_desk.observability import metrics, readiness, tracing

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
READY_PATH = "/ready"


def sanic_workers() -> int:
    """The number of Sanic workers rasa-sdk starts (`ACTION_SERVER_SANIC_WORKERS`)."""
    try:
        from rasa_sdk.utils import number_of_sanic_workers

        return int(number_of_sanic_workers())
    except Exception:
        return 1


class Observability:
    """Routes, listeners and middleware of one Sanic app."""

    def __init__(self, drain_limit: float, webhook_path: str = "/webhook") -> None:
        self.drain_limit = drain_limit
        self.webhook_path = webhook_path
        self._in_flight: weakref.WeakSet[Any] = weakref.WeakSet()
        self._idle: asyncio.Event | None = None  # set when stopping and nothing is in flight
        #: Why /metrics cannot answer ("" when it can); None until first asked.
        self._metrics_problem: str | None = None
        self._drain: asyncio.Task[None] | None = None

    def attach(self, app: Any) -> None:
        from sanic import response

        async def metrics_route(_: Any) -> Any:
            problem = self._metrics_refusal()  # also before the start listener ran
            if problem:
                return response.json({"error": problem}, status=503)
            return response.raw(metrics.exposition(),
                                headers={"Content-Type": metrics.CONTENT_TYPE})

        async def ready_route(_: Any) -> Any:
            from rasa_service_desk.actions.runtime import enabled

            status, body = readiness.report(enabled())
            return response.json(body, status=status)

        app.add_route(metrics_route, METRICS_PATH, methods=["GET"], name="service_desk_metrics")
        app.add_route(ready_route, READY_PATH, methods=["GET"], name="service_desk_ready")
        app.register_middleware(self._request_started, "request")
        app.register_middleware(self._request_ended, "response")
        app.register_listener(self._main_start, "main_process_start")
        app.register_listener(self._worker_started, "after_server_start")
        app.register_listener(self._worker_stopping, "before_server_stop")
        app.register_listener(self._worker_stopped, "after_server_stop")

    # -- requests in flight ----------------------------------------------------------------

    async def _request_started(self, request: Any) -> None:
        if request.path == self.webhook_path:
            self._in_flight.add(request)

    async def _request_ended(self, request: Any, _: Any) -> None:
        self._in_flight.discard(request)
        if self._idle is not None and not self._in_flight:
            self._idle.set()

    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- lifecycle ---------------------------------------------------------------------------

    def _metrics_refusal(self) -> str:
        """Why /metrics cannot answer truthfully in this worker ("" when it can), found once."""
        if self._metrics_problem is None:
            self._metrics_problem = metrics.multiprocess_problem(sanic_workers()) or ""
        return self._metrics_problem

    async def _main_start(self, *_: Any) -> None:
        """In the main process, before any worker: clear the multiprocess directory."""
        metrics.prepare_multiprocess_dir()

    async def _worker_started(self, app: Any, loop: Any) -> None:
        problem = self._metrics_refusal()
        if problem:
            logger.warning("/metrics is disabled: %s", problem)
        # rasa-sdk's tracer provider, when `--endpoints` configures tracing (newer SDKs).
        tracing.use_tracer_provider(getattr(app.ctx, "tracer_provider", None))
        # Replace Sanic's stop handlers (installed before this listener runs).
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_stop_signal, app, loop)
        except (NotImplementedError, RuntimeError):  # no signals here: Sanic's stop stays
            logger.debug("drain on stop not installed (no signal support in this loop)")

    async def _worker_stopping(self, *_: Any) -> None:
        readiness.mark_stopping()  # Sanic is stopping now: a later signal changes nothing

    async def _worker_stopped(self, *_: Any) -> None:
        metrics.mark_worker_stopped()

    def _on_stop_signal(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        if readiness.stopping():
            return
        readiness.mark_stopping()
        logger.info("stop signal: /ready answers 503; stopping once %d action call(s) in "
                    "flight have finished (at most %.0f s)", self.in_flight(), self.drain_limit)
        self._drain = loop.create_task(self._drain_then_stop(app))

    async def _drain_then_stop(self, app: Any) -> None:
        self._idle = asyncio.Event()
        if self.in_flight():
            # A request whose response middleware never ran leaves the set only when it is
            # collected: the limit bounds the wait in any case.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.drain_limit)
        stop_server(app)


def stop_server(app: Any) -> None:
    """Sanic's own stop of this worker: `app.stop(terminate=False)` on Sanic 22.9 and newer
    (what its signal handler calls), `app.stop()` before."""
    if "terminate" in inspect.signature(app.stop).parameters:
        app.stop(terminate=False)
    else:
        app.stop()

"""What every simulator shares: call counters, fault injection, latency and a control API.

Control routes live under `/_sandbox/` of each simulator (so `/benti/_sandbox/...` when all
four are mounted together) and let tests and the benchmark steer a simulator in another
process:

- `GET  /_sandbox/calls`   -> `{"POST /v1/auth": 2, ...}` counts of vendor calls by route;
- `POST /_sandbox/faults`  <- `[{"status": 503, "times": 2, "path": "/v1/tickets"}, ...]`;
- `POST /_sandbox/latency` <- `{"seconds": 0.05}` added to every vendor call;
- `POST /_sandbox/reset`   -> forget state, counters and faults;
- `GET  /_sandbox/state`   -> the simulator's stored objects, for assertions.

A fault is consumed by the next matching request: `status` answers that status (with a
`Retry-After` for 429), `malformed` answers a body that is not JSON, `delay` holds the
request that long first (a timeout when it exceeds the client's), `expire_tokens` makes
every token issued so far expire.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTROL_PREFIX = "/_sandbox/"


@dataclass
class Fault:
    """One injected failure, consumed by the next `times` matching requests."""

    status: int | None = None
    malformed: bool = False
    delay: float = 0.0
    times: int = 1
    path: str = ""
    method: str = ""
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, request: web.Request) -> bool:
        return (not self.path or self.path in request.path) and (
            not self.method or self.method.upper() == request.method
        )


class Simulator:
    """Base of a vendor simulator. Subclasses add routes in `add_routes()` and state."""

    name = "vendor"

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.reset()

    # -- to override -------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget every stored object (tickets, tokens, ...)."""

    def add_routes(self, app: web.Application) -> None:
        """Register the vendor's endpoints."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Stored objects, as JSON-able data for tests."""
        return {}

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (for simulators that issue tokens)."""

    async def fault_reply(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        """The reply for an injected status; vendors override to use their error shape."""
        headers = dict(fault.headers)
        if fault.status == 429:
            headers.setdefault("Retry-After", "0")
        body = fault.body if fault.body is not None else {"error": f"injected {fault.status}"}
        return web.json_response(body, status=fault.status or 500, headers=headers)

    # -- machinery ---------------------------------------------------------------
    def reset(self) -> None:
        self.calls.clear()
        self.faults.clear()
        self.reset_state()

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if CONTROL_PREFIX in request.path:
            return await handler(request)
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        self.calls[f"{request.method} {template}"] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(request)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.malformed:
                return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
            if fault.status:
                return await self.fault_reply(fault, request)
        return await handler(request)

    def app(self) -> web.Application:
        """The aiohttp application: vendor routes plus the control API."""
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024**2)
        self.add_routes(app)
        app.router.add_get(CONTROL_PREFIX + "calls", self._get_calls)
        app.router.add_post(CONTROL_PREFIX + "faults", self._post_faults)
        app.router.add_post(CONTROL_PREFIX + "latency", self._post_latency)
        app.router.add_post(CONTROL_PREFIX + "reset", self._post_reset)
        app.router.add_get(CONTROL_PREFIX + "state", self._get_state)
        app.router.add_post(CONTROL_PREFIX + "expire-tokens", self._post_expire)
        return app

    async def _get_calls(self, _: web.Request) -> web.Response:
        return web.json_response(dict(self.calls))

    async def _post_faults(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.inject(*(Fault(**item) for item in (data if isinstance(data, list) else [data])))
        return web.json_response({"faults": len(self.faults)})

    async def _post_latency(self, request: web.Request) -> web.Response:
        self.latency = float((await request.json())["seconds"])
        return web.json_response({"seconds": self.latency})

    async def _post_reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def _get_state(self, _: web.Request) -> web.Response:
        return web.json_response(json.loads(json.dumps(self.state(), default=str)))

    async def _post_expire(self, _: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"expired": True})

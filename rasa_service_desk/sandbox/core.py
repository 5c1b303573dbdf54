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
`Retry-After` for 429), `malformed` answers an HTML page instead of JSON (with `status`, or
200), `empty` an empty body, `drop` closes the connection without a reply, `delay` holds the
request that long first (a timeout when it exceeds the client's), `expire_tokens` makes
every token issued so far expire. With `after: true` the vendor processes the request first
(the ticket, loop or response exists) and only then the reply goes wrong, after `delay`:
the ambiguous outcomes a gateway or a network produce.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTROL_PREFIX = "/_sandbox/"
#: Largest request body (Benti's attachments).
MAX_BODY_BYTES = 32 * 1024**2


class Routes(Protocol):
    """Where a simulator registers its endpoints: an aiohttp router, or `_Prefixed`."""

    def add_get(self, path: str, handler: Handler) -> Any: ...

    def add_post(self, path: str, handler: Handler) -> Any: ...


@dataclass(frozen=True)
class _Prefixed:
    """A router's `add_get` and `add_post`, every path under `prefix`."""

    _router: web.UrlDispatcher  # private: an old-style `app.router.add_*` fails loudly
    prefix: str

    def add_get(self, path: str, handler: Handler) -> Any:
        return self._router.add_get(self.prefix + path, handler)

    def add_post(self, path: str, handler: Handler) -> Any:
        return self._router.add_post(self.prefix + path, handler)


@dataclass
class Fault:
    """One injected failure, consumed by the next `times` matching requests."""

    status: int | None = None
    malformed: bool = False
    empty: bool = False
    drop: bool = False
    after: bool = False
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
        #: Where the simulator is mounted ("" when it is served alone, by `app()`).
        self.prefix = ""
        self.calls: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.reset()

    # -- to override -------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget every stored object (tickets, tokens, ...)."""

    def add_routes(self, routes: Routes) -> None:
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
        # Mounted together, every simulator's middleware sees every request: only its own
        # vendor calls are counted, delayed and given faults.
        if not request.path.startswith(self.prefix + "/") or CONTROL_PREFIX in request.path:
            return await handler(request)
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        self.calls[f"{request.method} {template}"] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(request)
        if fault is None:
            return await handler(request)
        processed = await handler(request) if fault.after else None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        reply = await self._fault_response(fault, request)
        if reply is not None:
            return reply
        return processed if processed is not None else await handler(request)

    async def _fault_response(self, fault: Fault,
                              request: web.Request) -> web.StreamResponse | None:
        """The reply a fault puts in place of the vendor's, or None (a delay only)."""
        if fault.drop:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("injected: connection dropped")
        if fault.empty:
            return web.Response(status=fault.status or 200, body=b"",
                                content_type="application/json")
        if fault.malformed:
            return web.Response(text=f"<html>{fault.status or 502} Bad Gateway</html>",
                                content_type="text/html", status=fault.status or 200)
        if fault.status:
            return await self.fault_reply(fault, request)
        return None

    def app(self) -> web.Application:
        """The simulator served alone, at the root: vendor routes plus the control API."""
        self.prefix = ""
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        self._register(app.router)
        return app

    def mount(self, router: web.UrlDispatcher, prefix: str) -> None:
        """Register the simulator's routes under `prefix` in a shared application, whose
        middlewares must include this simulator's (`serve_together` does both)."""
        self.prefix = prefix
        self._register(_Prefixed(router, prefix))

    def _register(self, routes: Routes) -> None:
        self.add_routes(routes)
        routes.add_get(CONTROL_PREFIX + "calls", self._get_calls)
        routes.add_post(CONTROL_PREFIX + "faults", self._post_faults)
        routes.add_post(CONTROL_PREFIX + "latency", self._post_latency)
        routes.add_post(CONTROL_PREFIX + "reset", self._post_reset)
        routes.add_get(CONTROL_PREFIX + "state", self._get_state)
        routes.add_post(CONTROL_PREFIX + "expire-tokens", self._post_expire)

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


def serve_together(simulators: Mapping[str, Simulator]) -> web.Application:
    """One application serving each simulator under `/<name>`.

    The routes are registered with their prefix, not as aiohttp sub-applications: before
    3.10, aiohttp (Rasa 3.6 pins 3.9) matches a sub-application against `request.url`, which
    the yarl of the same pin set cannot build from a `Host: 127.0.0.1:8765` header, so every
    request to the simulators failed with 500 in a bot's Rasa environment."""
    root = web.Application(middlewares=[simulator._middleware for simulator in
                                        simulators.values()], client_max_size=MAX_BODY_BYTES)
    for name, simulator in simulators.items():
        simulator.mount(root.router, f"/{name}")
    return root


def origin(request: web.Request) -> str:
    """`<scheme>://<host>` as the caller addressed the simulator (not `request.url`, which
    aiohttp 3.9 cannot build with a recent yarl; see `serve_together`)."""
    return f"{request.scheme}://{request.host}"

"""Serve every simulator on one port: `python -m rasa_service_desk.sandbox --port 8765`.

Each vendor is mounted under its own prefix (`/benti`, `/cention`, `/imbee`, `/loop`), which
is what `SANDBOX_URL` points the action server at. `GET /health` answers once all are up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web

from rasa_service_desk.sandbox.core import serve_together
from rasa_service_desk.sandbox.registry import build_simulators


def build_app(latency: float = 0.0) -> web.Application:
    """One application mounting every simulator under its vendor prefix."""
    simulators = build_simulators(latency)
    root = serve_together(simulators)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "simulators": sorted(simulators)})

    root.router.add_get("/health", health)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local simulators of the vendor APIs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay added to every vendor call (benchmarks)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(message)s")
    web.run_app(build_app(args.latency_ms / 1000), host=args.host, port=args.port,
                access_log=None, loop=event_loop(), print=lambda *_: logging.info(
                    "simulators listening on http://%s:%s", args.host, args.port))


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it comes with Sanic, so with rasa-sdk), else asyncio's.

    The simulators share the machine with the action server in benchmarks and tests: on
    uvloop they answer more promptly (see docs/benchmark.md, "on uvloop").
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()

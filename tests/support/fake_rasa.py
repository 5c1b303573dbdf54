"""A stand-in for Rasa's HTTP API as far as the outbox calls it, and a bounded wait for
an observable condition: shared by the outbox's own tests and its end-to-end runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aiohttp import web

from tests.support.servers import free_port

T = TypeVar("T")
RASA_TOKEN = "rasa-test-token"


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = 30.0,
             every: float = 0.1, details: Callable[[], str] | None = None) -> T:
    """Poll `condition` until it returns something truthy (returned); fail after
    `timeout` seconds naming what was awaited (and `details()`, e.g. server logs)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"not within {timeout:g} s: {what} (last: {value!r}){extra}")
        time.sleep(every)


class FakeRasa:
    """Rasa 3.6's `POST /conversations/{id}/trigger_intent`, answered the way
    `rasa.server.trigger_intent` does: `{"tracker": ...}`, plus `messages` when the
    conversation's output channel only collects (`messages` set here). Records every call;
    `stop()` closes the port (Rasa down) and `start()` opens the same port again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _trigger(self, request: web.Request) -> web.Response:
        conversation = request.match_info["conversation_id"]
        body = await request.json()
        with self._lock:
            self.calls.append({"conversation": conversation, "intent": body.get("name"),
                               "output_channel": request.query.get("output_channel"),
                               "token": request.query.get("token")})
            messages = None if self.messages is None else [
                {"recipient_id": conversation, **m} for m in self.messages]
        if request.query.get("token") != RASA_TOKEN:
            return web.json_response({"status": "failure", "reason": "NotAuthenticated",
                                      "code": 401}, status=401)
        if not body.get("name"):
            return web.json_response({"status": "failure", "reason": "BadRequest",
                                      "code": 400}, status=400)
        tracker = {"sender_id": conversation, "slots": {}, "latest_message": {
            "intent": {"name": body["name"], "confidence": 1.0}, "entities": [],
            "text": f"EXTERNAL: {body['name']}", "metadata": {"is_external": True}},
            "events": [], "paused": False, "followup_action": None, "active_loop": {},
            "latest_action_name": "action_listen"}
        reply: dict[str, Any] = {"tracker": tracker}
        if messages is not None:
            reply["messages"] = messages
        return web.json_response(reply)

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/conversations/{conversation_id}/trigger_intent",
                                self._trigger)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            self._runner = runner
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake Rasa did not start"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = self._runner = None

    def calls_for(self, conversation: str) -> list[dict[str, Any]]:
        with self._lock:
            return [call for call in self.calls if call["conversation"] == conversation]

    def told(self) -> dict[str, list[str]]:
        """Conversation -> the intents triggered there, in order (each asked for the
        conversation's latest output channel)."""
        with self._lock:
            calls = list(self.calls)
        told: dict[str, list[str]] = {}
        for call in calls:
            assert call["output_channel"] == "latest", call
            told.setdefault(call["conversation"], []).append(call["intent"])
        return told


@contextmanager
def running_fake_rasa() -> Iterator[FakeRasa]:
    """A started `FakeRasa`, stopped at the end."""
    rasa = FakeRasa()
    rasa.start()
    try:
        yield rasa
    finally:
        rasa.stop()

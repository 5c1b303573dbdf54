"""A web-chat customer on Rasa's socket.io channel, through a real python-socketio client.

python-socketio is not installed in the test environment (`.venv`); it is in Rasa's own
(`.venv-rasa`, 5.9.0 as pinned by constraints/rasa-3.6.21-py310.txt). So the client runs as
a small subprocess of `.venv-rasa/bin/python` (this file's `__main__`), steered through JSON
lines on its stdin and reporting what it receives as JSON lines on its stdout:

    commands  {"op": "connect", "session_id": "..."|null, "session_request": true}
              {"op": "say", "text": "...", "session_id": "..."|null}
              {"op": "disconnect"}   {"op": "quit"}
    events    {"event": "connected", "sid": ..., "transport": ...}
              {"event": "session_confirm", "data": "<session id>"}
              {"event": "bot_uttered", "data": {...}}
              {"event": "disconnected"}
              {"event": "done", "op": ...}   {"event": "error", "op": ..., "error": ...}

`SocketCustomer` (the test side, standard library only) drives one such client: one socket,
which can disconnect and connect again.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
RASA_PYTHON = HERE.parents[2] / ".venv-rasa" / "bin" / "python"
#: How long a bot reply (or a pushed message) may take to arrive.
TURN_TIMEOUT = 30.0


class SocketCustomer:
    """One socket.io client (one browser tab) talking to Rasa at `url`."""

    def __init__(self, url: str, *, socketio_path: str = "/socket.io",
                 session_persistence: bool = True, log_tails: Any = None,
                 user_message_evt: str = "user_uttered",
                 bot_message_evt: str = "bot_uttered", namespace: str | None = None,
                 transports: str = "") -> None:
        self.url = url
        self.session_persistence = session_persistence
        self.session_id: str | None = None
        self.sid: str | None = None
        #: Every bot message received, in order; `cursor` marks what the test consumed.
        self.inbox: list[dict[str, Any]] = []
        self.cursor = 0
        self._log_tails = log_tails
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        #: Control events received while waiting for another one, not yet consumed.
        self._backlog: list[dict[str, Any]] = []
        self._stderr = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="socket-customer-", suffix=".log", delete=False)
        self._proc = subprocess.Popen(
            [str(RASA_PYTHON), str(HERE), url, socketio_path, user_message_evt,
             bot_message_evt, namespace or "/", transports],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    # -- plumbing ------------------------------------------------------------------------
    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                self._events.put({"event": "raw", "line": line})
        self._events.put({"event": "exited"})

    def _send(self, command: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()

    def _pump(self, timeout: float) -> dict[str, Any] | None:
        """Take the next event, or None after `timeout`: a bot message goes to the inbox,
        anything else to the backlog `_wait` reads."""
        try:
            event = self._events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if event.get("event") == "bot_uttered":
            self.inbox.append(event.get("data") or {})
        else:
            self._backlog.append(event)
        return event

    def _diagnostics(self) -> str:
        stderr = Path(self._stderr.name).read_text(errors="replace")[-3000:]
        tails = self._log_tails() if self._log_tails else ""
        return f"--- socket client stderr ---\n{stderr}\n{tails}"

    def _check_alive(self) -> None:
        failed = [e for e in self._backlog if e.get("event") in ("error", "exited", "raw")]
        if failed:
            raise AssertionError(f"socket client failed: {failed}\n{self._diagnostics()}")

    def _wait(self, name: str, timeout: float = TURN_TIMEOUT) -> dict[str, Any]:
        """The next control event called `name` (bot messages keep arriving meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            for event in self._backlog:
                if event.get("event") == name:
                    self._backlog.remove(event)
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"socket client: no {name!r} event in {timeout}s\n"
                                     f"{self._diagnostics()}")
            self._pump(remaining)

    # -- what a customer does ------------------------------------------------------------
    def connect(self, session_id: str | None = None, *, session_request: bool = True) -> str:
        """Open the socket and (by default) ask for the session, like a page load; returns
        the conversation's sender id (the session id, or the socket id without persistence).
        """
        self._send({"op": "connect", "session_id": session_id,
                    "session_request": session_request})
        self.sid = str(self._wait("connected")["sid"])
        if session_request:
            self.session_id = str(self._wait("session_confirm")["data"])
        self._wait("done")
        if not self.session_persistence:
            return self.sid
        assert self.session_id is not None
        return self.session_id

    @property
    def sender_id(self) -> str:
        sender = self.session_id if self.session_persistence else self.sid
        assert sender, "not connected"
        return sender

    def say(self, text: str) -> None:
        self._send({"op": "say", "text": text, "session_id": self.session_id})
        self._wait("done")

    def receive(self, *responses: str, timeout: float = TURN_TIMEOUT) -> list[str]:
        """Wait until the messages received since the last call are exactly `responses`
        (domain response names), in order; return their texts."""
        from tests.e2e.deploy import matches_responses

        deadline = time.monotonic() + timeout
        while True:
            texts = [m.get("text") or "" for m in self.inbox[self.cursor:]]
            if matches_responses(texts, responses):
                self.cursor = len(self.inbox)
                return texts
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"socket {self.sid}: expected {list(responses)}, received {texts}\n"
                    f"{self._diagnostics()}")
            self._pump(min(remaining, 0.5))
            self._check_alive()

    def expect(self, text: str, *responses: str, timeout: float = TURN_TIMEOUT) -> list[str]:
        """Say `text` and wait for exactly `responses` in reply."""
        self.say(text)
        return self.receive(*responses, timeout=timeout)

    def quiet(self, seconds: float = 1.0) -> None:
        """Assert nothing more arrives for `seconds` (a duplicate would)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._pump(remaining)
        extra = self.inbox[self.cursor:]
        assert not extra, f"socket {self.sid}: unexpected bot messages {extra}"

    def disconnect(self) -> None:
        """Close the socket (a closed tab); waits a moment so Rasa has seen it go."""
        self._send({"op": "disconnect"})
        self._wait("done")
        time.sleep(0.3)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._send({"op": "quit"})
                self._proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(5)
        self._stderr.close()
        Path(self._stderr.name).unlink(missing_ok=True)

    def __enter__(self) -> SocketCustomer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- the client process (runs in .venv-rasa) ---------------------------------------------


async def _client(url: str, path: str, user_evt: str, bot_evt: str, namespace: str,
                  transports: str) -> None:
    import asyncio

    import socketio  # python-socketio, from .venv-rasa

    sio = socketio.AsyncClient(reconnection=False)
    loop = asyncio.get_running_loop()

    def out(**event: Any) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    @sio.on(bot_evt, namespace=namespace)
    async def bot_uttered(data: Any) -> None:
        out(event="bot_uttered", data=data)

    @sio.on("session_confirm", namespace=namespace)
    async def session_confirm(data: Any) -> None:
        out(event="session_confirm", data=data)

    @sio.on("disconnect", namespace=namespace)
    async def disconnect() -> None:
        out(event="disconnected")

    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        op = command.get("op")
        try:
            if op == "connect":
                await sio.connect(url, socketio_path=path, namespaces=[namespace],
                                  transports=transports.split(",") if transports else None,
                                  wait_timeout=10)
                out(event="connected", sid=sio.get_sid(namespace), transport=sio.transport())
                if command.get("session_request", True):
                    await sio.emit("session_request", {"session_id": command.get("session_id")},
                                   namespace=namespace)
            elif op == "say":
                await sio.emit(user_evt, {"message": command["text"],
                                          "session_id": command.get("session_id")},
                               namespace=namespace)
            elif op == "disconnect":
                await sio.disconnect()
            elif op == "quit":
                break
            else:
                raise ValueError(f"unknown command {op!r}")
            out(event="done", op=op)
        except Exception as exc:
            out(event="error", op=op, error=f"{type(exc).__name__}: {exc}")
    if sio.connected:
        await sio.disconnect()


if __name__ == "__main__":
    import asyncio

    asyncio.run(_client(*sys.argv[1:7]))

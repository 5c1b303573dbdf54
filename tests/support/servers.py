"""Start real processes (simulators, action server) on free loopback ports and talk to them.

Only the standard library and `requests` are used, so these helpers also work inside the
Rasa 3.6 environment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_for_action_server() -> str:
    """The interpreter running the tests (the action server runs on the SDK under test)."""
    return sys.executable


def python_for_sandbox() -> str:
    """The simulators are test peers, not part of the environment under test: they run from
    the main `.venv` where it exists (tests/sandbox checks them in Rasa's environment too)."""
    main = ROOT / ".venv" / "bin" / "python"
    return str(main) if main.exists() else sys.executable


@dataclass
class Process:
    """A child process with its output in a file (read it with `output()`)."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then after 10 s SIGKILL; then whatever the process left behind (its
        own session: Sanic's workers and multiprocessing helpers) is killed too, so no
        test leaves processes running. A multi-worker action server stopped while a
        worker is still booting can hang in Sanic's manager; that must not outlive the
        test."""
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        with suppress(ProcessLookupError, PermissionError):  # nothing left
            os.killpg(self.popen.pid, signal.SIGKILL)


def start_process(args: list[str], env: Mapping[str, str] | None = None,
                  cwd: Path | None = None) -> Process:
    log = tempfile.NamedTemporaryFile(prefix="proc-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                             cwd=str(cwd or ROOT), start_new_session=True)
    return Process(popen, Path(log.name))


def wait_until_ready(url: str, process: Process, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail with the process output if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"process exited before {url} was ready:\n{process.output()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{process.output()}")


@dataclass
class Sandbox:
    """The simulators running in another process, steered through their control API."""

    url: str
    process: Process

    def vendor_url(self, vendor: str) -> str:
        return f"{self.url}/{vendor}"

    def _control(self, vendor: str, verb: str, path: str, body: Any = None) -> Any:
        resp = requests.request(verb, f"{self.url}/{vendor}/_sandbox/{path}", json=body,
                                timeout=10)
        resp.raise_for_status()
        return resp.json()

    def calls(self, vendor: str) -> dict[str, int]:
        return dict(self._control(vendor, "GET", "calls"))

    def state(self, vendor: str) -> Any:
        return self._control(vendor, "GET", "state")

    def inject(self, vendor: str, *faults: dict[str, Any]) -> None:
        self._control(vendor, "POST", "faults", list(faults))

    def latency(self, vendor: str, seconds: float) -> None:
        self._control(vendor, "POST", "latency", {"seconds": seconds})

    def expire_tokens(self, vendor: str) -> None:
        self._control(vendor, "POST", "expire-tokens")

    def reset(self, vendor: str) -> None:
        self._control(vendor, "POST", "reset")


@contextmanager
def running_sandbox(python: str | None = None, latency_ms: float = 0.0) -> Iterator[Sandbox]:
    port = free_port()
    proc = start_process([python or python_for_sandbox(), "-m", "rasa_service_desk.sandbox",
                          "--port", str(port), "--latency-ms", str(latency_ms)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", proc)
        yield Sandbox(url, proc)
    finally:
        proc.stop()


@dataclass
class ActionServer:
    """A real `python -m rasa_sdk` process; `call()` posts to its `/webhook`."""

    url: str
    process: Process

    def call(self, payload: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.url}/webhook", json=payload, timeout=60)

    def run(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Post an action call and return the decoded reply, failing on non-200."""
        resp = self.call(payload)
        assert resp.status_code == 200, f"HTTP {resp.status_code}: {resp.text[:500]}"
        return dict(resp.json())

    def actions(self) -> list[str]:
        return [a["name"] for a in requests.get(f"{self.url}/actions", timeout=10).json()]


def action_server_command(port: int, python: str | None = None) -> list[str]:
    return [python or python_for_action_server(), "-m", "rasa_sdk", "--actions", "actions",
            "--port", str(port)]


@contextmanager
def running_action_server(env: Mapping[str, str], python: str | None = None,
                          cwd: Path | None = None) -> Iterator[ActionServer]:
    """Start the action server with `env` added to the environment (and no `.env` file)."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="action-server-")) if cwd is None else cwd
    proc = start_process(action_server_command(port, python),
                         env={"PYTHONPATH": str(ROOT), **env}, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", proc)
        yield ActionServer(url, proc)
    finally:
        proc.stop()

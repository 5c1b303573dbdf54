"""A real `redis-server` on a free loopback port, for the tests that need Redis.

The server comes from the machine (`make test` installs Debian's redis-server where it is
missing); nothing here fakes Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.servers import free_port


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def start(self) -> None:
        """Start it again on the same port (after `stop()`), with the data it saved."""
        self.process = _spawn(self.port, self.workdir)
        _wait(self.port, self.process)


def _spawn(port: int, workdir: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it: "
                           "apt-get install redis-server)")
    return subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
         "--appendonly", "yes", "--save", "", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING in 20 s")


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A fresh Redis with append-only persistence in a temporary folder."""
    workdir = tempfile.mkdtemp(prefix="redis-")
    port = free_port()
    server = RedisServer(port, _spawn(port, workdir), workdir)
    try:
        _wait(port, server.process)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

"""The processes under test: simulators and action servers on free loopback ports.

Each runs from the same interpreter as the benchmark, with its output in a log file (read
when it fails to start). `ProcessTree` measures a server with psutil: RSS and CPU time of
the process and its children, since Sanic serves requests from a worker subprocess.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A started server: its URL, process, log file and working folder."""

    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    cwd: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    async def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        """Poll `path` until it answers 200; raise with the log if the process dies or stalls."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited at start:\n{self.output()[-3000:]}")
                try:
                    async with session.get(self.url + path,
                                           timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.output()[-3000:]}")


def start(name: str, args: list[str], port: int, env: Mapping[str, str] | None = None,
          log_dir: Path | None = None) -> Child:
    """Start `python <args>` in a scratch directory (so no `.env` file is read)."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
                **(env or {})}
    cwd = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    with log_path.open("wb") as log:
        popen = subprocess.Popen([sys.executable, *args], stdout=log,
                                 stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
    return Child(name, f"http://127.0.0.1:{port}", popen, log_path, cwd)


async def start_sandbox(latency_ms: float, log_dir: Path | None = None) -> Child:
    """Every simulator on one port, each vendor call delayed by `latency_ms`."""
    port = free_port()
    child = start("sandbox", ["-m", "rasa_service_desk.sandbox", "--port", str(port),
                              "--latency-ms", str(latency_ms)], port, log_dir=log_dir)
    await child.wait_ready("/health")
    return child


async def start_action_server(name: str, package: str, env: Mapping[str, str],
                              log_dir: Path | None = None, workers: int = 1) -> Child:
    """The real `python -m rasa_sdk --actions <package>` on a loopback port."""
    port = free_port()
    child = start(name, ["-m", "rasa_sdk", "--actions", package, "--port", str(port)], port,
                  env={"SANIC_HOST": "127.0.0.1", "ACTION_SERVER_SANIC_WORKERS": str(workers),
                       **env},
                  log_dir=log_dir)
    await child.wait_ready("/health")
    return child


@dataclass
class Redis:
    """A `redis-server` of the machine on a loopback port, its data in a scratch folder."""

    url: str
    popen: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


async def start_redis(log_dir: Path | None = None, timeout: float = 20.0) -> Redis:
    """A fresh Redis (append-only file, as a deployment that keeps its state would run it);
    raises RuntimeError when `redis-server` is not installed or does not answer PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (`make redis` installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    log_dir = log_dir or workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (log_dir / "redis.log").open("wb") as log:
        popen = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--appendonly", "yes", "--save", "", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT)
    server = Redis(f"redis://127.0.0.1:{port}/0", popen, workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            server.stop()
            raise RuntimeError(f"redis-server exited with {popen.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PING\r\n")
            await writer.drain()
            answer = await reader.read(16)
            writer.close()
            if answer.startswith(b"+PONG"):
                return server
        except OSError:
            pass
        await asyncio.sleep(0.05)
    server.stop()
    raise RuntimeError(f"redis-server did not answer PING in {timeout:.0f} s")


class ProcessTree:
    """RSS and CPU time of a process and (unless `children=False`) all its descendants."""

    def __init__(self, pid: int, children: bool = True) -> None:
        self.root = psutil.Process(pid)
        self.children = children

    def _members(self) -> list[psutil.Process]:
        try:
            descendants = self.root.children(recursive=True) if self.children else []
            return [self.root, *descendants]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        total = 0
        for proc in self._members():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._members():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

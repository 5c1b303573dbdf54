"""The benchmark run: start the servers, warm up, measure every scenario and level.

For each scenario and concurrency level it records throughput, latency percentiles, errors,
the vendor calls per action (the simulator's counters before and after the level) and the
CPU the action server used. A final memory run mixes every vendor action for
`memory_requests` requests and samples the action server's RSS as it goes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench import loadgen, processes
from bench.scenarios import (
    CUSTOMERS,
    NAIVE,
    PRODUCT,
    SCENARIOS,
    Scenario,
    prepare,
    route_stage,
)

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024


@dataclass
class Config:
    latency_ms: float = 50.0
    concurrency: list[int] = field(default_factory=lambda: [1, 16, 64, 256])
    #: Each level stops after this many requests or seconds, whichever comes first.
    requests: int = 3000
    duration: float = 8.0
    #: The baseline serves one request at a time, so it gets fewer: 2 x concurrency, at
    #: least 16 and at least `concurrency`, at most `naive_requests` beyond that.
    naive_requests: int = 128
    warmup: int = 64
    memory_requests: int = 5000
    memory_chunk: int = 1000
    target_concurrency: int = 64
    #: Sanic worker processes of the product's action server (the baseline keeps one).
    workers: int = 1
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    results_dir: Path = RESULTS
    timeout: float = 600.0

    def level_requests(self, scenario: Scenario, concurrency: int) -> int:
        if scenario.server == NAIVE:
            return max(16, concurrency, min(2 * concurrency, self.naive_requests))
        return self.requests


@dataclass
class Level:
    """One scenario at one concurrency level."""

    scenario: str
    concurrency: int
    requests: int
    errors: int
    elapsed: float
    throughput: float
    p50: float
    p95: float
    p99: float
    #: Vendor calls per action, by counted route, and in total.
    routes: dict[str, float]
    calls: float
    #: CPU used during the level, as a fraction of one core: the action server, the
    #: simulators and the load generator (this process); the whole machine in percent.
    server_cpu: float
    sandbox_cpu: float
    loadgen_cpu: float
    machine_cpu: float
    error_samples: list[str] = field(default_factory=list)

    @property
    def server_cpu_ms(self) -> float:
        """Action-server CPU time per request, in milliseconds."""
        return self.server_cpu * self.elapsed / max(1, self.requests) * 1000


@dataclass
class Memory:
    """Action server RSS (MiB): at start, then after each chunk of the memory run."""

    requests: int
    at_start: float
    before: float
    samples: list[tuple[int, float]] = field(default_factory=list)
    errors: int = 0

    @property
    def after(self) -> float:
        return self.samples[-1][1] if self.samples else self.before


@dataclass
class Results:
    config: Config
    levels: list[Level] = field(default_factory=list)
    k: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: Memory | None = None
    cpu_count: int = 0
    started: str = ""

    def level(self, scenario: str, concurrency: int) -> Level | None:
        for level in self.levels:
            if level.scenario == scenario and level.concurrency == concurrency:
                return level
        return None


class Sandbox:
    """The simulators' control API: call counters and reset."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def calls(self, vendor: str | None) -> Counter[str]:
        if vendor is None:
            return Counter()
        async with aiohttp.ClientSession() as session, session.get(
                f"{self.url}/{vendor}/_sandbox/calls") as resp:
            resp.raise_for_status()
            return Counter(await resp.json())

    async def reset(self, vendor: str) -> None:
        async with aiohttp.ClientSession() as session, session.post(
                f"{self.url}/{vendor}/_sandbox/reset") as resp:
            resp.raise_for_status()


def sandbox_env(sandbox_url: str) -> dict[str, str]:
    """The product's action server: every vendor on its simulator."""
    return {"SANDBOX": "1", "SANDBOX_URL": sandbox_url}


def naive_env(sandbox_url: str) -> dict[str, str]:
    from rasa_service_desk.clients.benti.settings import SANDBOX_API_KEY, SANDBOX_API_SECRET

    return {"NAIVE_BENTI_URL": f"{sandbox_url}/benti", "NAIVE_BENTI_KEY": SANDBOX_API_KEY,
            "NAIVE_BENTI_SECRET": SANDBOX_API_SECRET}


class Runner:
    def __init__(self, config: Config, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.results = Results(config, cpu_count=psutil.cpu_count() or 1,
                               started=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        self.servers: dict[str, processes.Child] = {}
        self.trees: dict[str, processes.ProcessTree] = {}
        self.own = processes.ProcessTree(os.getpid(), children=False)
        self.sandbox: Sandbox | None = None
        self.next_index: Counter[str] = Counter()
        self.context: dict[str, Any] = {}

    def say(self, text: str) -> None:
        print(text, flush=True)

    async def run(self) -> Results:
        config = self.config
        chosen = [SCENARIOS[name] for name in config.scenarios]
        children: list[processes.Child] = []
        try:
            sandbox = await processes.start_sandbox(config.latency_ms, self.log_dir)
            children.append(sandbox)
            self.sandbox = Sandbox(sandbox.url)
            self.trees["sandbox"] = processes.ProcessTree(sandbox.popen.pid)
            self.context = await prepare(sandbox.url, config.scenarios)
            for server, package, env in [
                (PRODUCT, "bench.actions", sandbox_env(sandbox.url)),
                (NAIVE, "bench.naive_benti", naive_env(sandbox.url)),
            ]:
                if any(s.server == server for s in chosen):
                    child = await processes.start_action_server(
                        f"action-server-{server}", package, env, self.log_dir,
                        workers=config.workers if server == PRODUCT else 1)
                    children.append(child)
                    self.servers[server] = child
                    self.trees[server] = processes.ProcessTree(child.popen.pid)
            rss_at_start = self.trees[PRODUCT].rss_bytes() / MIB if PRODUCT in self.trees else 0
            self.say(f"simulators at {sandbox.url} ({config.latency_ms:g} ms per vendor call), "
                     f"action servers: " + ", ".join(
                         f"{name} {child.url}" for name, child in self.servers.items()))
            for scenario in chosen:
                await self.measure(scenario)
            vendors = [s for s in chosen if s.server == PRODUCT and s.vendor]
            if config.memory_requests > 0 and vendors:
                await self.memory_run(vendors, rss_at_start)
        finally:
            for child in reversed(children):
                child.stop()
        return self.results

    async def post(self, scenario: Scenario, concurrency: int, requests: int) -> \
            loadgen.LoadResult:
        template = scenario.template(self.context)
        start = self.next_index[scenario.name]
        self.next_index[scenario.name] += requests
        url = self.servers[scenario.server].url + "/webhook"

        def make(index: int) -> tuple[bytes, str | None]:
            return template.body(index, f"bench-{scenario.name}"), scenario.expected_response

        return await loadgen.drive(url, make, concurrency=concurrency, max_requests=requests,
                                   max_seconds=self.config.duration, first_index=start,
                                   timeout=self.config.timeout)

    async def measure(self, scenario: Scenario) -> None:
        config = self.config
        assert self.sandbox is not None
        # The warm-up fetches tokens and fills caches, and registers every returning
        # customer with the vendor, so the levels measure the steady state.
        warmup = max(config.warmup if scenario.server == PRODUCT else 0,
                     CUSTOMERS if scenario.vendor else 1)
        warm = await self.post(scenario, min(8, max(1, warmup)), warmup)
        self.say(f"\n{scenario.title}: warm-up {warm.requests} requests, {warm.errors} errors"
                 + (f" ({warm.error_samples[0]})" if warm.error_samples else ""))
        for concurrency in config.concurrency:
            if scenario.reset_simulator and scenario.vendor:
                await self.sandbox.reset(scenario.vendor)
            trees = [self.trees[scenario.server], self.trees["sandbox"], self.own]
            before = await self.sandbox.calls(scenario.vendor)
            cpu_before = [tree.cpu_seconds() for tree in trees]
            psutil.cpu_percent(None)
            result = await self.post(scenario, concurrency,
                                     config.level_requests(scenario, concurrency))
            machine_cpu = psutil.cpu_percent(None)
            server_cpu, sandbox_cpu, loadgen_cpu = (
                (tree.cpu_seconds() - used) / max(result.elapsed, 1e-9)
                for tree, used in zip(trees, cpu_before, strict=True))
            diff = await self.sandbox.calls(scenario.vendor)
            diff.subtract(before)
            done = max(1, result.requests)
            routes = {route: count / done for route, count in sorted(diff.items()) if count}
            level = Level(
                scenario.name, concurrency, result.requests, result.errors, result.elapsed,
                result.throughput, result.percentile(50), result.percentile(95),
                result.percentile(99), routes, sum(routes.values()), server_cpu, sandbox_cpu,
                loadgen_cpu, machine_cpu, result.error_samples)
            self.results.levels.append(level)
            if scenario.name not in self.results.k:
                self.results.k[scenario.name] = observed_k(scenario, routes)
            self.say(f"  c={concurrency:<4} {level.requests:>6} req {level.throughput:9.1f} req/s "
                     f"p50 {level.p50 * 1000:8.1f} ms  p95 {level.p95 * 1000:8.1f} ms  "
                     f"p99 {level.p99 * 1000:8.1f} ms  errors {level.errors}  "
                     f"calls/action {level.calls:.2f}  CPU server {server_cpu:.0%} "
                     f"({level.server_cpu_ms:.2f} ms/req) "
                     f"simulators {sandbox_cpu:.0%} load {loadgen_cpu:.0%} "
                     f"machine {machine_cpu:.0f}%"
                     + (f"  ({level.error_samples[0]})" if level.error_samples else ""))

    async def memory_run(self, vendors: list[Scenario], rss_at_start: float) -> None:
        """Every vendor action in turn, at the target concurrency, RSS sampled per chunk."""
        config = self.config
        assert self.sandbox is not None
        tree = self.trees[PRODUCT]
        templates = [(s, s.template(self.context)) for s in vendors]
        url = self.servers[PRODUCT].url + "/webhook"
        memory = Memory(config.memory_requests, rss_at_start, tree.rss_bytes() / MIB)
        self.say(f"\nMemory run: {config.memory_requests} requests over "
                 f"{', '.join(s.name for s in vendors)}, RSS {memory.before:.1f} MiB")

        def make(index: int) -> tuple[bytes, str | None]:
            scenario, template = templates[index % len(templates)]
            return template.body(index, f"bench-memory-{scenario.name}"), \
                scenario.expected_response

        done = 0
        while done < config.memory_requests:
            for scenario in vendors:
                if scenario.reset_simulator and scenario.vendor:
                    await self.sandbox.reset(scenario.vendor)
            chunk = min(config.memory_chunk, config.memory_requests - done)
            result = await loadgen.drive(url, make, concurrency=config.target_concurrency,
                                         max_requests=chunk, max_seconds=float("inf"),
                                         first_index=done, timeout=config.timeout)
            done += result.requests
            memory.errors += result.errors
            memory.samples.append((done, tree.rss_bytes() / MIB))
            self.say(f"  {done:>7} requests  RSS {memory.samples[-1][1]:.1f} MiB  "
                     f"{result.throughput:.0f} req/s  errors {memory.errors}")
        self.results.memory = memory


def observed_k(scenario: Scenario, routes: dict[str, float]) -> dict[str, Any]:
    """k as the counters show it at the first level: the stages whose routes were called."""
    seen = {route: rate for route, rate in routes.items() if rate >= 0.5}
    stages = {route_stage(scenario, route) for route in seen}
    unexpected = sorted(route for route in seen if route_stage(scenario, route) is None)
    k = len(stages - {None}) + len(unexpected)
    return {"k": k, "declared_k": scenario.k, "calls": sum(routes.values()),
            "declared_calls": scenario.calls, "routes": seen, "unexpected": unexpected}


def run(config: Config) -> tuple[Results, Path]:
    """Run the benchmark and write its report; return the results and the report folder."""
    from bench import report

    folder = config.results_dir / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(Runner(config, folder / "logs").run())
    report.write(results, folder)
    return results, folder

"""The benchmark run: start the servers, warm up, measure every scenario and level.

For each scenario and concurrency level it records throughput, latency percentiles, errors,
the vendor calls per action (the simulator's counters before and after the level) and the
CPU the action server used. After each vendor action's levels the no-op action runs with
that action's payload, so the CPU of parsing the same body can be subtracted: what remains,
divided by the vendor calls, is the server's CPU per vendor call. A memory run mixes every
vendor action for `memory_requests` requests and samples the action server's RSS as it goes.
Then the four submitting actions run with exactly-once submissions on and off
(`bench.idempotency`). Finally the scaling run starts the product's action server with 1, 2,
4 ... Sanic workers in turn and drives one action at each scaling level.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench import loadgen, processes
from bench.idempotency import STORES, IdempotencyLevel, Section
from bench.scenarios import (
    CUSTOMERS,
    NAIVE,
    NOOP_ACTION,
    PRODUCT,
    SCENARIOS,
    Scenario,
    prepare,
    route_stage,
)

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024


def recommended_workers() -> int:
    """ACTION_SERVER_SANIC_WORKERS as the README recommends it: one per core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


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
    #: The level below saturation where the median must stay within k x L + 5 ms.
    p50_concurrency: int = 16
    #: Sanic worker processes of the product's action server (the baseline keeps one): one
    #: per core, at most 4, as the README recommends.
    workers: int = field(default_factory=lambda: recommended_workers())
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    results_dir: Path = RESULTS
    timeout: float = 600.0
    #: Start conversation i of c at i/c x (k x L), so they do not run in lockstep.
    stagger: bool = True
    #: Requests of the no-op with each vendor action's payload (0: not measured).
    cpu_baseline_requests: int = 2000
    #: Worker counts and levels of the scaling run (no workers: no scaling run).
    scaling_workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    scaling_concurrency: list[int] = field(default_factory=lambda: [64, 256])
    scaling_scenario: str = "benti"
    #: The exactly-once section: alternating on/off rounds of this many seconds per mode, at
    #: these levels, on these stores (0 rounds or no level: not measured).
    idempotency_rounds: int = 3
    idempotency_seconds: float = 2.0
    idempotency_concurrency: list[int] = field(default_factory=lambda: [64, 16])
    idempotency_stores: list[str] = field(default_factory=lambda: list(STORES))

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
class ScalingLevel:
    """One worker count at one concurrency level of the scaling run."""

    workers: int
    concurrency: int
    requests: int
    errors: int
    throughput: float
    p50: float
    p99: float
    #: CPU of the action server (all its workers), in cores; the whole machine in percent.
    server_cpu: float
    machine_cpu: float


@dataclass
class Memory:
    """Action server RSS (MiB): at start, then after each chunk of the memory run."""

    requests: int
    at_start: float
    before: float
    samples: list[tuple[int, float]] = field(default_factory=list)
    errors: int = 0
    #: The scenarios the run mixed.
    scenarios: list[str] = field(default_factory=list)

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
    #: Server CPU ms per request of the no-op given each vendor action's payload.
    noop_cpu_ms: dict[str, float] = field(default_factory=dict)
    scaling: list[ScalingLevel] = field(default_factory=list)
    #: `uptime` load averages (1, 5, 15 min) before and after the run.
    load_before: tuple[float, ...] = ()
    load_after: tuple[float, ...] = ()
    #: The submitting actions with exactly-once submissions on and off.
    idempotency: list[IdempotencyLevel] = field(default_factory=list)
    idempotency_notes: list[str] = field(default_factory=list)
    #: Per SQLite store: submission records in each server's file, and requests sent.
    idempotency_records: list[dict[str, Any]] = field(default_factory=list)

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
            vendors = [s for s in chosen if s.vendor_action]
            if config.memory_requests > 0 and vendors:
                await self.memory_run(vendors, rss_at_start)
            for name in list(self.servers):  # the next runs need the cores
                self.servers.pop(name).stop()
            await Section(self, sandbox.url).run()
            if config.scaling_workers and config.scaling_concurrency:
                await self.scaling_run(SCENARIOS[config.scaling_scenario], sandbox.url)
        finally:
            for child in reversed(children):
                child.stop()
        return self.results

    def stagger(self, scenario: Scenario) -> float:
        """Seconds over which conversations start: one action's duration, k x L."""
        return scenario.k * self.config.latency_ms / 1000 if self.config.stagger else 0.0

    async def post(self, scenario: Scenario, concurrency: int, requests: int, *,
                   as_noop: bool = False, url: str | None = None,
                   connection_per_call: bool = False) -> loadgen.LoadResult:
        """Drive `scenario`; `as_noop` sends its payload to the no-op action instead."""
        template = scenario.template(self.context)
        if as_noop:
            template = template.for_action(NOOP_ACTION)
        start = self.next_index[scenario.name]
        self.next_index[scenario.name] += requests
        url = url or self.servers[scenario.server].url + "/webhook"
        expected = None if as_noop else scenario.expected_response

        def make(index: int) -> tuple[bytes, str | None]:
            return template.body(index, f"bench-{scenario.name}"), expected

        return await loadgen.drive(url, make, concurrency=concurrency, max_requests=requests,
                                   max_seconds=self.config.duration, first_index=start,
                                   timeout=self.config.timeout,
                                   stagger=0.0 if as_noop else self.stagger(scenario),
                                   connection_per_call=connection_per_call)

    async def noop_baseline(self, scenario: Scenario) -> None:
        """Server CPU per request of the no-op given `scenario`'s payload (same parsing)."""
        config = self.config
        tree = self.trees[scenario.server]
        before = tree.cpu_seconds()
        result = await self.post(scenario, config.target_concurrency,
                                 config.cpu_baseline_requests, as_noop=True)
        used = tree.cpu_seconds() - before
        self.results.noop_cpu_ms[scenario.name] = used / max(1, result.requests) * 1000
        self.say(f"  no-op with this payload: {result.requests} req, "
                 f"{self.results.noop_cpu_ms[scenario.name]:.2f} ms CPU/req, "
                 f"errors {result.errors}")

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
        if scenario.server == PRODUCT and scenario.vendor and config.cpu_baseline_requests:
            await self.noop_baseline(scenario)

    async def scaling_run(self, scenario: Scenario, sandbox_url: str) -> None:
        """The product's action server with each worker count in turn, at each level; every
        call on its own connection, as Rasa 3.6 sends them (kept-alive connections all go
        to the worker that accepted them, nearly all to one at 64 conversations)."""
        config = self.config
        assert self.sandbox is not None
        self.say(f"\nScaling run: {scenario.title} with "
                 f"{', '.join(map(str, config.scaling_workers))} worker(s)")
        for workers in config.scaling_workers:
            child = await processes.start_action_server(
                f"action-server-{workers}-workers", "bench.actions", sandbox_env(sandbox_url),
                self.log_dir, workers=workers)
            try:
                tree = processes.ProcessTree(child.popen.pid)
                url = child.url + "/webhook"
                # Every worker fetches its own token and fills its own caches.
                warm = await self.post(scenario, 8 * workers, max(config.warmup, CUSTOMERS) *
                                       workers, url=url, connection_per_call=True)
                for concurrency in config.scaling_concurrency:
                    if scenario.reset_simulator and scenario.vendor:
                        await self.sandbox.reset(scenario.vendor)
                    used = tree.cpu_seconds()
                    psutil.cpu_percent(None)
                    result = await self.post(scenario, concurrency, config.requests, url=url,
                                             connection_per_call=True)
                    machine = psutil.cpu_percent(None)
                    cores = (tree.cpu_seconds() - used) / max(result.elapsed, 1e-9)
                    level = ScalingLevel(workers, concurrency, result.requests,
                                         result.errors + warm.errors, result.throughput,
                                         result.percentile(50), result.percentile(99), cores,
                                         machine)
                    self.results.scaling.append(level)
                    self.say(f"  workers {workers} c={concurrency:<4} {level.requests:>6} req "
                             f"{level.throughput:9.1f} req/s p50 {level.p50 * 1000:8.1f} ms "
                             f"p99 {level.p99 * 1000:8.1f} ms errors {level.errors} "
                             f"server {cores:.2f} cores, machine {machine:.0f}%")
            finally:
                child.stop()

    async def memory_run(self, vendors: list[Scenario], rss_at_start: float) -> None:
        """Every vendor action in turn, at the target concurrency, RSS sampled per chunk."""
        config = self.config
        assert self.sandbox is not None
        tree = self.trees[PRODUCT]
        templates = [(s, s.template(self.context)) for s in vendors]
        url = self.servers[PRODUCT].url + "/webhook"
        memory = Memory(config.memory_requests, rss_at_start, tree.rss_bytes() / MIB,
                        scenarios=[s.name for s in vendors])
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


def run_on_fast_loop(main: Coroutine[Any, Any, Results]) -> Results:
    """Run on uvloop where installed (it comes with Sanic): the load generator shares the
    machine with the servers it measures, and its delays are in every latency it reports."""
    try:
        from uvloop import run as run_on_uvloop  # uvloop 0.18 and newer
    except ImportError:
        return asyncio.run(main)
    return run_on_uvloop(main)


def run(config: Config) -> tuple[Results, Path]:
    """Run the benchmark and write its report; return the results and the report folder."""
    from bench import report

    folder = config.results_dir / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    results = run_on_fast_loop(Runner(config, folder / "logs").run())
    results.load_before, results.load_after = load_before, os.getloadavg()
    report.write(results, folder)
    return results, folder

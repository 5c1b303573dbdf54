"""The performance targets, each with its measured value, "met" or "missed", and why if missed.

With k sequential vendor calls of latency L, a conversation cannot run its action faster
than k x L, so `c` concurrent conversations cannot exceed c / (k x L) actions per second:
the physical bound. At the target concurrency an action should reach 90% of it, make exactly
its essential vendor calls (auth and discovery amortised, stable lookups cached), and spend
at most 0.35 ms of server CPU per vendor call beyond what the no-op spends on the same
payload; the product's Benti action should be at least 120x the naive baseline. Below
saturation (16 conversations) the median latency must stay within k x L + 5 ms: no hidden
queueing. Over the memory run the action server's RSS must stay flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.idempotency import KEEP_SHARE
from bench.run import Level, Results
from bench.scenarios import NAIVE, SCENARIOS, Scenario

THROUGHPUT_SHARE = 0.9
P50_SLACK = 0.005
#: Server CPU per vendor call (ms): the action's CPU per request minus the no-op's with the
#: same payload, divided by the action's vendor calls.
CPU_PER_CALL_MS = 0.35
NAIVE_FACTOR = 120.0
CALLS_TOLERANCE = 0.02
#: RSS may grow by this share of its value at the start of the memory run.
MEMORY_GROWTH = 0.05
BUSY_CORE = 0.85
BUSY_MACHINE = 90.0


@dataclass
class Target:
    scenario: str
    name: str
    goal: str
    measured: str
    met: bool
    note: str = ""

    @property
    def verdict(self) -> str:
        return "met" if self.met else "missed"


def bound(scenario: Scenario, concurrency: int, latency: float) -> float | None:
    """c / (k x L), or None when the action has no vendor call or there is no latency."""
    if scenario.k == 0 or latency <= 0:
        return None
    return concurrency / (scenario.k * latency)


def why_slow(level: Level, scenario: Scenario, results: Results) -> str:
    """The likely causes of a throughput or latency miss, from what was measured."""
    reasons = []
    if level.errors:
        reasons.append(f"{level.errors} requests failed ({level.error_samples[0]})")
    if level.calls > scenario.calls + CALLS_TOLERANCE:
        reasons.append(f"{level.calls:.2f} vendor calls per action instead of {scenario.calls}")
    noop = results.level("noop", level.concurrency)
    cpu_ms = level.server_cpu_ms
    ceiling = 1000 / cpu_ms if cpu_ms > 0 else math.inf
    limit = bound(scenario, level.concurrency, results.config.latency_ms / 1000)
    workers = results.config.workers
    if limit is not None and ceiling * workers < THROUGHPUT_SHARE * limit:
        noop_part = (f" (the no-op {noop.server_cpu_ms:.2f} ms; the rest is the action and its "
                     "vendor client: HTTP client requests, JSON and models, logging)"
                     if noop is not None else "")
        reasons.append(
            f"the action server spends {cpu_ms:.2f} ms of CPU per request{noop_part}, so "
            f"at that cost {workers} worker process(es) can serve at most about "
            f"{ceiling * workers:.0f} req/s, even with "
            f"a core each, below {THROUGHPUT_SHARE:.0%} of the bound: more worker processes "
            "(ACTION_SERVER_SANIC_WORKERS) on more cores, or less CPU per request, fix it")
    if level.machine_cpu >= BUSY_MACHINE:
        reasons.append(
            f"the machine's {results.cpu_count} cores were {level.machine_cpu:.0f}% busy (load "
            "generator, simulators, action server and anything else running), so the action "
            f"server got only {level.server_cpu:.0%} of a core: run the benchmark on an "
            "otherwise idle machine with more cores")
    elif level.server_cpu >= BUSY_CORE:
        reasons.append(f"the action server used {level.server_cpu:.0%} of its core: it is "
                       "CPU-bound; more worker processes on more cores fix it")
    if not reasons:
        reasons.append(
            f"the action server used {level.server_cpu:.0%} of a core and the machine "
            f"{level.machine_cpu:.0f}%: the time goes to event-loop scheduling and queueing "
            "between requests; profile the action server at this load")
    return "; ".join(reasons)


def cpu_per_call(results: Results, name: str, level: Level | None = None) -> float | None:
    """Server CPU ms per vendor call of scenario `name` at the target concurrency."""
    scenario = SCENARIOS[name]
    level = level or results.level(name, results.config.target_concurrency)
    noop = results.noop_cpu_ms.get(name)
    if level is None or noop is None or scenario.calls == 0:
        return None
    return (level.server_cpu_ms - noop) / scenario.calls


def evaluate(results: Results) -> list[Target]:
    config = results.config
    latency = config.latency_ms / 1000
    c = config.target_concurrency
    targets: list[Target] = []
    for name in config.scenarios:
        scenario = SCENARIOS[name]
        level = results.level(name, c)
        if not scenario.vendor_action or level is None:
            continue
        limit = bound(scenario, c, latency)
        if limit is not None:
            share = level.throughput / limit
            met = share >= THROUGHPUT_SHARE
            targets.append(Target(
                name, f"throughput at {c}",
                f">= {THROUGHPUT_SHARE:.0%} of {c}/(k x L) = {limit:.0f} req/s (k={scenario.k})",
                f"{level.throughput:.0f} req/s ({share:.0%})", met,
                "" if met else why_slow(level, scenario, results)))
            below = results.level(name, config.p50_concurrency)
            if below is not None:
                p50_limit = scenario.k * latency + P50_SLACK
                met = below.p50 <= p50_limit
                targets.append(Target(
                    name, f"p50 at {config.p50_concurrency}",
                    f"<= k x L + {P50_SLACK * 1000:.0f} ms = {p50_limit * 1000:.0f} ms",
                    f"{below.p50 * 1000:.1f} ms", met,
                    "" if met else why_slow(below, scenario, results)))
        per_call = cpu_per_call(results, name, level)
        if per_call is not None:
            met = per_call <= CPU_PER_CALL_MS
            targets.append(Target(
                name, f"server CPU per vendor call at {c}", f"<= {CPU_PER_CALL_MS} ms",
                f"{per_call:.2f} ms ({level.server_cpu_ms:.2f} - no-op "
                f"{results.noop_cpu_ms[name]:.2f} ms per request, / {scenario.calls})", met,
                "" if met else "profile the action server (py-spy) at this load"))
        met = abs(level.calls - scenario.calls) <= CALLS_TOLERANCE
        extra = {r: v for r, v in level.routes.items()
                 if v >= 0.005 and not any(r.endswith(e.partition(" ")[2])
                                           for stage in scenario.stages for e in stage)}
        note = ""
        if not met:
            note = ("extra calls per action: " + ", ".join(f"{r} {v:.2f}" for r, v in
                                                         extra.items())
                    if extra else "fewer calls than the declared flow: "
                    + ", ".join(f"{r} {v:.2f}" for r, v in level.routes.items()))
            note += ("; keep tokens and discovered URLs per process and cache stable lookups"
                     if extra else "; check that every request really reaches the vendor")
        targets.append(Target(
            name, f"vendor calls per action at {c}",
            f"= {scenario.calls} (k={scenario.k} sequential)", f"{level.calls:.3f}", met, note))
        twins = [s for s in SCENARIOS.values() if s.twin == name and s.name in config.scenarios]
        for twin in twins:
            naive = results.level(twin.name, c)
            if naive is None or naive.throughput <= 0:
                continue
            ratio = level.throughput / naive.throughput
            met = ratio >= NAIVE_FACTOR
            targets.append(Target(
                name, f"vs {twin.title} at {c}", f">= {NAIVE_FACTOR:.0f}x", f"{ratio:.0f}x", met,
                "" if met else why_slow(level, scenario, results)))
    for lv in results.idempotency:
        if lv.concurrency != c:
            continue
        cost = lv.cpu_ms_on - lv.cpu_ms_off
        targets.append(Target(
            lv.scenario, f"exactly-once on/off at {c} ({lv.store})",
            f">= {KEEP_SHARE:.0%} of the throughput without it",
            f"{lv.ratio:.0%} ({lv.throughput_on:.0f} / {lv.throughput_off:.0f} req/s)", lv.met,
            "" if lv.met else (
                f"{lv.errors_on} / {lv.errors_off} requests failed on / off"
                if lv.errors_on or lv.errors_off else
                f"exactly-once adds {cost:.2f} ms of action-server CPU per submission "
                f"({lv.cpu_ms_on:.2f} vs {lv.cpu_ms_off:.2f} ms) on {lv.store}: the claim "
                "(with the conversation's latest submission) and the outcome record; "
                "profile the on server")))
    memory = results.memory
    if memory is not None and memory.samples:
        growth = memory.after - memory.before
        met = growth <= MEMORY_GROWTH * memory.before
        targets.append(Target(
            "all vendors", f"memory over {memory.requests} requests",
            f"RSS growth <= {MEMORY_GROWTH:.0%} of {memory.before:.1f} MiB",
            f"{memory.before:.1f} -> {memory.after:.1f} MiB ({growth:+.1f} MiB)", met,
            "" if met else (
                f"RSS grew by {growth / max(1, memory.requests) * 1024 * 1024:.0f} bytes per "
                "request: something keeps per-conversation or per-request state in the action "
                "server (a dict keyed by conversation, an unbounded cache); bound it (LRU/TTL) "
                "or keep it in the tracker's slots")))
    return targets


def ratios(results: Results) -> list[tuple[str, float]]:
    """Each action's throughput over the no-op's, and the product's over the baseline's."""
    c = results.config.target_concurrency
    out: list[tuple[str, float]] = []
    noop = results.level("noop", c)
    for name in results.config.scenarios:
        level = results.level(name, c)
        if level is None or name == "noop":
            continue
        if noop is not None and noop.throughput > 0:
            out.append((f"{SCENARIOS[name].title} / no-op at {c}",
                        level.throughput / noop.throughput))
        twin = SCENARIOS[name].twin
        if twin is None or SCENARIOS[name].server != NAIVE or level.throughput <= 0:
            continue
        product = results.level(twin, c)
        if product is not None:
            out.append((f"product {SCENARIOS[twin].title} / {SCENARIOS[name].title} at {c}",
                        product.throughput / level.throughput))
    return out

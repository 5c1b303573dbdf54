"""The cost of exactly-once submissions: the four submitting actions with and without it.

Two action servers run side by side on the simulators, with the same actions, workers and
state store: "on" is the normal one (`bench.actions`: every submission claimed in the state
store, its outcome recorded, the outbox behind it), "off" serves `bench.no_idempotency`,
where `file_once` only calls the vendor. Each action is driven at each level in rounds that
alternate between the two servers (on, off, then off, on, ...), so a machine that gets
busier or quieter during the run affects both alike; a mode's throughput is its requests
over its time, summed over the rounds.

Every request is its own conversation and its content names that conversation (the ticket
title, the errand subject, the survey's comment, the loop's description), so each one is a
new submission: "on" files each at the vendor, as "off" does, instead of answering a repeat
from its record. The vendor calls per action of both are counted to show it.

The state store is the production default, the SQLite file in the server's working folder,
and Redis too where a `redis-server` is installed: each store gets its own pair of servers.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bench import loadgen, processes
from bench.payloads import CONVERSATION, BodyTemplate, webhook_payload
from bench.scenarios import CUSTOMERS, FILE_ONCE_PROBE, TURNS, customer_slots, prepare, slots
from rasa_service_desk.outbox.records import RECORDS

if TYPE_CHECKING:
    from bench.run import Runner

ON, OFF = "on", "off"
SQLITE, REDIS = "sqlite", "redis"
STORES = (SQLITE, REDIS)
#: The production default, relative to the server's working folder.
SQLITE_FILE = "service_desk_state.sqlite3"
SQLITE_URL = f"sqlite:///{SQLITE_FILE}"
#: "on" must keep at least this share of "off"'s throughput.
KEEP_SHARE = 0.9


@dataclass(frozen=True)
class Submitting:
    """One submitting action, with a payload whose content is new in every conversation."""

    name: str
    title: str
    action: str
    vendor: str
    expected_response: str
    payload: Callable[[dict[str, Any]], dict[str, Any]]
    #: Sequential vendor calls (conversations start spread over k x L).
    k: int = 1

    def template(self, context: dict[str, Any]) -> BodyTemplate:
        return BodyTemplate(self.payload(context), CUSTOMERS)


def benti_ticket(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload(
        "action_benti_create_ticket",
        slots(**customer_slots(), benti_ticket_title=f"Cannot log in ({CONVERSATION})",
              benti_ticket_description=f"Since this morning the login page says my password "
                                       f"is wrong, although I reset it twice. {CONVERSATION}"),
        TURNS, "Please open a ticket", intent="open_ticket")


def cention_errand(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload(
        "action_cention_create_errand",
        slots(**customer_slots(), cention_errand_subject=f"Order {CONVERSATION} never arrived"),
        TURNS, "Please pass me to an agent")


def loop_survey(context: dict[str, Any]) -> dict[str, Any]:
    answers = {key: f"{value} ({CONVERSATION})" if isinstance(value, str) else value
               for key, value in context["loop_answers"].items()}
    return webhook_payload(
        "action_loop_submit_survey",
        slots(loop_survey=context["loop_survey"], loop_answers=answers,
              loop_question_order=context["loop_question_order"]),
        [*TURNS, ("Yes, happy to answer a survey", "Thanks! A few quick questions.")],
        "Friendly and quick, thank you.")


def loop_feedback(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload(
        "action_loop_create_loop",
        slots(**customer_slots(), loop_title="Long queue",
              loop_description=f"The queue at the counter was far too long ({CONVERSATION})."),
        TURNS, "The queue at the counter was far too long")


SUBMITTING: dict[str, Submitting] = {s.name: s for s in [
    Submitting("benti_ticket", "Benti ticket", "action_benti_create_ticket", "benti",
               "utter_benti_ticket_created", benti_ticket, k=2),
    Submitting("cention_errand", "Cention errand", "action_cention_create_errand", "cention",
               "utter_cention_errand_created", cention_errand),
    Submitting("loop_survey", "Loop survey submission", "action_loop_submit_survey", "loop",
               "utter_loop_survey_thanks", loop_survey),
    Submitting("loop_create", "Loop feedback (new loop)", "action_loop_create_loop", "loop",
               "utter_loop_created", loop_feedback),
]}


@dataclass
class ModeTotals:
    """One mode's rounds of one action at one level, summed."""

    requests: int = 0
    elapsed: float = 0.0
    errors: int = 0
    calls: int = 0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    round_throughputs: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class IdempotencyLevel:
    """One action at one level on one store, with idempotency on and off."""

    store: str
    scenario: str
    concurrency: int
    rounds: int
    requests_on: int
    requests_off: int
    throughput_on: float
    throughput_off: float
    #: throughput on / off (1.0: exactly-once costs nothing visible).
    ratio: float
    #: The same ratio per round (on / off of the same round): its spread shows the noise.
    round_ratios: list[float]
    p50_on: float
    p50_off: float
    errors_on: int
    errors_off: int
    #: Vendor calls per action, from the simulator's counters.
    calls_on: float
    calls_off: float
    #: The action server's CPU per request (ms).
    cpu_ms_on: float
    cpu_ms_off: float
    error_samples: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.ratio >= KEEP_SHARE and not self.errors_on and not self.errors_off


def summarise(store: str, name: str, concurrency: int, on: ModeTotals,
              off: ModeTotals) -> IdempotencyLevel:
    def p50(latencies: list[float]) -> float:
        return statistics.median(latencies) if latencies else math.nan

    return IdempotencyLevel(
        store, name, concurrency, len(on.round_throughputs), on.requests, off.requests,
        on.throughput, off.throughput,
        on.throughput / off.throughput if off.throughput > 0 else math.nan,
        [a / b if b > 0 else math.nan
         for a, b in zip(on.round_throughputs, off.round_throughputs, strict=True)],
        p50(on.latencies), p50(off.latencies), on.errors, off.errors,
        on.calls / max(1, on.requests), off.calls / max(1, off.requests),
        on.cpu_seconds / max(1, on.requests) * 1000,
        off.cpu_seconds / max(1, off.requests) * 1000,
        (on.error_samples + off.error_samples)[:5])


def submission_records(path: Path) -> int:
    """The submission records (namespace `submissions`) in a server's SQLite file."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as connection:
        row = connection.execute("SELECT count(*) FROM entries WHERE namespace = ?",
                                 (RECORDS,)).fetchone()
    return int(row[0])


#: The `file_once` each server's workers must run.
FILE_ONCE = {ON: "IntegrationAction.file_once", OFF: "send_directly"}


async def check_file_once(servers: dict[str, processes.Child], workers: int) -> None:
    """Ask each server, over new connections (so every worker is likely to answer), which
    `file_once` it runs; raise if a worker of "on" lacks idempotency or one of "off" has it."""
    body = BodyTemplate(webhook_payload(FILE_ONCE_PROBE, slots(), TURNS, "hello"), 1)
    for mode, child in servers.items():
        seen: Counter[str] = Counter()
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for number in range(8 * max(1, workers)):
                async with session.post(child.url + "/webhook",
                                        data=body.body(number, f"bench-probe-{mode}"),
                                        headers=loadgen.HEADERS) as resp:
                    resp.raise_for_status()
                    reply = await resp.json()
                seen.update(message.get("text") for message in reply.get("responses", []))
        if set(seen) != {FILE_ONCE[mode]}:
            raise RuntimeError(f"the {mode} server's workers run {dict(seen)}, not only "
                               f"{FILE_ONCE[mode]}: the measurement would be meaningless")


def round_order(number: int) -> tuple[str, str]:
    """On then off in even rounds, off then on in odd ones: a drift cancels out."""
    return (ON, OFF) if number % 2 == 0 else (OFF, ON)


class Section:
    """The runner's servers, simulators and settings, used for this section."""

    def __init__(self, runner: Runner, sandbox_url: str) -> None:
        self.runner = runner
        self.config = runner.config
        self.sandbox_url = sandbox_url
        #: Requests answered per (store, mode), warm-up included.
        self.sent: Counter[tuple[str, str]] = Counter()

    async def run(self) -> None:
        config = self.config
        if config.idempotency_rounds <= 0 or not config.idempotency_concurrency:
            return
        runner = self.runner
        if "loop_survey" not in runner.context:
            runner.context.update(await prepare(self.sandbox_url, ["loop"]))
        runner.say(f"\nExactly-once submissions, on and off: {len(SUBMITTING)} actions at "
                   f"{', '.join(map(str, config.idempotency_concurrency))} conversations, "
                   f"{config.idempotency_rounds} alternating rounds of "
                   f"{config.idempotency_seconds:g} s per mode")
        for store in config.idempotency_stores:
            redis: processes.Redis | None = None
            if store == REDIS:
                if not processes.redis_available():
                    note = "Redis: skipped, redis-server is not installed (`make redis`)"
                    runner.results.idempotency_notes.append(note)
                    runner.say(f"  {note}")
                    continue
                redis = await processes.start_redis(runner.log_dir)
                state_url = redis.url
            else:
                state_url = SQLITE_URL
            try:
                await self.measure_store(store, state_url)
            finally:
                if redis is not None:
                    redis.stop()

    async def measure_store(self, store: str, state_url: str) -> None:
        from bench.run import sandbox_env

        config, runner = self.config, self.runner
        env = {**sandbox_env(self.sandbox_url), "STATE_URL": state_url}
        servers: dict[str, processes.Child] = {}
        try:
            for mode, package in ((ON, "bench.actions"), (OFF, "bench.no_idempotency")):
                servers[mode] = await processes.start_action_server(
                    f"action-server-idempotency-{mode}-{store}", package, env, runner.log_dir,
                    workers=config.workers)
            trees = {mode: processes.ProcessTree(child.popen.pid)
                     for mode, child in servers.items()}
            runner.say(f"  store {store} ({state_url}): on {servers[ON].url}, "
                       f"off {servers[OFF].url}")
            await check_file_once(servers, config.workers)
            for submitting in SUBMITTING.values():
                for mode, child in servers.items():
                    warm = await self.drive(submitting, mode, store, child.url,
                                            min(8, CUSTOMERS), CUSTOMERS)
                    if warm.errors:
                        runner.say(f"  warm-up {submitting.title} ({mode}): {warm.errors} "
                                   f"errors ({warm.error_samples[0]})")
            for concurrency in config.idempotency_concurrency:
                for submitting in SUBMITTING.values():
                    totals = {ON: ModeTotals(), OFF: ModeTotals()}
                    for number in range(config.idempotency_rounds):
                        for mode in round_order(number):
                            await self.one_round(submitting, mode, store, servers[mode].url,
                                                 trees[mode], concurrency, totals[mode])
                    level = summarise(store, submitting.name, concurrency, totals[ON],
                                      totals[OFF])
                    runner.results.idempotency.append(level)
                    runner.say(
                        f"  {store:<6} {submitting.title:<26} c={concurrency:<4} "
                        f"on {level.throughput_on:8.1f} req/s  off {level.throughput_off:8.1f} "
                        f"req/s  on/off {level.ratio:.3f} (rounds "
                        f"{', '.join(f'{r:.2f}' for r in level.round_ratios)})  "
                        f"CPU ms/req {level.cpu_ms_on:.2f} / {level.cpu_ms_off:.2f}  "
                        f"calls/action {level.calls_on:.2f} / {level.calls_off:.2f}  "
                        f"errors {level.errors_on} / {level.errors_off}"
                        + (f"  ({level.error_samples[0]})" if level.error_samples else ""))
            if store == SQLITE:
                records = {mode: submission_records(child.cwd / SQLITE_FILE)
                           for mode, child in servers.items()}
                sent = {mode: self.sent[(store, mode)] for mode in servers}
                runner.results.idempotency_records.append(
                    {"store": store, "records": records, "requests": sent})
                runner.say(f"  submission records in each server's SQLite file: on "
                           f"{records[ON]} for {sent[ON]} requests, off {records[OFF]} for "
                           f"{sent[OFF]}")
        finally:
            for child in servers.values():
                child.stop()

    async def one_round(self, submitting: Submitting, mode: str, store: str, url: str,
                        tree: processes.ProcessTree, concurrency: int,
                        totals: ModeTotals) -> None:
        sandbox = self.runner.sandbox
        assert sandbox is not None
        before = await sandbox.calls(submitting.vendor)
        cpu_before = tree.cpu_seconds()
        result = await self.drive(submitting, mode, store, url, concurrency,
                                  self.config.requests, self.config.idempotency_seconds,
                                  stagger=True)
        totals.cpu_seconds += tree.cpu_seconds() - cpu_before
        diff = await sandbox.calls(submitting.vendor)
        diff.subtract(before)
        totals.calls += sum(diff.values())
        totals.requests += result.requests
        totals.elapsed += result.elapsed
        totals.errors += result.errors
        totals.latencies += result.latencies
        totals.round_throughputs.append(result.throughput)
        for sample in result.error_samples:
            if len(totals.error_samples) < 5 and sample not in totals.error_samples:
                totals.error_samples.append(sample)

    async def drive(self, submitting: Submitting, mode: str, store: str, url: str,
                    concurrency: int, requests: int, seconds: float = math.inf, *,
                    stagger: bool = False) -> loadgen.LoadResult:
        """`requests` new submissions (or `seconds`' worth) to the `mode` server at `url`."""
        runner = self.runner
        template = submitting.template(runner.context)
        counter = f"idempotency-{store}-{mode}-{submitting.name}"
        start = runner.next_index[counter]
        runner.next_index[counter] += requests
        prefix = f"bench-{counter}"

        def make(index: int) -> tuple[bytes, str | None]:
            return template.body(index, prefix), submitting.expected_response

        spread = (submitting.k * self.config.latency_ms / 1000
                  if stagger and self.config.stagger else 0.0)
        result = await loadgen.drive(url + "/webhook", make, concurrency=concurrency,
                                     max_requests=requests, max_seconds=seconds,
                                     first_index=start, timeout=self.config.timeout,
                                     stagger=spread)
        self.sent[(store, mode)] += result.requests
        return result

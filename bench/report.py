"""The report: a Markdown table, a PNG plot and the raw numbers as JSON.

`write()` puts `report.md`, `throughput-latency.png` and `results.json` in the run's folder
and prints the report, ratios and targets included.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.idempotency import KEEP_SHARE, SQLITE_URL, SUBMITTING
from bench.run import Results
from bench.scenarios import SCENARIOS
from bench.targets import CPU_PER_CALL_MS, Target, cpu_per_call, evaluate, ratios

PLOT = "throughput-latency.png"


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def short_route(route: str) -> str:
    method, _, path = route.partition(" ")
    return f"{method} .../{'/'.join(path.rstrip('/').split('/')[-2:])}"


def level_table(results: Results) -> list[str]:
    lines = [
        "| action | conc. | requests | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| vendor calls/action | CPU server / sim. / load / machine |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for level in results.levels:
        routes = ", ".join(f"{short_route(r)} {v:.2f}" for r, v in level.routes.items()
                           if v >= 0.005)
        calls = f"{level.calls:.2f}" + (f" ({routes})" if routes else "")
        lines.append(
            f"| {SCENARIOS[level.scenario].title} | {level.concurrency} | {level.requests} "
            f"| {level.throughput:.1f} | {ms(level.p50)} | {ms(level.p95)} | {ms(level.p99)} "
            f"| {level.errors} | {calls} | {level.server_cpu:.0%} / {level.sandbox_cpu:.0%} / "
            f"{level.loadgen_cpu:.0%} / {level.machine_cpu:.0f}% |")
    return lines


def target_table(targets: list[Target]) -> list[str]:
    lines = ["| action | target | goal | measured | result |", "|---|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t.scenario} | {t.name} | {t.goal} | {t.measured} | **{t.verdict}** |")
    grouped: dict[tuple[str, str], list[str]] = {}
    for t in targets:
        if not t.met and t.note:
            grouped.setdefault((t.scenario, t.note), []).append(t.name)
    notes = [f"- {scenario} ({', '.join(names)}): {note}"
             for (scenario, note), names in grouped.items()]
    return lines + (["", "Why missed:", *notes] if notes else [])


def cpu_table(results: Results) -> list[str]:
    """Per vendor action: server CPU per request, the no-op's on the same payload, per call."""
    c = results.config.target_concurrency
    # A run too short for the CPU clocks (they tick in 10 ms) can measure the reference at
    # zero or below: then no multiples are printed.
    references = [cpu_per_call(results, name) for name in results.config.scenarios
                  if SCENARIOS[name].reference]
    reference = next((value for value in references if value is not None and value > 0), None)
    lines = [f"| action | server CPU ms/request at {c} | no-op, same payload | vendor calls "
             f"| CPU ms per vendor call (target <= {CPU_PER_CALL_MS}) | x the minimal call |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in results.config.scenarios:
        level = results.level(name, c)
        per_call = cpu_per_call(results, name)
        if level is None or per_call is None:
            continue
        ratio = f"{per_call / reference:.2f}" if reference else "-"
        lines.append(f"| {SCENARIOS[name].title} | {level.server_cpu_ms:.2f} | "
                     f"{results.noop_cpu_ms[name]:.2f} | {SCENARIOS[name].calls} | "
                     f"{per_call:.2f} | {ratio} |")
    return lines if len(lines) > 2 else []


def scaling_table(results: Results) -> list[str]:
    """Throughput and p50 per worker count; efficiency = throughput per worker / 1 worker's."""
    if not results.scaling:
        return []
    one = {lv.concurrency: lv.throughput for lv in results.scaling if lv.workers == 1}
    lines = ["| workers | conc. | requests | req/s | p50 ms | p99 ms | errors | server cores "
             "| machine CPU | efficiency |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lv in results.scaling:
        base = one.get(lv.concurrency)
        efficiency = f"{lv.throughput / lv.workers / base:.0%}" if base else "-"
        lines.append(f"| {lv.workers} | {lv.concurrency} | {lv.requests} | {lv.throughput:.1f} "
                     f"| {ms(lv.p50)} | {ms(lv.p99)} | {lv.errors} | {lv.server_cpu:.2f} | "
                     f"{lv.machine_cpu:.0f}% | {efficiency} |")
    return lines


def idempotency_table(results: Results) -> list[str]:
    """Per store, action and level: req/s with exactly-once on and off, and their ratio."""
    if not results.idempotency:
        return []
    lines = ["| store | action | conc. | req/s on | req/s off | on/off | per round "
             "| p50 ms on / off | CPU ms/req on / off | vendor calls/action on / off "
             "| errors on / off | >= 90% of off |",
             "|---|---|---:|---:|---:|---:|---|---|---|---|---|---|"]
    for lv in results.idempotency:
        lines.append(
            f"| {lv.store} | {SUBMITTING[lv.scenario].title} | {lv.concurrency} "
            f"| {lv.throughput_on:.1f} | {lv.throughput_off:.1f} | {lv.ratio:.3f} "
            f"| {', '.join(f'{r:.2f}' for r in lv.round_ratios)} "
            f"| {ms(lv.p50_on)} / {ms(lv.p50_off)} | {lv.cpu_ms_on:.2f} / {lv.cpu_ms_off:.2f} "
            f"| {lv.calls_on:.2f} / {lv.calls_off:.2f} | {lv.errors_on} / {lv.errors_off} "
            f"| **{'met' if lv.met else 'missed'}** |")
    return lines


def idempotency_section(results: Results) -> list[str]:
    config = results.config
    table = idempotency_table(results)
    if not table and not results.idempotency_notes:
        return []
    return [
        "", "## Cost of exactly-once submissions", "",
        f"The four submitting actions, each request a new submission, on two action servers "
        f"with {config.workers} worker(s) each: on = the product (claim, record, outbox), "
        "off = `bench.no_idempotency` (the vendor call only). "
        f"{config.idempotency_rounds} rounds of {config.idempotency_seconds:g} s per mode, "
        "alternating (on, off, then off, on); req/s = requests / time over all rounds. "
        f"Store sqlite: `{SQLITE_URL}` in each server's working folder (the production "
        "default); redis: a local redis-server. Target: on >= "
        f"{KEEP_SHARE:.0%} of off, without errors.", "",
        *table, *(["", *[f"- {note}" for note in results.idempotency_notes]]
                  if results.idempotency_notes else []),
        *[f"\nSubmission records in the {r['store']} files (warm-up included): on "
          f"{r['records']['on']} for {r['requests']['on']} requests, off "
          f"{r['records']['off']} for {r['requests']['off']} requests."
          for r in results.idempotency_records],
    ]


def markdown(results: Results) -> str:
    config = results.config
    lines = [
        "# Action server benchmark",
        "",
        f"Run {results.started} on {results.cpu_count} CPU cores; upstream latency "
        f"L = {config.latency_ms:g} ms per vendor call; {config.workers} action-server "
        f"worker(s); levels {config.concurrency}, each stopping after {config.requests} "
        f"requests (the baseline: 2 x concurrency, at most {config.naive_requests} beyond "
        f"the concurrency) or {config.duration:g} s, whichever comes first. "
        "CPU: share of one core used by the action server, the simulators and the load "
        "generator, and of the whole machine. "
        + ("Conversations start staggered over k x L. " if config.stagger else "")
        + (f"Load average (1/5/15 min) {_load(results.load_before)} before the run, "
           f"{_load(results.load_after)} after." if results.load_before else ""),
    ]
    if results.levels:
        lines += ["", *level_table(results), "",
                  "k (sequential vendor calls after warm-up, from the counters at the first "
                  "level):", ""]
    for name, seen in results.k.items():
        if SCENARIOS[name].vendor:
            lines.append(f"- {SCENARIOS[name].title}: k = {seen['k']} (declared "
                         f"{seen['declared_k']}), {seen['calls']:.2f} calls per action "
                         f"(declared {seen['declared_calls']})"
                         + (f", unexpected: {', '.join(seen['unexpected'])}"
                            if seen["unexpected"] else ""))
    found = ratios(results)
    if found:
        lines += ["", "Ratios:", ""] + [f"- {label}: {value:.3g}" for label, value in found]
    cpu = cpu_table(results)
    if cpu:
        lines += ["", "Server CPU per vendor call (the action's CPU per request minus the "
                      "no-op's on the same payload, divided by its vendor calls). The minimal "
                      "call, where measured, is one bare aiohttp GET of the same simulator "
                      "from the same server (a session of its own, the integration's token, "
                      "the JSON decoded, nothing else): what a vendor call costs this process "
                      "at the least on this machine.", "", *cpu]
    scaling = scaling_table(results)
    if scaling:
        title = SCENARIOS[config.scaling_scenario].title
        lines += ["", f"## Scaling: {title} with 1 to {max(config.scaling_workers)} Sanic "
                      f"workers on {results.cpu_count} cores", "", *scaling, "",
                  "Efficiency: throughput per worker relative to one worker at the same "
                  "concurrency (100% = linear scaling). Each worker is a process with its "
                  "own event loop, vendor tokens, caches and connection pool. Every call "
                  "here opens its own connection, as Rasa 3.6 sends action calls (one "
                  "client session per call), so the kernel hands it to whichever worker "
                  "accepts first; the tables above keep one connection per conversation, "
                  "and kept-alive connections stay with the worker that accepted them."]
    lines += idempotency_section(results)
    memory = results.memory
    if memory is not None:
        lines += ["", f"Action server RSS: {memory.at_start:.1f} MiB at start, "
                      f"{memory.before:.1f} MiB before the memory run, {memory.after:.1f} MiB "
                      f"after its {memory.requests} requests ({memory.errors} errors); samples: "
                  + ", ".join(f"{n}: {rss:.1f}" for n, rss in memory.samples)]
    targets = evaluate(results)
    if targets:
        lines += ["", f"## Targets at {config.target_concurrency} concurrent conversations", "",
                  *target_table(targets)]
    lines += ["", f"![throughput and latency]({PLOT})", ""]
    return "\n".join(lines)


def _load(values: tuple[float, ...]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def plot(results: Results, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in results.config.scenarios:
        levels = [lv for lv in results.levels if lv.scenario == name]
        if not levels:
            continue
        xs = [lv.concurrency for lv in levels]
        title = SCENARIOS[name].title
        left.plot(xs, [lv.throughput for lv in levels], marker="o", label=title)
        right.plot(xs, [lv.p50 * 1000 for lv in levels], marker="o", label=f"{title} p50")
        right.plot(xs, [lv.p99 * 1000 for lv in levels], marker="x", linestyle=":",
                   color=right.lines[-1].get_color())
    for axis, label in ((left, "throughput (req/s)"), (right, "latency (ms), p50 — / p99 ···")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("concurrent conversations")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    if left.lines:
        left.legend(fontsize=8, loc="best")
    fig.suptitle(f"Action server, upstream latency {results.config.latency_ms:g} ms per call")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def as_json(results: Results) -> str:
    data = dataclasses.asdict(results)
    data["config"]["results_dir"] = str(results.config.results_dir)
    data["targets"] = [dataclasses.asdict(t) | {"verdict": t.verdict}
                       for t in evaluate(results)]
    data["ratios"] = dict(ratios(results))
    for level, raw in zip(results.idempotency, data["idempotency"], strict=True):
        raw["met"] = level.met
    return json.dumps(data, indent=2, default=str, allow_nan=True)


def write(results: Results, folder: Path) -> str:
    text = markdown(results)
    (folder / "report.md").write_text(text)
    (folder / "results.json").write_text(as_json(results))
    plot(results, folder / PLOT)
    print("\n" + text + f"\nReport written to {folder}", flush=True)
    return text

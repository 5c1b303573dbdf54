"""`python -m bench` (`make bench`): the action-server throughput and latency benchmark.

Defaults keep a run under ten minutes on a two-core machine. The long memory check is
`python -m bench --memory-requests 100000`; a quick look at one action is e.g.
`python -m bench --scenarios noop benti --concurrency 64`. The cost of exactly-once
submissions alone: `python -m bench --scenarios --memory-requests 0 --scaling-workers`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.idempotency import STORES
from bench.run import RESULTS, Config, run
from bench.scenarios import SCENARIOS


def parse(argv: list[str] | None = None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms,
                        help="upstream latency added to every vendor call (default 50)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=defaults.concurrency,
                        help="concurrent conversations per level (default 1 16 64 256)")
    parser.add_argument("--requests", type=int, default=defaults.requests,
                        help="at most this many requests per level (default 3000)")
    parser.add_argument("--duration", type=float, default=defaults.duration,
                        help="stop issuing requests after this many seconds per level "
                             "(default 8)")
    parser.add_argument("--naive-requests", type=int, default=defaults.naive_requests,
                        help="cap on the baseline's 2 x concurrency requests per level "
                             "(default 128; never below the concurrency or 16)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup,
                        help="warm-up requests per scenario before measuring (default 64)")
    parser.add_argument("--memory-requests", type=int, default=defaults.memory_requests,
                        help="requests of the memory run over all vendor actions (default "
                             "5000; 100000 for the long check; 0 skips it)")
    parser.add_argument("--memory-chunk", type=int, default=defaults.memory_chunk,
                        help="RSS is sampled after every this many requests (default 1000)")
    parser.add_argument("--target-concurrency", type=int, default=defaults.target_concurrency,
                        help="level at which ratios and targets are evaluated (default 64)")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="Sanic worker processes of the product's action server "
                             "(default: one per core, at most 4, as the README recommends; "
                             "`rasa run actions` starts 1)")
    parser.add_argument("--no-stagger", action="store_true",
                        help="start all conversations at once (they then run in lockstep)")
    parser.add_argument("--cpu-baseline-requests", type=int,
                        default=defaults.cpu_baseline_requests,
                        help="requests of the no-op with each vendor action's payload, for "
                             "the CPU per vendor call (default 2000; 0 skips it)")
    parser.add_argument("--scaling-workers", type=int, nargs="*",
                        default=defaults.scaling_workers,
                        help="worker counts of the scaling run (default 1 2 4; none skips it)")
    parser.add_argument("--scaling-concurrency", type=int, nargs="+",
                        default=defaults.scaling_concurrency,
                        help="levels of the scaling run (default 64 256)")
    parser.add_argument("--scaling-scenario", choices=[n for n, s in SCENARIOS.items()
                                                       if s.server == "product"
                                                       and not s.reference],
                        default=defaults.scaling_scenario,
                        help="the action of the scaling run (default benti)")
    parser.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS),
                        default=defaults.scenarios,
                        help="which actions to run (default all; none: only the other runs)")
    parser.add_argument("--idempotency-rounds", type=int, default=defaults.idempotency_rounds,
                        help="alternating on/off rounds of the exactly-once section per action "
                             "and level (default 3; 0 skips the section)")
    parser.add_argument("--idempotency-seconds", type=float,
                        default=defaults.idempotency_seconds,
                        help="seconds of each mode in each round (default 2)")
    parser.add_argument("--idempotency-concurrency", type=int, nargs="*",
                        default=defaults.idempotency_concurrency,
                        help="levels of the exactly-once section (default 64 16; none skips it)")
    parser.add_argument("--idempotency-stores", nargs="+", choices=list(STORES),
                        default=defaults.idempotency_stores,
                        help="state stores of the exactly-once section (default sqlite redis; "
                             "Redis only where redis-server is installed)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="where the report folder is created (default bench/results)")
    args = parser.parse_args(argv)
    return Config(latency_ms=args.latency_ms, concurrency=args.concurrency,
                  requests=args.requests, duration=args.duration,
                  naive_requests=args.naive_requests, warmup=args.warmup,
                  memory_requests=args.memory_requests, memory_chunk=args.memory_chunk,
                  target_concurrency=args.target_concurrency, workers=args.workers,
                  scenarios=args.scenarios,
                  results_dir=args.results_dir, stagger=not args.no_stagger,
                  cpu_baseline_requests=args.cpu_baseline_requests,
                  scaling_workers=args.scaling_workers,
                  scaling_concurrency=args.scaling_concurrency,
                  scaling_scenario=args.scaling_scenario,
                  idempotency_rounds=args.idempotency_rounds,
                  idempotency_seconds=args.idempotency_seconds,
                  idempotency_concurrency=args.idempotency_concurrency,
                  idempotency_stores=args.idempotency_stores)


def main(argv: list[str] | None = None) -> None:
    run(parse(argv))


if __name__ == "__main__":
    main()

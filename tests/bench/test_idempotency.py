"""The exactly-once section of the benchmark: its "off" server and a small, untimed run.

Nothing here asserts speed. It checks that the "off" server really files without the
exactly-once machinery (and the normal server still with it), that every request is a new
submission at the vendor in both modes, and that the table and targets are reported.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bench import processes
from bench.idempotency import (
    OFF,
    ON,
    REDIS,
    SQLITE,
    SUBMITTING,
    ModeTotals,
    round_order,
    summarise,
)
from bench.run import Config, run
from rasa_service_desk.actions.base import IntegrationAction
from rasa_service_desk.actions.delivery import Submission
from rasa_service_desk.outbox import Kind

ROOT = Path(__file__).resolve().parents[2]

#: The main process of the action server: load the package as rasa-sdk does, pickle the
#: executor as it does for each Sanic worker, and say which `file_once` it has.
LOAD = """
import pickle, sys
from rasa_sdk.executor import ActionExecutor
from rasa_service_desk.actions.base import IntegrationAction
executor = ActionExecutor()
executor.register_package(sys.argv[1])
assert "action_benti_create_ticket" in executor.actions, sorted(executor.actions)
with open(sys.argv[2], "wb") as file:
    pickle.dump(executor, file)
print(IntegrationAction.file_once.__qualname__)
"""
#: A spawned worker: a new interpreter that gets the executor unpickled.
WORKER = """
import pickle, sys
with open(sys.argv[1], "rb") as file:
    executor = pickle.load(file)
from rasa_service_desk.actions.base import IntegrationAction
print(IntegrationAction.file_once.__qualname__)
"""


def python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX": "1",
           "SANDBOX_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def file_once_served_by(package: str, tmp_path: Path) -> tuple[str, str]:
    """`file_once` in the server's main process and in a worker given its actions."""
    pickled = tmp_path / f"{package}.pickle"
    return python(LOAD, package, str(pickled)), python(WORKER, str(pickled))


def test_only_the_off_server_files_without_exactly_once(tmp_path: Path) -> None:
    # rasa-sdk imports every submodule of the package it serves: the wrapper must not be one
    # of `bench.actions`, or the "on" server would be measured without idempotency too.
    normal = "IntegrationAction.file_once"
    assert file_once_served_by("bench.actions", tmp_path) == (normal, normal)
    # Each Sanic worker imports only the modules of the actions it is handed: the wrapper
    # defines one so that its replacement runs in the workers, which serve the requests.
    off = "send_directly"
    assert file_once_served_by("bench.no_idempotency", tmp_path) == (off, off)


async def test_send_directly_only_calls_the_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing the wrapper replaces `file_once` in this process: put it back afterwards.
    monkeypatch.setattr(IntegrationAction, "file_once", IntegrationAction.__dict__["file_once"])
    from bench.no_idempotency import send_directly

    sent: list[dict[str, Any]] = []

    async def send(payload: dict[str, Any]) -> dict[str, Any]:
        sent.append(payload)
        return {"id": f"T-{len(sent)}"}

    def must_not_confirm(*_: Any) -> list[dict[str, Any]]:
        raise AssertionError("confirming is the action's job")

    def must_not_store(*_: Any, **__: Any) -> None:
        raise AssertionError("the off server must not touch the state store")

    monkeypatch.setattr("rasa_service_desk.actions.submissions.shared_state", must_not_store)
    monkeypatch.setattr("rasa_service_desk.actions.delivery.shared_state", must_not_store)
    submission = Submission(Kind("bench.test", "benti", send, intent="x"), "slot",
                            "utter_queued", "utter_failed", must_not_confirm)
    dispatcher = CollectingDispatcher()
    tracker = Tracker("c-1", {}, {}, [], False, None, {}, "action_listen")
    action: Any = None  # unused by the wrapper: it is a method only for the patch
    for _ in range(2):  # the same content twice is sent twice: nothing remembers it
        outcome = await send_directly(action, dispatcher, tracker, submission,
                                      {"title": "same"}, {"title": "same"})
    assert outcome == {"id": "T-2"}
    assert sent == [{"title": "same"}, {"title": "same"}]
    assert dispatcher.messages == []


def test_rounds_alternate_so_drift_cancels() -> None:
    assert [round_order(n) for n in range(4)] == [(ON, OFF), (OFF, ON), (ON, OFF), (OFF, ON)]


def test_summary_sums_rounds_and_misses_on_errors() -> None:
    on = ModeTotals(requests=180, elapsed=2.0, calls=540, cpu_seconds=0.36,
                    latencies=[0.1, 0.2, 0.3], round_throughputs=[80.0, 100.0])
    off = ModeTotals(requests=200, elapsed=2.0, calls=600, cpu_seconds=0.3,
                     latencies=[0.1, 0.1, 0.2], round_throughputs=[100.0, 100.0])
    level = summarise(SQLITE, "benti_ticket", 64, on, off)
    assert (level.throughput_on, level.throughput_off) == (90.0, 100.0)
    assert level.ratio == pytest.approx(0.9) and level.round_ratios == [0.8, 1.0]
    assert (level.calls_on, level.calls_off) == (3.0, 3.0)
    assert (level.cpu_ms_on, level.cpu_ms_off) == (pytest.approx(2.0), pytest.approx(1.5))
    assert (level.p50_on, level.p50_off) == (0.2, 0.1)
    assert level.met
    slower = summarise(SQLITE, "benti_ticket", 64,
                       ModeTotals(requests=179, elapsed=2.0, round_throughputs=[89.5]),
                       ModeTotals(requests=200, elapsed=2.0, round_throughputs=[100.0]))
    assert not slower.met
    failing = summarise(SQLITE, "benti_ticket", 64,
                        ModeTotals(requests=200, elapsed=2.0, errors=1, round_throughputs=[1]),
                        ModeTotals(requests=200, elapsed=2.0, round_throughputs=[1]))
    assert failing.ratio == 1.0 and not failing.met
    assert math.isnan(summarise(SQLITE, "x", 1, ModeTotals(), ModeTotals()).ratio)


STORES = [SQLITE, REDIS] if processes.redis_available() else [SQLITE]
ROUNDS, REQUESTS, WARMUP = 2, 12, 32


@pytest.fixture(scope="module")
def section(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    config = Config(
        latency_ms=5, requests=REQUESTS, duration=120, scenarios=[], memory_requests=0,
        cpu_baseline_requests=0, scaling_workers=[], workers=1, target_concurrency=4,
        results_dir=tmp_path_factory.mktemp("bench-idempotency"),
        idempotency_rounds=ROUNDS, idempotency_seconds=120, idempotency_concurrency=[4],
        idempotency_stores=STORES)
    _, folder = run(config)
    return json.loads((folder / "results.json").read_text()), folder


def test_each_action_ran_on_and_off_without_errors(section: tuple[dict, Path]) -> None:
    data, _ = section
    levels = {(lv["store"], lv["scenario"]): lv for lv in data["idempotency"]}
    assert set(levels) == {(store, name) for store in STORES for name in SUBMITTING}
    for level in levels.values():
        assert level["rounds"] == ROUNDS and len(level["round_ratios"]) == ROUNDS
        assert level["requests_on"] == level["requests_off"] == ROUNDS * REQUESTS
        assert level["errors_on"] == level["errors_off"] == 0, level["error_samples"]
        assert level["throughput_on"] > 0 and level["throughput_off"] > 0
        assert level["ratio"] == pytest.approx(level["throughput_on"] / level["throughput_off"])


def test_every_request_is_a_new_submission_at_the_vendor(section: tuple[dict, Path]) -> None:
    data, _ = section
    expected = {"benti_ticket": 3, "cention_errand": 1, "loop_survey": 1, "loop_create": 1}
    for level in data["idempotency"]:
        # "on" answering a repeat from its record would show as fewer calls than "off".
        assert level["calls_on"] == level["calls_off"] == expected[level["scenario"]], level


def test_only_the_on_server_keeps_submission_records(section: tuple[dict, Path]) -> None:
    data, _ = section
    [sqlite] = data["idempotency_records"]
    sent = len(SUBMITTING) * (WARMUP + ROUNDS * REQUESTS)
    assert sqlite["store"] == SQLITE
    assert sqlite["requests"] == {ON: sent, OFF: sent}
    assert sqlite["records"] == {ON: sent, OFF: 0}


def test_report_has_the_table_and_targets(section: tuple[dict, Path]) -> None:
    data, folder = section
    report = (folder / "report.md").read_text()
    section_text = report.split("## Cost of exactly-once submissions")[1]
    for store in STORES:
        for submitting in SUBMITTING.values():
            assert f"| {store} | {submitting.title} | 4 |" in section_text
    assert f"on {len(SUBMITTING) * (WARMUP + ROUNDS * REQUESTS)} for" in section_text
    targets = {(t["scenario"], t["name"]): t for t in data["targets"]}
    for store in STORES:
        for name in SUBMITTING:
            target = targets[(name, f"exactly-once on/off at 4 ({store})")]
            assert target["verdict"] in ("met", "missed")
    for level in data["idempotency"]:
        assert level["met"] == (level["ratio"] >= 0.9)

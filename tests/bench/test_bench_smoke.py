"""A small, untimed run of the benchmark: it must finish cleanly and report what it measured.

Nothing here asserts speed (timings depend on the machine); it checks that the harness
drives the real servers without errors, counts the vendor calls each action makes, and
writes its table, plot and raw numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.run import Config, run
from bench.scenarios import SCENARIOS


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    config = Config(
        latency_ms=5, concurrency=[4], requests=20, duration=120, warmup=8,
        naive_requests=20, memory_requests=40, memory_chunk=20, target_concurrency=4,
        scenarios=["noop", "benti", "minimal_call", "naive_benti"],
        results_dir=tmp_path_factory.mktemp("bench-results"),
        p50_concurrency=4, workers=1, cpu_baseline_requests=20, scaling_workers=[1, 2],
        scaling_concurrency=[4], idempotency_rounds=0,
    )
    _, folder = run(config)
    return json.loads((folder / "results.json").read_text()), folder


def test_every_level_ran_without_errors(smoke: tuple[dict, Path]) -> None:
    data, _ = smoke
    levels = {level["scenario"]: level for level in data["levels"]}
    assert set(levels) == {"noop", "benti", "minimal_call", "naive_benti"}
    assert levels["noop"]["requests"] == 20
    assert levels["benti"]["requests"] == 20
    for level in data["levels"]:
        assert level["errors"] == 0, level["error_samples"]
        assert level["p50"] <= level["p95"] <= level["p99"]


def test_upstream_calls_match_each_flow(smoke: tuple[dict, Path]) -> None:
    data, _ = smoke
    levels = {level["scenario"]: level for level in data["levels"]}
    assert levels["noop"]["calls"] == 0
    # The reference: one library search, nothing else (no token fetched, no retry).
    assert levels["minimal_call"]["routes"] == {
        "GET /cention/s/{workspace}/capi/json/c3_library_questions": pytest.approx(1)}
    # Product: user lookup and transcript upload, then the ticket; the token is reused.
    assert levels["benti"]["calls"] == pytest.approx(SCENARIOS["benti"].calls) == 3
    assert data["k"]["benti"]["k"] == SCENARIOS["benti"].k == 2
    assert not any(route.endswith("/v1/auth") for route in levels["benti"]["routes"])
    # Baseline: a new token and API discovery on every call.
    assert levels["naive_benti"]["calls"] == pytest.approx(5)
    assert levels["naive_benti"]["routes"]["POST /benti/v1/auth"] == pytest.approx(1)
    assert data["k"]["naive_benti"]["k"] == 5


def test_report_has_table_ratios_targets_and_plot(smoke: tuple[dict, Path]) -> None:
    data, folder = smoke
    report = (folder / "report.md").read_text()
    assert "| Benti ticket | 4 | 20 |" in report
    assert "Benti ticket / no-op at 4" in report
    assert "product Benti ticket / Naive Benti (baseline) at 4" in report
    targets = {(t["scenario"], t["name"]): t for t in data["targets"]}
    calls = targets[("benti", "vendor calls per action at 4")]
    assert calls["verdict"] == "met" and calls["measured"] == "3.000"
    assert {("benti", "throughput at 4"), ("benti", "p50 at 4"),
            ("benti", "vs Naive Benti (baseline) at 4")} <= set(targets)
    assert all(t["verdict"] in ("met", "missed") for t in data["targets"])
    assert [n for n, _ in data["memory"]["samples"]] == [20, 40]
    assert data["memory"]["errors"] == 0
    png = (folder / "throughput-latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_cpu_per_vendor_call_and_scaling_are_reported(smoke: tuple[dict, Path]) -> None:
    data, folder = smoke
    report = (folder / "report.md").read_text()
    # The no-op ran with Benti's payload, so parsing the same body can be subtracted.
    assert data["noop_cpu_ms"]["benti"] >= 0
    assert "| Benti ticket |" in report.split("Server CPU per vendor call")[1]
    targets = {(t["scenario"], t["name"]): t for t in data["targets"]}
    assert ("benti", "server CPU per vendor call at 4") in targets
    # One and two Sanic workers both served every request, each with its own token.
    scaling = [(lv["workers"], lv["concurrency"], lv["requests"], lv["errors"])
               for lv in data["scaling"]]
    assert scaling == [(1, 4, 20, 0), (2, 4, 20, 0)]
    assert "| 2 | 4 | 20 |" in report and "efficiency" in report


def test_the_minimal_call_is_a_reference_not_a_product_action(
        smoke: tuple[dict, Path]) -> None:
    data, folder = smoke
    table = (folder / "report.md").read_text().split("Server CPU per vendor call")[1]
    assert "| Minimal aiohttp call (reference) |" in table
    assert not [t for t in data["targets"] if t["scenario"] == "minimal_call"]
    assert data["memory"]["scenarios"] == ["benti"]

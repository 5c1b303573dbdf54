"""The report's CPU table, from measured figures given here (no servers)."""

from __future__ import annotations

from bench.report import cpu_table
from bench.run import Config, Level, Results


def level(scenario: str, cpu_ms_per_request: float) -> Level:
    """A level of 1,000 requests in 1 s at 64 conversations that cost this much CPU."""
    return Level(scenario, 64, 1000, 0, 1.0, 1000.0, 0.05, 0.06, 0.07, {}, 1.0,
                 server_cpu=cpu_ms_per_request, sandbox_cpu=0.1, loadgen_cpu=0.1,
                 machine_cpu=50.0)


def results(reference_ms: float) -> Results:
    found = Results(Config(scenarios=["benti", "loop", "minimal_call"]))
    found.levels = [level("benti", 1.5), level("loop", 1.0), level("minimal_call", reference_ms)]
    found.noop_cpu_ms = {"benti": 0.3, "loop": 0.3, "minimal_call": 0.3}
    return found


def rows(table: list[str]) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in
            ([cell.strip() for cell in line.strip("|").split("|")] for line in table[2:])}


def test_each_action_is_shown_in_multiples_of_the_minimal_call() -> None:
    table = rows(cpu_table(results(reference_ms=0.55)))
    # Benti: (1.5 - 0.3) / 3 calls = 0.40 per call; the reference: 0.55 - 0.3 = 0.25.
    assert table["Benti ticket"][3:] == ["0.40", "1.60"]
    assert table["Loop survey submission"][3:] == ["0.70", "2.80"]
    assert table["Minimal aiohttp call (reference)"][3:] == ["0.25", "1.00"]


def test_a_reference_measured_at_zero_gives_no_multiples() -> None:
    # A run too short for the CPU clocks: the reference costs "nothing", or less than the no-op.
    for reference_ms in (0.3, 0.2):
        table = rows(cpu_table(results(reference_ms)))
        assert table["Benti ticket"][3:] == ["0.40", "-"]
        assert table["Minimal aiohttp call (reference)"][4] == "-"

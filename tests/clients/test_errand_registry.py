"""The errand registry: which conversation owns an errand, across processes and restarts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rasa_service_desk.clients.cention.errand_registry import ErrandOwner, ErrandRegistry


def test_records_and_finds_the_owner(tmp_path: Path) -> None:
    registry = ErrandRegistry(str(tmp_path / "errands.sqlite3"))
    before = datetime.now(timezone.utc)
    registry.record("511055", "conversation-1", "socketio")

    owner = registry.owner("511055")

    assert isinstance(owner, ErrandOwner)
    assert owner.sender_id == "conversation-1"
    assert owner.channel == "socketio"
    assert before.timestamp() - 1 <= owner.created_at.timestamp() <= before.timestamp() + 5
    assert registry.owner("999") is None


def test_survives_a_restart_and_a_second_process(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "errands.sqlite3"
    ErrandRegistry(str(path)).record("7", "conversation-7", None)
    script = textwrap.dedent(f"""
        from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
        registry = ErrandRegistry({str(path)!r})
        owner = registry.owner("7")
        assert owner is not None and owner.sender_id == "conversation-7" and owner.channel is None
        registry.record("8", "conversation-8", "rest")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[2])

    owner = ErrandRegistry(str(path)).owner("8")
    assert owner is not None and owner.sender_id == "conversation-8"


def test_uses_write_ahead_logging_so_the_reader_is_not_blocked(tmp_path: Path) -> None:
    path = tmp_path / "errands.sqlite3"
    ErrandRegistry(str(path))
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reader_sees_committed_rows_while_a_writer_holds_a_transaction(tmp_path: Path) -> None:
    path = tmp_path / "errands.sqlite3"
    registry = ErrandRegistry(str(path))
    registry.record("1", "conversation-1", None)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO cention_errands VALUES ('2', 'conversation-2', NULL, 0)")
    try:
        owner = registry.owner("1")
        assert owner is not None and owner.sender_id == "conversation-1"
        assert registry.owner("2") is None  # not committed yet
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert registry.owner("2") is not None


def test_a_repeated_errand_id_takes_the_latest_owner(tmp_path: Path) -> None:
    registry = ErrandRegistry(str(tmp_path / "errands.sqlite3"))
    registry.record("5", "old", "rest")
    registry.record(" 5 ", "new", "socketio")
    owner = registry.owner("5")
    assert owner is not None and (owner.sender_id, owner.channel) == ("new", "socketio")


@pytest.mark.parametrize(("errand_id", "sender_id"), [("", "c"), ("  ", "c"), ("5", "")])
def test_refuses_incomplete_records(tmp_path: Path, errand_id: str, sender_id: str) -> None:
    registry = ErrandRegistry(str(tmp_path / "errands.sqlite3"))
    with pytest.raises(ValueError):
        registry.record(errand_id, sender_id, None)


def test_a_delivery_is_claimed_once_until_released(tmp_path: Path) -> None:
    registry = ErrandRegistry(str(tmp_path / "errands.sqlite3"))
    assert registry.claim_delivery("2256:76")
    assert not registry.claim_delivery("2256:76")
    assert not ErrandRegistry(registry.path).claim_delivery("2256:76")  # another process
    assert registry.claim_delivery("2256:77")
    registry.release_delivery("2256:76")
    assert registry.claim_delivery("2256:76")

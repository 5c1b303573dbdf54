"""A wrong OUTBOX_* value stops the action server at start, naming the variable, before any
customer meets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import ROOT, free_port


@pytest.mark.parametrize("variable, value", [
    ("OUTBOX_POLL_SECONDS", "abc"),
    ("OUTBOX_RASA_URL", "ftp://x"),
    ("OUTBOX_GIVE_UP_AFTER_SECONDS", "0"),
    ("OUTBOX_MAX_BACKOFF_SECONDS", "-5"),
])
def test_a_wrong_outbox_setting_stops_the_action_server_naming_it(
        variable: str, value: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SANDBOX": "1",
           "STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite3'}", variable: value}
    proc = subprocess.run(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert variable in proc.stderr
    assert "Traceback" not in proc.stderr

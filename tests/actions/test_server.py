"""The real rasa-sdk action server: it starts, serves the actions, and refuses bad settings."""

from __future__ import annotations

import subprocess
import sys

import requests

from rasa_service_desk.clients.settings import INTEGRATIONS, settings_class
from tests.support.rasa_payloads import responses, webhook_payload
from tests.support.servers import ROOT, ActionServer, action_server_command, free_port


def test_health_and_action_list(action_server: ActionServer) -> None:
    assert requests.get(f"{action_server.url}/health", timeout=5).json() == {"status": "ok"}
    assert "action_retry_pending" in action_server.actions()


def test_try_again_reruns_the_failed_action(action_server: ActionServer) -> None:
    reply = action_server.run(webhook_payload(
        "action_retry_pending", slots={"pending_action": "action_benti_create_ticket"}))
    assert responses(reply) == ["utter_retrying"]
    assert {"event": "followup", "name": "action_benti_create_ticket"} in [
        {k: e[k] for k in ("event", "name")} for e in reply["events"]]


def test_try_again_with_nothing_pending(action_server: ActionServer) -> None:
    reply = action_server.run(webhook_payload("action_retry_pending"))
    assert responses(reply) == ["utter_nothing_to_retry"]
    assert reply["events"] == []


def test_unknown_action_is_a_clear_404_not_a_crash(action_server: ActionServer) -> None:
    resp = action_server.call(webhook_payload("action_does_not_exist"))
    assert resp.status_code == 404
    assert "action_does_not_exist" in resp.text


def test_half_configured_vendor_stops_startup_naming_the_variables(tmp_path: object) -> None:
    vendor = next(name for name in INTEGRATIONS
                  if len(settings_class(name).credential_fields) >= 2)
    cls = settings_class(vendor)
    first, *rest = cls.credential_fields
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           cls.env_name(first): "only-one-credential-value"}
    proc = subprocess.run(action_server_command(free_port(), sys.executable), env=env,
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    for field in rest:
        assert cls.env_name(field) in proc.stderr
    assert "only-one-credential-value" not in proc.stderr + proc.stdout


def _start_only(package: str, env: dict[str, str], cwd: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "rasa_sdk", "--actions", package,
               "--port", str(free_port())]
    return subprocess.Popen(command, env={"PATH": "/usr/bin:/bin", **env}, cwd=str(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_one_integration_alone_reads_no_setting_of_the_others(tmp_path: object) -> None:
    """Serving only Benti: the other vendors' settings are not read, so even broken ones do
    not stop it, and its log names Benti alone."""
    env = {"SANDBOX": "1", "LOOP_CUSTOM_FIELDS": "not json", "IMBEE_DEFAULT_REGION": "Spain",
           "CENTION_MAX_SUGGESTIONS": "lots", "CENTION_TOKEN": "half-configured"}
    proc = _start_only("rasa_service_desk.actions.benti", env, tmp_path)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "benti: enabled" in line:
                break
        log = "".join(lines)
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    log += rest
    assert "benti: enabled" in log
    for other in ("cention", "imbee", "loop"):
        assert other not in log.lower()


def test_a_broken_setting_of_an_enabled_integration_stops_startup(tmp_path: object) -> None:
    proc = _start_only("rasa_service_desk.actions.loop", {"LOOP_CUSTOM_FIELDS": "not json"},
                       tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "LOOP_CUSTOM_FIELDS" in out
    assert "Traceback" not in out

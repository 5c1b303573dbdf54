"""The action server under stress and abuse, through real processes over loopback: a stop in
the middle of traffic, a hanging vendor, a forged "try again", control characters in form
answers, malformed and unauthenticated calls, and a clean start as `make run` does it.

Tests that need rasa-sdk's plugin hooks (the request checks, the token, the error replies
without echo; rasa-sdk 3.6.2 and newer call them) are skipped on an SDK without them.
"""

from __future__ import annotations

import hmac
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unicodedata
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from rasa_service_desk.actions.validation import (
    _BIDI_CONTROLS,
    clean_line,
    clean_name,
    clean_text,
    strip_controls,
)
from tests.support.rasa_payloads import responses, slot_events, webhook_payload
from tests.support.servers import (
    MAIN_PYTHON,
    ROOT,
    ActionServer,
    Sandbox,
    free_port,
    running_action_server,
    running_sandbox,
    start_process,
    wait_until_ready,
)

HAS_PLUGINS = importlib.util.find_spec("rasa_sdk.plugin") is not None
HAS_TRACING = importlib.util.find_spec("rasa_sdk.tracing") is not None
needs_plugins = pytest.mark.skipif(not HAS_PLUGINS, reason="this rasa-sdk has no plugin hooks")
IN_MAIN_VENV = Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()

CREATE = "action_benti_create_ticket"
SLOTS = {
    "customer_name": "Ada Lovelace",
    "customer_email": "ada.lovelace@example.com",
    "benti_ticket_title": "Printer on fire",
    "benti_ticket_description": "It smokes every time\nI print.",
}
#: Customer data planted in probes: it must never come back in a reply or reach the log.
MARKER = "probe-marker-7f3a@example.com"
TOKEN = "s3cret-action-token-0123456789abcdef"


def post(url: str, payload: dict[str, Any], **kwargs: Any) -> requests.Response:
    return requests.post(url, json=payload, timeout=60, **kwargs)


# -- 12. a stop in the middle of traffic ---------------------------------------------------


def test_sigterm_mid_traffic_answers_every_request_in_flight() -> None:
    """A rolling deploy: SIGTERM while 100 ticket requests wait on a slow vendor. Sanic stops
    accepting, finishes them, and only then is the shared HTTP session closed: every one of
    them gets its 200 with the ticket, none a 500, and the server exits cleanly."""
    with running_sandbox() as sim, running_action_server(
            {"SANDBOX": "1", "SANDBOX_URL": sim.url}) as server:
        server.run(webhook_payload(CREATE, slots=SLOTS))  # token and discovery cached
        sim.latency("benti", 1.0)
        before = sim.calls("benti")

        def started() -> int:  # a request calls each vendor route once
            now = sim.calls("benti")
            return max(now[route] - before.get(route, 0) for route in now)

        count = 100
        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(post, f"{server.url}/webhook",
                                   webhook_payload(CREATE, slots=SLOTS)) for _ in range(count)]
            deadline = time.monotonic() + 30
            # Every request is inside the action, waiting on the vendor.
            while started() < count:
                assert time.monotonic() < deadline, "the requests never reached the vendor"
                time.sleep(0.05)
            server.process.popen.send_signal(signal.SIGTERM)
            replies = [future.result() for future in futures]
        exit_code = server.process.popen.wait(60)

    statuses = sorted({reply.status_code for reply in replies})
    failed = [reply.text[:200] for reply in replies if reply.status_code != 200]
    assert statuses == [200], f"{statuses}: {failed[:3]}"
    for reply in replies:
        body = reply.json()
        assert responses(body) == ["utter_benti_ticket_created"]
        assert slot_events(body)["benti_ticket_id"]
    assert exit_code == 0
    assert "Unclosed client session" not in server.process.output()


# -- 13. a hanging vendor meets the action deadline ----------------------------------------


def test_a_hanging_vendor_gets_the_unavailable_reply_before_the_deadline(
        sandbox: Sandbox) -> None:
    """Without the outbox (`OUTBOX_ENABLED=0`): the customer is told, "try again" armed."""
    sandbox.reset("benti")
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "ACTION_DEADLINE_SECONDS": "1.5",
           "BENTI_TIMEOUT_SECONDS": "60", "OUTBOX_ENABLED": "0"}
    with running_action_server(env) as server:
        server.run(webhook_payload(CREATE, slots=SLOTS))  # warm: the hang hits the ticket
        sandbox.inject("benti", {"delay": 30, "path": "/tickets", "method": "POST"})
        started = time.monotonic()
        reply = server.run(webhook_payload(CREATE, slots=SLOTS))
        elapsed = time.monotonic() - started
        log = server.process.output()

    assert elapsed < 5
    assert responses(reply) == ["utter_vendor_unavailable"]
    # every slot kept, "try again" armed
    assert reply["events"] == [{"event": "slot", "timestamp": None, "name": "pending_action",
                                "value": CREATE}]
    assert "ACTION_DEADLINE_SECONDS" in log


def test_a_hanging_vendor_gets_the_queued_reply_before_the_deadline(
        sandbox: Sandbox) -> None:
    """With the outbox (the default): the first attempt gets most of the deadline, then the
    ticket is queued and the customer told so in time; the outbox files it afterwards."""
    sandbox.reset("benti")
    title = "Printer on fire (hanging)"
    slots = {**SLOTS, "benti_ticket_title": title}
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "ACTION_DEADLINE_SECONDS": "1.5",
           "BENTI_TIMEOUT_SECONDS": "60", "OUTBOX_POLL_SECONDS": "0.2",
           "OUTBOX_MAX_BACKOFF_SECONDS": "1"}
    with running_action_server(env) as server:
        server.run(webhook_payload(CREATE, slots=SLOTS))  # warm: the hang hits the ticket
        sandbox.inject("benti", {"delay": 30, "path": "/tickets", "method": "POST"})
        started = time.monotonic()
        reply = server.run(webhook_payload(CREATE, slots=slots))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 20
        filed: list[Any] = []
        while not filed and time.monotonic() < deadline:
            filed = [t for t in sandbox.state("benti")["tickets"] if t["title"] == title]
            time.sleep(0.1)

    assert elapsed < 5
    assert responses(reply) == ["utter_benti_ticket_queued"]
    assert slot_events(reply) == {"benti_ticket_title": None, "benti_ticket_description": None}
    assert len(filed) == 1


# -- 14. "try again" runs only this project's actions --------------------------------------


@pytest.mark.parametrize("pending", [
    ["action_benti_create_ticket"],
    42,
    {"name": "action_benti_create_ticket"},
    "x" * 100_000,
    "action_restart",
    "action_session_start",
    "utter_greet",
    "validate_benti_ticket_form",
    "action_retry_pending",
    "action_does_not_exist",
], ids=["list", "number", "dict", "100kB", "restart", "session_start", "utter", "validator",
        "itself", "unknown"])
def test_try_again_refuses_anything_but_a_retryable_action(
        action_server: ActionServer, pending: Any) -> None:
    reply = action_server.run(webhook_payload("action_retry_pending",
                                              slots={"pending_action": pending}))
    assert responses(reply) == ["utter_nothing_to_retry"]
    assert [e for e in reply["events"] if e["event"] == "followup"] == []
    assert slot_events(reply) == {"pending_action": None}


def test_try_again_reruns_an_integration_action(action_server: ActionServer) -> None:
    reply = action_server.run(webhook_payload("action_retry_pending",
                                              slots={"pending_action": CREATE}))
    assert responses(reply) == ["utter_retrying"]
    assert [e["name"] for e in reply["events"] if e["event"] == "followup"] == [CREATE]


# -- 15. control characters never reach a vendor ------------------------------------------


@pytest.mark.parametrize(("slot", "value", "expected"), [
    ("customer_name", "Ada\x00 Love\x1b[31mlace\x1b[0m", "Ada Lovelace"),
    ("customer_name", "\u202eAda\u202c\tLovelace\x07", "Ada Lovelace"),
    ("benti_ticket_title", "Printer\x00 on\x1b]0;pwned\x07 fire\x7f", "Printer on fire"),
    ("benti_ticket_description", "It smokes.\r\n\tEvery time.\x00\x08\x1b[2J",
     "It smokes.\n\tEvery time."),
])
def test_form_answers_lose_their_control_characters(
        action_server: ActionServer, slot: str, value: str, expected: str) -> None:
    payload = webhook_payload("validate_benti_ticket_form", slots={slot: value}, text=value,
                              active_loop="benti_ticket_form", requested_slot=slot)
    payload["tracker"]["events"].append(
        {"event": "slot", "timestamp": time.time(), "name": slot, "value": value})
    reply = action_server.run(payload)
    assert slot_events(reply)[slot] == expected


def test_the_text_checks_strip_controls_and_keep_lines_only_in_free_text() -> None:
    assert clean_name("Ada\nLovelace\x00") == "Ada Lovelace"
    assert clean_line("Printer\r\non\tfire", 50) == "Printer on fire"
    assert clean_text("one\r\ntwo\u2028three\x0bfour", 50) == "one\ntwo\nthree\nfour"
    assert clean_text("  indented\n    code\x00", 50) == "indented\n    code"
    assert clean_text("lone \ud800surrogate", 50) == "lone surrogate"
    assert clean_text("\x00\x01\x02", 50) is None  # nothing left: asked again
    assert clean_name("\x1b[31m\x1b[0m") is None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=40), st.booleans())
def test_no_control_character_survives_whatever_the_text(text: str, multiline: bool) -> None:
    """Printable text is returned as it is without a walk over its characters; any other
    text is walked: either way no control character remains but kept line breaks and tabs."""
    cleaned = strip_controls(text, multiline)
    kept = "\n\t" if multiline else ""
    assert not [ch for ch in cleaned if ch not in kept and (
        ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs"))]
    if text.isprintable():
        assert cleaned == text


# -- 17. malformed calls: a short 4xx, no echo, the server keeps serving ------------------

_PLAIN = webhook_payload("action_retry_pending", slots={"customer_email": MARKER})


def _with(path: str, value: Any) -> bytes:
    payload = json.loads(json.dumps(_PLAIN))
    target = payload
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return json.dumps(payload).encode()


_DELETE = object()
JSON = {"Content-Type": "application/json"}

PROBES: list[tuple[str, bytes, dict[str, str]]] = [
    ("a JSON list", json.dumps([_PLAIN]).encode(), JSON),
    ("a JSON string", json.dumps(MARKER).encode(), JSON),
    ("a JSON number", b"42", JSON),
    ("not JSON", b"{'next_action': '" + MARKER.encode() + b"'", JSON),
    ("not UTF-8", b'{"next_action": "\xff\xfe' + MARKER.encode() + b'"}', JSON),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, JSON),
    ("no next_action", _with("next_action", _DELETE), JSON),
    ("no tracker", _with("tracker", _DELETE), JSON),
    ("tracker is a list", _with("tracker", [MARKER]), JSON),
    ("slots is a list", _with("tracker.slots", [MARKER]), JSON),
    ("events is an object", _with("tracker.events", {"e": MARKER}), JSON),
    ("an event is a string", _with("tracker.events", [MARKER]), JSON),
    ("latest_message is text", _with("tracker.latest_message", MARKER), JSON),
    ("version is a number", _with("version", 3.6), JSON),
    ("version is an object", _with("version", {"v": MARKER}), JSON),
    ("domain is a list", _with("domain", [MARKER]), JSON),
    ("gzip encoding", zlib.compress(json.dumps(_PLAIN).encode()),
     {**JSON, "Content-Encoding": "gzip"}),
    ("broken deflate", json.dumps(_PLAIN).encode(), {**JSON, "Content-Encoding": "deflate"}),
    ("deflate bomb", zlib.compress(b" " * 50_000_000, 9), {**JSON, "Content-Encoding": "deflate"}),
    ("oversized body", json.dumps({**_PLAIN, "padding": "p" * 2_000_000}).encode(), JSON),
]


@pytest.fixture(scope="module")
def guarded(sandbox: Sandbox) -> Iterator[ActionServer]:
    """An action server with a token and a 1 MB request limit (Sanic's own setting)."""
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url, "ACTION_SERVER_TOKEN": TOKEN,
           "SANIC_REQUEST_MAX_SIZE": "1000000"}
    with running_action_server(env) as server:
        yield server


@needs_plugins
def test_malformed_calls_are_a_short_4xx_without_echo(guarded: ActionServer) -> None:
    url = f"{guarded.url}/webhook?token={TOKEN}"
    outcomes = {}
    for name, body, headers in PROBES:
        reply = requests.post(url, data=body, headers=headers, timeout=30)
        outcomes[name] = reply.status_code
        assert 400 <= reply.status_code < 500, (name, reply.status_code, reply.text[:300])
        assert len(reply.content) < 200, name
        assert MARKER not in reply.text, name
        assert set(reply.json()) == {"error"}, name
    assert outcomes["oversized body"] == 413 and outcomes["deflate bomb"] == 413
    assert outcomes["gzip encoding"] == 415

    # still serving, plain and deflate-compressed (Rasa's COMPRESS_ACTION_SERVER_REQUEST)
    ok = requests.post(url, json=_PLAIN, timeout=30)
    assert ok.status_code == 200 and responses(ok.json()) == ["utter_nothing_to_retry"]
    deflated = requests.post(url, data=zlib.compress(json.dumps(_PLAIN).encode()),
                             headers={**JSON, "Content-Encoding": "deflate"}, timeout=30)
    assert deflated.status_code == 200
    log = guarded.process.output()
    assert MARKER not in log
    assert "Traceback" not in log


@pytest.fixture
def crashing_bot(sandbox: Sandbox, tmp_path: Path) -> Iterator[ActionServer]:
    """A bot whose own action raises with customer data in the message."""
    package = tmp_path / "actions"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        from rasa_sdk import Action

        import rasa_service_desk.actions  # noqa: F401  ("try again" only)


        class ActionCrash(Action):
            def name(self):
                return "action_crash"

            async def run(self, dispatcher, tracker, domain):
                raise ValueError("cannot handle " + tracker.get_slot("customer_email"))
    '''))
    env = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url}
    with running_action_server(env, cwd=tmp_path) as server:
        yield server


@needs_plugins
def test_a_crashing_action_answers_500_without_echo(crashing_bot: ActionServer) -> None:
    reply = crashing_bot.call(webhook_payload("action_crash", slots={"customer_email": MARKER}))
    assert reply.status_code == 500
    assert reply.json() == {"error": "internal server error"}
    time.sleep(0.2)
    log = crashing_bot.process.output()
    assert "ValueError" in log  # the operator sees what and where ...
    assert MARKER not in log  # ... but not the customer's data
    assert crashing_bot.run(webhook_payload("action_retry_pending"))


# -- 18. the shared token --------------------------------------------------------------------


@needs_plugins
def test_the_token_guards_every_route_but_health(guarded: ActionServer) -> None:
    url = guarded.url
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    for reply in (
        post(f"{url}/webhook", _PLAIN),
        post(f"{url}/webhook?token=wrong-token-of-the-same-size-0123", _PLAIN),
        post(f"{url}/webhook", _PLAIN, headers={"Authorization": "Bearer nope"}),
        post(f"{url}/webhook?token={TOKEN[:-1]}", _PLAIN),
        requests.get(f"{url}/actions", timeout=5),
    ):
        assert reply.status_code == 401
        assert reply.json() == {"error": "unauthorized"}
    assert post(f"{url}/webhook?token={TOKEN}", _PLAIN).status_code == 200
    assert post(f"{url}/webhook", _PLAIN,
                headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert requests.get(f"{url}/actions", params={"token": TOKEN}, timeout=5).ok
    assert TOKEN not in guarded.process.output()


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa_service_desk.plugin import token_matches

    calls = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches("x" * len(TOKEN), TOKEN)
    assert not token_matches("\ud800", TOKEN)  # not even encodable: still just "no"
    assert not token_matches(None, TOKEN)
    assert len(calls) == 3


RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"


@needs_plugins
@pytest.mark.skipif(not RASA_PYTHON.exists() and os.environ.get("CI") != "true",
                    reason="no .venv-rasa with Rasa 3.6 (`make unit` builds it first)")
def test_rasa_3_6_sends_the_token_of_its_endpoints_yml(guarded: ActionServer,
                                                       tmp_path: Path) -> None:
    """Rasa's own action endpoint client, configured as endpoints.yml `token:` says."""
    (tmp_path / "call.json").write_text(json.dumps(_PLAIN))
    script = textwrap.dedent("""
        import asyncio, json, sys
        from rasa.utils.endpoints import EndpointConfig

        async def main():
            endpoint = EndpointConfig.from_dict({"url": sys.argv[1], "token": sys.argv[2]})
            try:
                reply = await endpoint.request(json=json.load(open(sys.argv[3])), method="post")
                print("OK", reply["responses"][0]["response"])
            except Exception as exc:
                print("FAILED", getattr(exc, "status", exc))

        asyncio.run(main())
    """)
    for token, expected in ((TOKEN, "OK utter_nothing_to_retry"), ("wrong" * 4, "FAILED 401")):
        done = subprocess.run([str(RASA_PYTHON), "-c", script, f"{guarded.url}/webhook",
                               token, str(tmp_path / "call.json")],
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.strip().splitlines()[-1] == expected, done.stderr[-2000:]


# -- 20, 21. `make run`: ports from .env, a clean start --------------------------------------


@pytest.fixture
def bot_copy(tmp_path: Path) -> Path:
    """The reference bot's layout with its own .env: `scripts/run-action-server` reads the
    .env of the bot it belongs to, and the real one must not be touched."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run-action-server", tmp_path / "scripts")
    for name in (".venv", "actions", "rasa_sdk_plugins", "config"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def _run_action_server(bot: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SANDBOX", "ACTION_SERVER", "BENTI_", "CENTION_", "IMBEE_",
                                  "LOOP_", "LOG_LEVEL", "ALLOW_INSECURE"))}
    return subprocess.Popen([str(bot / "scripts" / "run-action-server")],
                            env={**clean, "PYTHONUNBUFFERED": "1", **env}, cwd=str(bot),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop `make run` as an orchestrator does: SIGTERM to the action server process (the
    script then stops the simulators). Whatever is left is killed with its group."""
    for child in _children(proc.pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rasa_sdk" in cmdline:
            os.kill(child, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
    return out


def _wait_for(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "run-action-server exited"
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready")


@pytest.mark.skipif(not (IN_MAIN_VENV and MAIN_PYTHON.exists()),
                    reason="`make run` uses .venv")
def test_make_run_takes_its_ports_from_dotenv_and_starts_clean(bot_copy: Path) -> None:
    sandbox_port, action_port = free_port(), free_port()
    (bot_copy / ".env").write_text(f"SANDBOX_PORT={sandbox_port}\n"
                                   f"ACTION_SERVER_PORT={action_port}\nSANDBOX=1\n")
    proc = _run_action_server(bot_copy, {})
    try:
        _wait_for(f"http://127.0.0.1:{sandbox_port}/health", proc)
        _wait_for(f"http://127.0.0.1:{action_port}/health", proc)
        reply = post(f"http://127.0.0.1:{action_port}/webhook",
                     webhook_payload(CREATE, slots=SLOTS))
        time.sleep(0.5)
    finally:
        out = _stop(proc)
    assert reply.status_code == 200, out[-3000:]
    assert responses(reply.json()) == ["utter_benti_ticket_created"]  # simulator on .env's port
    assert [line for line in out.splitlines() if " ERROR " in line or "Traceback" in line] == []
    for vendor in ("benti", "cention", "imbee", "loop"):
        assert sum(f"{vendor}: enabled" in line for line in out.splitlines()) == 1, vendor


@pytest.mark.skipif(not (IN_MAIN_VENV and MAIN_PYTHON.exists()),
                    reason="`make run` uses .venv")
def test_make_run_ports_from_the_shell_win_over_dotenv(bot_copy: Path) -> None:
    (bot_copy / ".env").write_text(f"SANDBOX_PORT={free_port()}\n"
                                   f"ACTION_SERVER_PORT={free_port()}\n")
    sandbox_port, action_port = free_port(), free_port()
    proc = _run_action_server(bot_copy, {"SANDBOX_PORT": str(sandbox_port),
                                         "ACTION_SERVER_PORT": str(action_port)})
    try:
        _wait_for(f"http://127.0.0.1:{sandbox_port}/health", proc)
        _wait_for(f"http://127.0.0.1:{action_port}/health", proc)
        time.sleep(0.5)  # Sanic hangs on a stop signal in the very moment its worker is ready
    finally:
        _stop(proc)


@pytest.mark.skipif(not (IN_MAIN_VENV and MAIN_PYTHON.exists()),
                    reason="`make run` uses .venv")
def test_make_run_refuses_a_port_that_is_not_a_number(bot_copy: Path) -> None:
    (bot_copy / ".env").write_text("ACTION_SERVER_PORT=fifty\n")
    proc = _run_action_server(bot_copy, {})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "ACTION_SERVER_PORT must be a port number" in out


def test_a_direct_start_in_the_bot_folder_logs_no_error(sandbox: Sandbox) -> None:
    """`python -m rasa_sdk --actions actions --endpoints config/endpoints.yml` from the bot's
    folder, as scripts/run-action-server runs it: no ERROR line."""
    port = free_port()
    args = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)]
    if HAS_TRACING:  # rasa-sdk 3.6 has no tracing and no --endpoints
        args += ["--endpoints", "config/endpoints.yml"]
    workdir = Path(tempfile.mkdtemp(prefix="bot-"))
    for name in ("actions", "rasa_sdk_plugins", "config"):
        (workdir / name).symlink_to(ROOT / name)
    proc = start_process(args, env={"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                    "PYTHONPATH": str(ROOT)}, cwd=workdir)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", proc)
        time.sleep(0.5)
    finally:
        proc.stop()
    out = proc.output()
    assert [line for line in out.splitlines() if " ERROR " in line] == []

"""Deployments of the reference bot for the topology and socket.io tests: several Rasa
instances and action servers at once, each in its own working directory, with the channels
and the shared state each test needs.

`tests/e2e/conftest.py` runs one session-wide bot; this module builds others: a Rasa process
that can be stopped and started again on the same port and working directory, generated
`credentials.yml`/`endpoints.yml` with the project's drop-in channels, a switchable
HTTP proxy in front of the action servers (a load balancer whose backend the test picks),
and helpers for an errand hand-off and the Cention answer callback.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN
from tests.e2e.bot import CALLBACK_SECRET, Conversation, RasaServer, is_response, slot_value
from tests.support.servers import ROOT, Process, Sandbox, free_port, start_process

CENTION = "rasa_service_desk.connectors.cention.CentionInput"
REST = "rasa_service_desk.connectors.rest.RestInput"
SOCKETIO = "rasa_service_desk.connectors.socketio.SocketIOInput"
STOCK_SOCKETIO = "socketio"
JSONAPI = "application/vnd.api+json"
CALLBACK_PATH = "/webhooks/cention/webhook"


def rasa_start_timeout() -> float:
    """As in conftest.py: Rasa imports TensorFlow on start; a busy machine takes a while."""
    return float(os.environ.get("E2E_RASA_START_TIMEOUT", "300"))


# -- configuration -----------------------------------------------------------------------


def channel_credentials(sandbox: Sandbox, *, socketio: dict[str, Any] | None = None,
                        stock_socketio: dict[str, Any] | None = None,
                        rest: bool = True) -> dict[str, Any]:
    """credentials.yml: the Cention connector, the drop-in REST channel, and optionally the
    drop-in (`socketio`) or Rasa's own (`stock_socketio`) socket.io channel. The shared
    state comes from STATE_URL in Rasa's environment."""
    credentials: dict[str, Any] = {
        CENTION: {"api_secret": CALLBACK_SECRET,
                  "base_url": f"{sandbox.vendor_url('cention')}/s/demo",
                  "attachment_token": SANDBOX_ERRAND_TOKEN},
    }
    if rest:
        credentials[REST] = None
    if socketio is not None:
        credentials[SOCKETIO] = {"user_message_evt": "user_uttered",
                                 "bot_message_evt": "bot_uttered", **socketio}
    if stock_socketio is not None:
        credentials[STOCK_SOCKETIO] = {"user_message_evt": "user_uttered",
                                       "bot_message_evt": "bot_uttered", **stock_socketio}
    return credentials


def endpoints_for(action_server_url: str) -> dict[str, Any]:
    """The shipped endpoints.yml (SQL tracker store on a SQLite file in Rasa's working
    directory) with the action endpoint at `action_server_url`."""
    endpoints = yaml.safe_load((ROOT / "config" / "endpoints.yml").read_text()) or {}
    endpoints["action_endpoint"] = {"url": f"{action_server_url}/webhook"}
    return endpoints


# -- Rasa --------------------------------------------------------------------------------


@dataclass
class RasaDeployment:
    """One `rasa run --enable-api` in its own working directory, restartable in place."""

    rasa_bin: Path
    model: Path
    workdir: Path
    credentials: dict[str, Any]
    endpoints: dict[str, Any]
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    peers: dict[str, Process] = field(default_factory=dict)
    server: RasaServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (without waiting: `wait_ready()`), so several Rasa instances can
        load at once."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        credentials = self.workdir / "credentials.yml"
        endpoints = self.workdir / "endpoints.yml"
        credentials.write_text(yaml.safe_dump(self.credentials))
        endpoints.write_text(yaml.safe_dump(self.endpoints))
        process = start_process(
            [str(self.rasa_bin), "run", "--enable-api", "--interface", "127.0.0.1",
             "--port", str(self.port), "--model", str(self.model),
             "--credentials", str(credentials), "--endpoints", str(endpoints)],
            env={"PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false",
                 "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
                 **self.env},
            cwd=self.workdir,
        )
        if self.server is None:
            self.server = RasaServer(self.url, process, self.peers)
        else:
            self.server.process = process

    def wait_ready(self) -> RasaServer:
        assert self.server is not None, "start() first"
        process = self.server.process
        deadline = time.monotonic() + rasa_start_timeout()
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"Rasa exited at start:\n{process.output()[-8000:]}")
            try:
                status = requests.get(f"{self.url}/status", timeout=2)
                if status.status_code == 200:
                    assert status.json().get("model_file"), f"no model: {status.text}"
                    return self.server
            except requests.RequestException:
                pass
            time.sleep(0.2)
        process.stop()
        raise RuntimeError(f"Rasa not ready in {rasa_start_timeout()}s:\n"
                           f"{process.output()[-8000:]}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.process.stop()

    def restart(self) -> RasaServer:
        """Stop Rasa and start it again: same port, working directory and configuration."""
        self.stop()
        self.start()
        return self.wait_ready()


def start_all(deployments: Sequence[RasaDeployment]) -> list[RasaServer]:
    """Start several Rasa instances side by side and wait for all of them."""
    for deployment in deployments:
        deployment.start()
    try:
        return [deployment.wait_ready() for deployment in deployments]
    except BaseException:
        stop_all(deployments)
        raise


def stop_all(deployments: Sequence[RasaDeployment]) -> None:
    """Stop several Rasa instances at once (each takes seconds to shut down)."""
    running = [d.server.process for d in deployments if d.server and d.server.process.alive()]
    for process in running:
        process.popen.terminate()
    for process in running:
        process.stop()  # waits, and kills what did not stop in time


# -- a load balancer in front of the action servers --------------------------------------


class ActionProxy:
    """An HTTP proxy on a free loopback port forwarding to one backend at a time; the test
    switches the backend (`route_to`) and sees which backend served each call (`hits`)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.hits: dict[str, int] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                backend = proxy.backend
                proxy.hits[backend] = proxy.hits.get(backend, 0) + 1
                try:
                    resp = requests.request(
                        self.command, backend + self.path, data=body, timeout=60,
                        headers={"Content-Type": self.headers.get("Content-Type",
                                                                  "application/json")})
                    status, content = resp.status_code, resp.content
                    content_type = resp.headers.get("Content-Type", "application/json")
                except requests.RequestException as exc:
                    status, content, content_type = 502, str(exc).encode(), "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = _forward
            do_POST = _forward

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def route_to(self, backend: str) -> None:
        self.backend = backend

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- conversation helpers ----------------------------------------------------------------


def matches_responses(texts: Sequence[str], responses: Sequence[str]) -> bool:
    """Whether `texts` (bot messages as a channel delivers them: Rasa splits a response at
    blank lines) are exactly `responses`, in order."""
    if not responses:
        return not texts
    first, rest = responses[0], responses[1:]
    for end in range(1, len(texts) - len(rest) + 1):
        if is_response("\n\n".join(texts[:end]), first) and matches_responses(texts[end:], rest):
            return True
    return False


def expect_rest(chat: Conversation, text: str, *responses: str) -> list[str]:
    """Like `Conversation.expect`, but a response may arrive split in several messages."""
    texts = chat.say(text)
    assert matches_responses(texts, responses), (
        f"after {text!r} expected {list(responses)}, the bot said {texts}\n"
        f"{chat.rasa.log_tails()}")
    return texts


ERRAND_TURNS = (
    ("I want to talk to support", "utter_ask_cention_errand_form_customer_name"),
    ("Grace Hopper", "utter_ask_cention_errand_form_customer_email"),
    ("grace@example.com", "utter_ask_cention_errand_subject"),
)
ERRAND_SUBJECT = "My invoice shows the wrong VAT number"


def create_errand(say: Callable[..., list[str]]) -> str:
    """Hand the conversation to the support team; returns the errand id. `say(text,
    *responses)` is a channel's expect (REST or socket.io)."""
    for text, response in ERRAND_TURNS:
        say(text, response)
    created = say(ERRAND_SUBJECT, "utter_cention_errand_created")
    return slot_value("\n\n".join(created), "utter_cention_errand_created", "errand_id")


def fire_answer(sandbox: Sandbox, rasa_url: str, errand_id: str, body: str) -> dict[str, Any]:
    """The agent answers in Cention: the simulator posts the callback to Rasa's connector.
    Returns `{"status": <Rasa's HTTP status>, "body": ..., "payload": <the document>}`."""
    resp = requests.post(f"{sandbox.vendor_url('cention')}/_sandbox/answer", json={
        "errand_id": errand_id, "body": body, "callback_url": rasa_url + CALLBACK_PATH,
        "api_secret": CALLBACK_SECRET,
    }, timeout=60)
    resp.raise_for_status()
    return dict(resp.json())


def repost(rasa_url: str, payload: dict[str, Any]) -> requests.Response:
    """Cention calling again with the same document (same callback id): a retry."""
    return requests.post(rasa_url + CALLBACK_PATH, data=json.dumps(payload),
                         headers={"Content-Type": JSONAPI}, timeout=60)


def answers_in(texts: Sequence[str], body: str) -> int:
    """How many times the agent's answer `body` appears in `texts`."""
    return sum(1 for text in texts if body in text)

"""The reference bot running for real: Rasa Open Source 3.6.21, the action server, the simulators.

Everything runs on loopback on free ports and is started once per session:

- the simulators (`python -m rasa_service_desk.sandbox`, this environment);
- the action server (`python -m rasa_sdk --actions actions`, this environment) with SANDBOX=1;
- a model trained by `scripts/train` from `domain/`, `data/` and `config/config.yml` (reused
  from `models/` while those are unchanged);
- `rasa run --enable-api` from `.venv-rasa`, with `credentials.yml` and `endpoints.yml`
  generated from the shipped ones into a temporary folder (ports, the errand registry file).

Where `.venv-rasa` is missing the tests are skipped with the reason, or fail when CI=true or
REQUIRE_RASA=1: in CI a missing Rasa is a broken run, never a green one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN
from tests.e2e.bot import CALLBACK_SECRET, RasaServer
from tests.e2e.deploy import ActionProxy
from tests.support.servers import (
    ROOT,
    ActionServer,
    Sandbox,
    free_port,
    running_action_server,
    start_process,
    wait_until_ready,
)

RASA_ENV = ROOT / ".venv-rasa"
RASA_BIN = RASA_ENV / "bin" / "rasa"
#: Rasa imports TensorFlow on start; a busy CI machine can take a while.
RASA_START_TIMEOUT = float(os.environ.get("E2E_RASA_START_TIMEOUT", "300"))
TRAIN_TIMEOUT = 900
CENTION_CONNECTOR = "rasa_service_desk.connectors.cention.CentionInput"


@pytest.fixture(scope="session")
def rasa_bin() -> Path:
    """`.venv-rasa/bin/rasa`, or a skip (a failure in CI) saying how to build it."""
    if RASA_BIN.exists():
        return RASA_BIN
    message = (f"Rasa Open Source 3.6.21 is not installed at {RASA_ENV}: build it with "
               "`make .venv-rasa/.ok` (needs Python 3.10, see PYTHON310)")
    if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_RASA") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def rasa_model(rasa_bin: Path) -> Path:
    """The reference bot's model (trained now unless `models/` has one for these inputs)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "train")], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "RASA": str(rasa_bin)}, timeout=TRAIN_TIMEOUT, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"training the reference bot failed:\n{result.stderr[-6000:]}",
                    pytrace=False)
    return ROOT / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference-bot")


@pytest.fixture(scope="session")
def errand_registry(runtime_dir: Path) -> Path:
    """The shared state (SQLite, one host): the action server records errands there, the
    connector finds them, the REST channel shows what was held."""
    return runtime_dir / "state.sqlite3"


@pytest.fixture(scope="session")
def rasa_port() -> int:
    """Rasa's port, chosen before the action server starts: its outbox tells Rasa there."""
    return free_port()


def action_server_env(sandbox: Sandbox, errand_registry: Path, rasa_port: int
                      ) -> dict[str, str]:
    """The action servers' environment: every vendor pointed at the simulators, the shared
    state, and an outbox (on, the default) that looks every 0.2 s, waits at most 1 s between
    two attempts, and tells this run's Rasa."""
    return {
        "SANDBOX": "1",
        "SANDBOX_URL": sandbox.url,
        "STATE_URL": f"sqlite:///{errand_registry}",
        "OUTBOX_RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "OUTBOX_POLL_SECONDS": "0.2",
        "OUTBOX_MAX_BACKOFF_SECONDS": "1",
    }


@pytest.fixture(scope="session")
def bot_action_server(sandbox: Sandbox, errand_registry: Path,
                      rasa_port: int) -> Iterator[ActionServer]:
    """The real action server of this environment (the default configuration)."""
    with running_action_server(action_server_env(sandbox, errand_registry, rasa_port)) as server:
        yield server


@pytest.fixture(scope="session")
def try_again_action_server(sandbox: Sandbox, errand_registry: Path,
                            rasa_port: int) -> Iterator[ActionServer]:
    """The same without the outbox (`OUTBOX_ENABLED=0`, still supported): a vendor outage is
    told to the customer, who says "try again"."""
    with running_action_server({**action_server_env(sandbox, errand_registry, rasa_port),
                                "OUTBOX_ENABLED": "0"}) as server:
        yield server


@pytest.fixture(scope="session")
def action_proxy(bot_action_server: ActionServer) -> Iterator[ActionProxy]:
    """Rasa's action endpoint: the default action server unless a test asks for the one
    without the outbox (`without_outbox`)."""
    proxy = ActionProxy(bot_action_server.url)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def without_outbox(rasa_server: RasaServer, action_proxy: ActionProxy,
                   try_again_action_server: ActionServer,
                   bot_action_server: ActionServer) -> Iterator[RasaServer]:
    """The reference bot, for one test, running its actions without the outbox."""
    action_proxy.route_to(try_again_action_server.url)
    try:
        yield rasa_server
    finally:
        action_proxy.route_to(bot_action_server.url)


def connector_settings(sandbox: Sandbox, errand_registry: Path) -> dict[str, Any]:
    """The Cention connector's keys for this run: the test's errand registry, a known
    callback secret, and the simulator as the attachment host."""
    return {"api_secret": CALLBACK_SECRET, "state_url": f"sqlite:///{errand_registry}",
            "base_url": f"{sandbox.vendor_url('cention')}/s/demo",
            "attachment_token": SANDBOX_ERRAND_TOKEN}


def write_runtime_config(directory: Path, action_server_url: str,
                         connector: dict[str, Any]) -> tuple[Path, Path]:
    """`credentials.yml` and `endpoints.yml` for this run, derived from the shipped ones."""
    credentials = yaml.safe_load((ROOT / "config" / "credentials.yml").read_text()) or {}
    assert CENTION_CONNECTOR in credentials, "config/credentials.yml lacks the Cention connector"
    credentials[CENTION_CONNECTOR] = {**(credentials[CENTION_CONNECTOR] or {}), **connector}
    endpoints = yaml.safe_load((ROOT / "config" / "endpoints.yml").read_text()) or {}
    endpoints["action_endpoint"] = {"url": f"{action_server_url}/webhook"}
    credentials_path = directory / "credentials.yml"
    endpoints_path = directory / "endpoints.yml"
    credentials_path.write_text(yaml.safe_dump(credentials))
    endpoints_path.write_text(yaml.safe_dump(endpoints))
    return credentials_path, endpoints_path


@pytest.fixture(scope="session")
def rasa_server(rasa_bin: Path, rasa_model: Path, bot_action_server: ActionServer,
                action_proxy: ActionProxy, sandbox: Sandbox, runtime_dir: Path,
                errand_registry: Path, rasa_port: int) -> Iterator[RasaServer]:
    """`rasa run --enable-api` on its port with the generated credentials and endpoints,
    reaching the action server through `action_proxy`."""
    credentials, endpoints = write_runtime_config(
        runtime_dir, action_proxy.url, connector_settings(sandbox, errand_registry))
    port = rasa_port
    process = start_process(
        [str(rasa_bin), "run", "--enable-api", "--interface", "127.0.0.1",
         "--port", str(port), "--model", str(rasa_model),
         "--credentials", str(credentials), "--endpoints", str(endpoints)],
        env={"PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false",
             "STATE_URL": f"sqlite:///{errand_registry}",
             "TF_CPP_MIN_LOG_LEVEL": "2", "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
        cwd=runtime_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/status", process, timeout=RASA_START_TIMEOUT)
        status = requests.get(f"{url}/status", timeout=10).json()
        assert status.get("model_file"), f"Rasa started without a model: {status}"
        yield RasaServer(url, process, {"action server": bot_action_server.process})
    finally:
        process.stop()

"""A designer's fresh bot, made by Rasa Open Source 3.6.21 itself, gets ONE integration by the
documented recipe; then the real Rasa, the real action server and the simulators talk to it.

Once per session `rasa init --no-prompt` makes the bot (it also trains a model, which is
thrown away with its `.rasa/` cache), and the designer's own action is added to it:
`action_bot_own` in `actions/actions.py`, declared in `domain.yml` and run by the rasa-init
rule for "are you a bot?". Per vendor the folder is copied and, in a background thread, the
recipe's offline steps run in it, two bots at a time (NEWBOT_TRAIN_JOBS): one training keeps
about one core busy, and two side by side took 100 to 130 s where one alone took 90 to 100 s
on the 2-core development machine:

- step 2: `<env>/bin/python -m rasa_service_desk add <vendor> --bot <folder>`, from the
  environment the package is installed into;
- step 3: `from rasa_service_desk.actions import <vendor>  # noqa: F401` in the bot's own
  actions package (`actions/actions.py` or `actions/__init__.py`, both documented);
- step 5: `rasa data validate --domain domain --data data`, then `rasa train --domain domain`.

The vendor's test (fixture `new_bot`) then does the run-time steps, all from the bot's folder
on free loopback ports:

- step 4: `action_endpoint` in the bot's `endpoints.yml` (the port is only known now);
- step 6, Cention only: the callback channel in the bot's `credentials.yml`, and `rest:`
  replaced by the package's REST channel, as `python -m rasa_service_desk add cention` says;
- the action server `<env>/bin/python -m rasa_sdk --actions actions` with PYTHONPATH unset,
  so `actions` is the bot's own package and the integration comes from the installed
  package, with SANDBOX=1 and SANDBOX_URL as its only settings;
- `rasa run --enable-api` with the bot's own `credentials.yml`, `endpoints.yml` and `models/`.

Where `.venv-rasa` is missing the tests are skipped with the reason, or fail when CI=true or
REQUIRE_RASA=1. The bots, their logs and models stay in pytest's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from rasa_service_desk.bundles import INTEGRATIONS, SHARED, read_bundle_file
from tests.e2e.bot import Conversation, RasaServer
from tests.e2e.conftest import (
    CENTION_CONNECTOR,
    RASA_BIN,
    RASA_ENV,
    RASA_START_TIMEOUT,
    TRAIN_TIMEOUT,
    connector_settings,
)
from tests.support.servers import (
    ROOT,
    ActionServer,
    Process,
    Sandbox,
    free_port,
    wait_until_ready,
)

#: Bots prepared (validated and trained) at the same time.
TRAIN_JOBS = int(os.environ.get("NEWBOT_TRAIN_JOBS", "2"))
INIT_TIMEOUT = 900
STEP_TIMEOUT = 300
#: The drop-in for Rasa's `rest:` that shows the customer what was held for them.
REST_CHANNEL = "rasa_service_desk.connectors.rest.RestInput"


@dataclass(frozen=True)
class Install:
    """A virtualenv the package is installed into, as the recipe's step 1 offers."""

    venv: str
    description: str

    @property
    def python(self) -> Path:
        return ROOT / self.venv / "bin" / "python"


#: `pip install <repo> -c constraints/rasa-3.6.21-py310.txt` into Rasa's own environment.
RASA_ENVIRONMENT = Install(".venv-rasa", "the Rasa 3.6.21 environment (rasa-sdk 3.6, "
                           "pydantic 1.10)")
#: `pip install <repo>` into an environment of its own, next to Rasa's.
SEPARATE_ENVIRONMENT = Install(".venv", "a separate action-server environment (newest "
                               "rasa-sdk, pydantic 2)")

#: Where each vendor's bot has the package installed (and runs its action server from).
INSTALLS: dict[str, Install] = {
    "benti": SEPARATE_ENVIRONMENT,
    "cention": RASA_ENVIRONMENT,
    "imbee": SEPARATE_ENVIRONMENT,
    "loop": RASA_ENVIRONMENT,
}
#: Which file of the bot's actions package gets the import line (the recipe allows both).
IMPORT_FILES: dict[str, str] = {
    "benti": "actions/actions.py",
    "cention": "actions/__init__.py",
    "imbee": "actions/__init__.py",
    "loop": "actions/actions.py",
}

OWN_ACTION_NAME = "action_bot_own"
OWN_ACTION_TEXT = "This answer comes from the bot's own action code."
OWN_ACTION_CODE = f'''

# The bot's own custom action: the same action server serves it and the integration's.
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher


class ActionBotOwn(Action):
    def name(self) -> Text:
        return "{OWN_ACTION_NAME}"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(text={OWN_ACTION_TEXT!r})
        return []
'''

#: Settings of other runs must not leak into the bots' processes.
FOREIGN_VARIABLES = ("PYTHONPATH", "SANDBOX", "OUTBOX_",
                     *(f"{v.upper()}_" for v in INTEGRATIONS))
QUIET_RASA = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
              "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "PYTHONUNBUFFERED": "1"}


def bot_env(**extra: str) -> dict[str, str]:
    """The environment a designer's shell would have: no PYTHONPATH, no vendor settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_VARIABLES)}
    return {**env, **QUIET_RASA, **extra}


# -- timings -------------------------------------------------------------------------------
TIMINGS = pytest.StashKey[dict[str, Any]]()


def timings(config: pytest.Config) -> dict[str, Any]:
    return config.stash.setdefault(TIMINGS, {})


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    recorded = config.stash.get(TIMINGS, None)
    if not recorded:
        return
    write = terminalreporter.write_line
    terminalreporter.section("newbot: seconds per step (one fresh bot per integration)")
    if "rasa init" in recorded:
        write(f"rasa init --no-prompt (once, trains the init model): {recorded['rasa init']:.0f}")
    for vendor in INTEGRATIONS:
        steps = recorded.get(vendor)
        if steps:
            write(f"{vendor:8} " + "  ".join(f"{k} {v:.0f}" for k, v in steps.items()))
    if "total" in recorded:
        write(f"total (init, {TRAIN_JOBS} bots trained at a time, runs): {recorded['total']:.0f}")


# -- commands --------------------------------------------------------------------------------
@dataclass
class CommandResult:
    args: list[str]
    returncode: int
    output: str
    seconds: float

    def describe(self) -> str:
        return (f"`{' '.join(self.args)}` exited {self.returncode} after {self.seconds:.0f}s:\n"
                f"{self.output[-6000:]}")


class RecipeStepFailed(Exception):
    """A step of the documented recipe did not work: the message says which and why."""


@dataclass
class PreparedBot:
    """A bot folder after the recipe's offline steps (add, import line, validate, train)."""

    vendor: str
    path: Path
    install: Install
    added: CommandResult
    validated: CommandResult
    trained: CommandResult


class BotFactory:
    """Makes the `rasa init` bot once, then prepares one copy per vendor in the background."""

    def __init__(self, rasa: Path, workdir: Path, recorded: dict[str, Any]) -> None:
        self.rasa = rasa
        self.workdir = workdir
        self.recorded = recorded
        self.template = workdir / "rasa-init-bot"
        self._executor = ThreadPoolExecutor(max_workers=TRAIN_JOBS,
                                            thread_name_prefix="newbot")
        self._futures: dict[str, Future[PreparedBot]] = {}
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False

    # The designer's starting point -----------------------------------------------------
    def make_template(self) -> None:
        self.template.mkdir()
        result = self.run([str(self.rasa), "init", "--no-prompt", "--init-dir",
                           str(self.template)], cwd=self.workdir, log="rasa-init",
                          timeout=INIT_TIMEOUT)
        if result.returncode != 0:
            raise RecipeStepFailed(f"rasa init failed: {result.describe()}")
        self.recorded["rasa init"] = result.seconds
        # The init model and its training cache are not part of the bot's sources.
        for generated in ("models", ".rasa"):
            shutil.rmtree(self.template / generated, ignore_errors=True)
        add_own_action(self.template)

    # Per vendor ----------------------------------------------------------------------------
    def prepare(self, vendors: list[str]) -> None:
        with self._lock:
            for vendor in vendors:
                if vendor not in self._futures:
                    self._futures[vendor] = self._executor.submit(self._prepare, vendor)

    def bot(self, vendor: str) -> PreparedBot:
        self.prepare([vendor])
        return self._futures[vendor].result(timeout=4 * TRAIN_TIMEOUT)

    def _prepare(self, vendor: str) -> PreparedBot:
        path = self.workdir / vendor
        shutil.copytree(self.template, path)
        install = INSTALLS[vendor]
        steps: dict[str, float] = self.recorded.setdefault(vendor, {})

        added = self.run([str(install.python), "-m", "rasa_service_desk", "add", vendor,
                          "--bot", str(path)], cwd=self.workdir, log=f"{vendor}-add")
        if added.returncode != 0:
            raise RecipeStepFailed(f"step 2 (add {vendor}) failed: {added.describe()}")
        import_file = path / IMPORT_FILES[vendor]
        with import_file.open("a", encoding="utf-8") as file:
            file.write(f"\nfrom rasa_service_desk.actions import {vendor}  # noqa: F401\n")

        validated = self.run([str(self.rasa), "data", "validate", "--domain", "domain",
                              "--data", "data"], cwd=path, log=f"{vendor}-validate")
        steps["validate"] = validated.seconds
        if validated.returncode != 0:
            raise RecipeStepFailed(f"step 5 (rasa data validate) failed for {vendor}: "
                                   f"{validated.describe()}")
        trained = self.run([str(self.rasa), "train", "--domain", "domain"], cwd=path,
                           log=f"{vendor}-train", timeout=TRAIN_TIMEOUT)
        steps["train"] = trained.seconds
        if trained.returncode != 0 or not list((path / "models").glob("*.tar.gz")):
            raise RecipeStepFailed(f"step 5 (rasa train) failed for {vendor}: "
                                   f"{trained.describe()}")
        return PreparedBot(vendor, path, install, added, validated, trained)

    # Processes -------------------------------------------------------------------------------
    def run(self, args: list[str], cwd: Path, log: str,
            timeout: float = STEP_TIMEOUT) -> CommandResult:
        """Run a command to completion (output kept in `<workdir>/logs/<log>.log`)."""
        log_path = self.workdir / "logs" / f"{log}.log"
        log_path.parent.mkdir(exist_ok=True)
        started = time.monotonic()
        with log_path.open("wb") as out:
            with self._lock:  # `close()` either sees this process or stops it starting
                if self._closed:
                    raise RecipeStepFailed("the test session is over")
                popen = subprocess.Popen(args, cwd=cwd, env=bot_env(), stdout=out,
                                         stderr=subprocess.STDOUT)
                self._running.add(popen)
            try:
                returncode = popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)
                returncode = -9
            finally:
                with self._lock:
                    self._running.discard(popen)
        return CommandResult(args, returncode, log_path.read_text(errors="replace"),
                             time.monotonic() - started)

    def close(self) -> None:
        """Cancel what has not started; stop what is running (a test failed early)."""
        with self._lock:
            self._closed = True
            running = list(self._running)
        for future in self._futures.values():
            future.cancel()
        for popen in running:
            popen.terminate()
        self._executor.shutdown(wait=True)


def add_own_action(bot: Path) -> None:
    """The designer's own action, as a rasa-init bot grows one before any integration."""
    with (bot / "actions" / "actions.py").open("a", encoding="utf-8") as file:
        file.write(OWN_ACTION_CODE)
    with (bot / "domain.yml").open("a", encoding="utf-8") as file:
        file.write(f"\nactions:\n  - {OWN_ACTION_NAME}\n")
    rules = bot / "data" / "rules.yml"
    text = rules.read_text(encoding="utf-8")
    step = "  - action: utter_iamabot\n"
    assert text.count(step) == 1, f"rasa init's rules.yml changed:\n{text}"
    rules.write_text(text.replace(step, f"{step}  - action: {OWN_ACTION_NAME}\n"),
                     encoding="utf-8")


def start_in_bot(args: list[str], bot: Path, name: str, env: dict[str, str]) -> Process:
    """A server started from the bot's folder, its output in `<bot>/logs/<name>.log`."""
    log_path = bot / "logs" / f"{name}.log"
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("wb") as out:
        popen = subprocess.Popen(args, cwd=bot, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Process(popen, log_path)


# -- the run-time steps of the recipe --------------------------------------------------------
def add_action_endpoint(bot: Path, port: int) -> None:
    """Step 4: rasa init's endpoints.yml has `action_endpoint` commented out; add it."""
    path = bot / "endpoints.yml"
    assert "action_endpoint" not in (yaml.safe_load(path.read_text()) or {})
    with path.open("a", encoding="utf-8") as file:
        file.write(f'\naction_endpoint:\n  url: "http://127.0.0.1:{port}/webhook"\n')


def add_cention_channel(bot: Path, sandbox: Sandbox) -> None:
    """Step 6: the callback channel in credentials.yml, with the keys the reference bot's
    e2e tests pass (secret, attachment host and token), and rasa init's `rest:` replaced by
    the package's REST channel, which shows the customer an answer held for them (as `add`
    says). The shared state where the action server records errands and the channel finds
    them is left to its default, a file in the working directory: both processes run from
    the bot's folder, so they must agree without further settings."""
    path = bot / "credentials.yml"
    text = path.read_text(encoding="utf-8")
    assert CENTION_CONNECTOR not in (yaml.safe_load(text) or {})
    assert text.count("\nrest:\n") == 1, f"rasa init's credentials.yml changed:\n{text}"
    text = text.replace("\nrest:\n", f"\n{REST_CHANNEL}:\n")
    settings = connector_settings(sandbox, bot / "not-used")
    keys = {key: settings[key] for key in ("api_secret", "base_url", "attachment_token")}
    text += "\n" + yaml.safe_dump({CENTION_CONNECTOR: keys}, default_flow_style=False)
    path.write_text(text, encoding="utf-8")


# -- replies, matched against the NEW bot's domain ------------------------------------------
class BotResponses:
    """The responses of a bot's `domain/` folder, to match what the bot says."""

    def __init__(self, domain_dir: Path) -> None:
        self.responses: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(domain_dir.glob("*.yml")):
            part = yaml.safe_load(path.read_text()) or {}
            self.responses.update(part.get("responses") or {})

    def _regexes(self, name: str, variable: str | None = None) -> list[re.Pattern[str]]:
        variations = self.responses.get(name)
        assert variations, f"no response {name!r} in the bot's domain"
        regexes = []
        for variation in variations:
            parts = re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", variation["text"])
            regex = "".join(
                (f"(?P<{p[1:-1]}>.+?)" if p == "{" + str(variable) + "}" else ".+?")
                if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts)
            regexes.append(re.compile(regex, re.DOTALL))
        return regexes

    def matches(self, text: str, name: str) -> bool:
        return any(r.fullmatch(text) for r in self._regexes(name))

    def value(self, text: str, name: str, variable: str) -> str:
        for regex in self._regexes(name, variable):
            match = regex.fullmatch(text)
            if match:
                return match.group(variable)
        raise AssertionError(f"{text!r} is not an utterance of {name}")


@dataclass
class BotChat(Conversation):
    """A REST-channel conversation whose replies are matched against the new bot's domain."""

    responses: BotResponses | None = None

    def expect(self, text: str, *responses: str,
               metadata: dict[str, Any] | None = None) -> list[str]:
        assert self.responses is not None
        known = self.responses
        texts = self.say(text, metadata)
        assert len(texts) == len(responses) and all(
            known.matches(t, r) for t, r in zip(texts, responses, strict=True)
        ), (f"after {text!r} expected {list(responses)}, the bot said {texts}\n"
            f"slots: {self.slots()}\n{self.rasa.log_tails()}")
        return texts


@dataclass
class RunningBot:
    """A prepared bot served by its own action server and `rasa run`."""

    prepared: PreparedBot
    rasa: RasaServer
    action_server: ActionServer
    responses: BotResponses
    #: The action server's output once it answered /health and /actions (before any turn).
    startup_log: str
    served_actions: list[str] = field(default_factory=list)

    @property
    def vendor(self) -> str:
        return self.prepared.vendor

    def chat(self) -> BotChat:
        return BotChat(self.rasa, f"newbot-{uuid.uuid4().hex[:12]}", responses=self.responses)


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def newbot_rasa() -> Path:
    """`.venv-rasa/bin/rasa`, or a skip (a failure in CI) saying how to build it."""
    if RASA_BIN.exists():
        return RASA_BIN
    message = (f"Rasa Open Source 3.6.21 is not installed at {RASA_ENV}: build it with "
               "`make .venv-rasa/.ok` (needs Python 3.10, see PYTHON310)")
    if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_RASA") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def bot_factory(request: pytest.FixtureRequest, newbot_rasa: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotFactory]:
    """`rasa init` once; then every selected vendor's bot is prepared in the background."""
    started = time.monotonic()
    recorded = timings(request.config)
    factory = BotFactory(newbot_rasa, tmp_path_factory.mktemp("newbot"), recorded)
    try:
        factory.make_template()
        selected = [item.callspec.params["new_bot"] for item in request.session.items
                    if "new_bot" in getattr(getattr(item, "callspec", None), "params", {})]
        factory.prepare(list(dict.fromkeys(selected)))
        yield factory
    finally:
        factory.close()
        recorded["total"] = time.monotonic() - started


@pytest.fixture
def new_bot(request: pytest.FixtureRequest, bot_factory: BotFactory, newbot_rasa: Path,
            sandbox: Sandbox) -> Iterator[RunningBot]:
    """The vendor's bot (indirect parameter) running: its action server, then `rasa run`."""
    vendor: str = request.param
    prepared = bot_factory.bot(vendor)
    steps = timings(request.config).setdefault(vendor, {})
    started = time.monotonic()
    bot = prepared.path

    action_port = free_port()
    add_action_endpoint(bot, action_port)
    if vendor == "cention":
        add_cention_channel(bot, sandbox)
    actions = start_in_bot(
        [str(prepared.install.python), "-m", "rasa_sdk", "--actions", "actions",
         "--port", str(action_port)],
        # Without the outbox (`OUTBOX_ENABLED=0`, still supported): the conversations here
        # show a vendor failure told to the customer and "try again" recovering it.
        bot, "action-server", bot_env(SANDBOX="1", SANDBOX_URL=sandbox.url,
                                      OUTBOX_ENABLED="0"))
    try:
        action_url = f"http://127.0.0.1:{action_port}"
        wait_until_ready(f"{action_url}/health", actions)
        action_server = ActionServer(action_url, actions)
        served = action_server.actions()
        startup_log = actions.output()

        rasa_port = free_port()
        rasa = start_in_bot(
            [str(newbot_rasa), "run", "--enable-api", "--interface", "127.0.0.1",
             "--port", str(rasa_port)], bot, "rasa", bot_env())
        try:
            rasa_url = f"http://127.0.0.1:{rasa_port}"
            wait_until_ready(f"{rasa_url}/status", rasa, timeout=RASA_START_TIMEOUT)
            steps["start"] = time.monotonic() - started
            running = RunningBot(prepared, RasaServer(rasa_url, rasa,
                                                      {"action server": actions}),
                                 action_server, BotResponses(bot / "domain"), startup_log,
                                 served)
            conversation_started = time.monotonic()
            yield running
            steps["conversation"] = time.monotonic() - conversation_started
        finally:
            rasa.stop()
    finally:
        actions.stop()


def bundle_responses(vendor: str) -> set[str]:
    """The responses the vendor's bundle (with the shared one) declares."""
    names: set[str] = set()
    for name in (SHARED, vendor):
        domain = yaml.safe_load(read_bundle_file("domain", f"{name}.yml")) or {}
        names |= set(domain.get("responses") or {})
    return names

"""Every setting refuses a wrong value at startup, naming the variable.

The walk below covers every declared field of every registered integration and of the global
settings, so a setting added later is tried too: a field gets wrong values from its type
(bool, int, float, dict), from being a URL (it is what `for_sandbox()` redirects to the
simulators, or its default is a URL), or from `EXTRA_WRONG`. A plain text setting with no
wrong value at all must be listed in `FREE_TEXT`, so it cannot slip through unnoticed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.settings import (
    INTEGRATIONS,
    EnvironmentSettings,
    GlobalSettings,
    IntegrationSettings,
    check_url,
    insecure_http,
    load_integrations,
    settings_class,
)
from tests.support.servers import ROOT, free_port

SANDBOX_PROBE = "http://127.0.0.1:9"

#: Text settings for which no value is wrong (names, ids, secrets' free form).
FREE_TEXT = {
    "LOG_HASH_KEY",
    "BENTI_API_KEY", "BENTI_API_SECRET",
    "CENTION_TOKEN", "CENTION_LIBRARY_TOKEN", "CENTION_ERRAND_TOKEN",
    "CENTION_REPORT_TOKEN", "CENTION_CONTACT_TOKEN", "CENTION_CLOSING_USER_ID",
    "IMBEE_AUTH_TOKEN", "IMBEE_CORPORATE_TOKEN", "IMBEE_BOT_ID", "IMBEE_AGENT_IDS",
    "IMBEE_USER_ID_SALT",
    "LOOP_AUTH_TOKEN", "LOOP_LOCATION", "LOOP_SURVEY", "LOOP_LOOP_TYPE", "LOOP_SOURCE",
    "LOOP_DEVICE_ID", "LOOP_FALLBACK_LANGUAGE", "LOOP_VERIFIED_EMAIL_METADATA_KEY",
}

#: Wrong values beyond what a field's type or URL-ness gives.
EXTRA_WRONG: dict[str, list[str]] = {
    "LOG_LEVEL": ["loud", "verbose", "5"],
    "HTTP_POOL_SIZE": ["0", "-1", "70000"],
    "HTTP_POOL_SIZE_PER_HOST": ["0", "100000"],
    "ACTION_SERVER_GC_THRESHOLD": ["-1", "10", "699", "20000000"],
    "LOG_PHONE_REGION": ["XX", "Spain", "ES,ZZ"],
    "ACTION_SERVER_TOKEN": ["too-short-token", "has spaces in the middle of it"],
    "ACTION_DEADLINE_SECONDS": ["0", "-1", "121", "nan", "inf"],
    "IMBEE_DEFAULT_REGION": ["Spain", "E5", "XX"],
    "LOOP_CUSTOM_FIELDS": ["not json", "[1, 2]", '{"room": ""}', '{"not a slot!": "x"}'],
    "CENTION_MAX_SUGGESTIONS": ["11", "-1"],
    "CENTION_CACHE_TTL_SECONDS": ["-1"],
    "CENTION_TIMEZONE": ["Mars/Olympus_Mons", "GMT+25"],
    "LOOP_LOCATIONS_CACHE_SECONDS": ["-1"],
    "CENTION_CONTACT_CARD_CUID_SLOT": ["not a slot!", "1st"],
    "STATE_URL": ["ftp://example.com/state", "postgres://db/state"],
    "STATE_RETENTION_DAYS": ["0", "-1", "100000"],
    "SHARED_FILE_HOSTS": ["ftp://files.example.com", "files.example.com/path?x=1", "*"],
}
#: Every vendor's timeout and retry settings (the shared base class).
for _name in INTEGRATIONS:
    _prefix = settings_class(_name).env_prefix
    EXTRA_WRONG[f"{_prefix}TIMEOUT_SECONDS"] = ["0", "-5", "120.5", "3600", "nan", "inf"]
    EXTRA_WRONG[f"{_prefix}RETRY_ATTEMPTS"] = ["0", "-1", "11", "100"]

WRONG_BY_TYPE: dict[type, list[str]] = {
    bool: ["maybe", "2"],
    int: ["several", "1.5"],
    float: ["soon"],
    dict: ["not json"],
}
WRONG_URLS = ["vendor.test/", "vendor.test", "localhost:8765", "ftp://vendor.test",
              "https:///no-host", "https://user:secret@vendor.test", "https://vendor.test?x=1",
              "https://vendor .test", "https://vendor.test:99999", "https://vendor..test"]
WRONG_VENDOR_URLS = [*WRONG_URLS, "http://vendor.test", "http://10.0.0.8/api"]


def _fields(cls: type[BaseModel]) -> dict[str, Any]:
    """Field name -> its annotation, on pydantic 2 and 1.10."""
    model_fields = getattr(cls, "model_fields", None)
    if model_fields is not None:
        return {name: info.annotation for name, info in model_fields.items()}
    legacy: Any = cls
    return {name: info.outer_type_ for name, info in legacy.__fields__.items()}


def _optional_of(annotation: Any) -> Any:
    """`int` for `int | None`; any other annotation as it is."""
    args = typing.get_args(annotation)
    others = [arg for arg in args if arg is not type(None)]
    return others[0] if type(None) in args and len(others) == 1 else annotation


def _base_type(annotation: Any) -> Any:
    """`int` for `int | None`, `dict` for `dict[str, str]`, `float` for pydantic 1.10's
    constrained `ConstrainedFloatValue`, ..."""
    annotation = _optional_of(annotation)
    annotation = typing.get_origin(annotation) or annotation
    if isinstance(annotation, type):
        for base in (bool, int, float, dict):
            if issubclass(annotation, base):
                return base
    return annotation


def _default(cls: type[BaseModel], name: str) -> Any:
    value = getattr(cls(), name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _url_fields(cls: type[EnvironmentSettings]) -> set[str]:
    urls = {name for name in _fields(cls)
            if isinstance(_default(cls, name), str)
            and str(_default(cls, name)).startswith(("http://", "https://"))}
    if issubclass(cls, IntegrationSettings):
        sandboxed = cls().for_sandbox(SANDBOX_PROBE)
        urls |= {name for name in _fields(cls)
                 if str(getattr(sandboxed, name)).startswith(SANDBOX_PROBE)}
    return urls


def _groups() -> list[tuple[str, type[EnvironmentSettings]]]:
    from rasa_service_desk.clients.shared_files import SharedFileSettings
    from rasa_service_desk.state import StateSettings

    return [("global", GlobalSettings), ("state", StateSettings),
            ("shared files", SharedFileSettings),
            *((name, settings_class(name)) for name in INTEGRATIONS)]


def _cases() -> tuple[list[tuple[str, str, str]], list[str]]:
    """(integration, variable, wrong value) for every field of every settings group, and the
    variables for which no wrong value is known and that are not declared free text."""
    cases = []
    unclassified = []
    for integration, cls in _groups():
        urls = _url_fields(cls)
        for name, annotation in _fields(cls).items():
            var = cls.env_name(name)
            wrong = list(EXTRA_WRONG.get(var, []))
            if name in urls:
                wrong += WRONG_VENDOR_URLS if cls is not GlobalSettings else WRONG_URLS
            if typing.get_origin(_optional_of(annotation)) is typing.Literal:
                wrong.append("none-of-the-choices")
            else:
                wrong += WRONG_BY_TYPE.get(_base_type(annotation), [])
            if not wrong and var not in FREE_TEXT:
                unclassified.append(var)
            target = integration if integration != "global" else next(iter(INTEGRATIONS))
            cases += [(target, var, value) for value in wrong]
    return cases, unclassified


CASES, UNCLASSIFIED = _cases()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, cls in _groups():
        for name in _fields(cls):
            monkeypatch.delenv(cls.env_name(name), raising=False)


def test_every_setting_of_every_group_is_walked() -> None:
    assert UNCLASSIFIED == [], (
        "no wrong value known for these settings: add some to EXTRA_WRONG, or list them in "
        "FREE_TEXT if every text is valid")
    walked = {var for _, var, _ in CASES} | FREE_TEXT
    for _, cls in _groups():
        for name in _fields(cls):
            assert cls.env_name(name) in walked
    assert {"BENTI_AUTH_URL", "IMBEE_HOST", "LOOP_BASE_URL", "CENTION_BASE_URL",
            "SANDBOX_URL"} <= {var for _, var, value in CASES if value in WRONG_URLS}


@pytest.mark.parametrize(("integration", "var", "value"), CASES,
                         ids=[f"{var}={value[:20]}" for _, var, value in CASES])
def test_a_wrong_value_stops_startup_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, integration: str, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    standalone = {name: cls for name, cls in _groups() if name in ("state", "shared files")}
    with pytest.raises(ConfigurationError) as info:
        if integration in standalone:  # read by whatever needs it, not per integration
            standalone[integration].load(env_file=None)
        else:
            load_integrations([integration], env_file=None)
    lines = info.value.message.splitlines()[1:]
    assert [line.strip().split(":", 1)[0] for line in lines] == [var]
    problem = lines[0].split(":", 1)[1].strip()
    assert problem and "\n" not in problem
    if len(value) >= 4:
        assert value not in info.value.message  # never the value (it may be a secret)


@pytest.mark.parametrize("url", ["https://api.example.com", "https://api.example.com:8443/x/",
                                 "http://127.0.0.1:8765/benti", "http://localhost:1/",
                                 "http://127.8.9.10", "http://[::1]:8765"])
def test_good_vendor_urls_pass(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("BENTI_AUTH_URL", url)
    monkeypatch.setenv("BENTI_API_KEY", "key")
    monkeypatch.setenv("BENTI_API_SECRET", "secret")
    benti = load_integrations(["benti"], env_file=None)["benti"]
    assert benti.settings.auth_url == url.rstrip("/")


def test_plain_http_to_a_vendor_needs_the_operator_s_explicit_opt_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOP_BASE_URL", "http://loop-proxy.internal/api/v1/")
    monkeypatch.setenv("LOOP_AUTH_TOKEN", "token")
    monkeypatch.setenv("LOOP_LOCATION", "1300")
    with pytest.raises(ConfigurationError, match=r"LOOP_BASE_URL: .*ALLOW_INSECURE_HTTP=1"):
        load_integrations(["loop"], env_file=None)
    monkeypatch.setenv("ALLOW_INSECURE_HTTP", "1")
    loop = load_integrations(["loop"], env_file=None)["loop"]
    assert not loop.sandboxed
    assert loop.settings.base_url == "http://loop-proxy.internal/api/v1"


def test_the_opt_in_is_scoped_to_loading() -> None:
    with insecure_http(True):
        assert check_url("http://proxy.example") == "http://proxy.example"
    with pytest.raises(ValueError, match="https://"):
        check_url("http://proxy.example")


def test_global_settings_are_reported_with_the_vendor_s_in_one_go(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX", "maybe")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("BENTI_TIMEOUT_SECONDS", "0")
    with pytest.raises(ConfigurationError) as info:
        load_integrations(["benti"], env_file=None)
    assert info.value.message.splitlines()[1:] == [
        "  SANDBOX: must be 1 or 0 (also true/false, yes/no, on/off)",
        "  LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "  BENTI_TIMEOUT_SECONDS: must be more than 0 and at most 120 seconds",
    ]


def test_log_level_deadline_and_token_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", " debug ")
    settings = GlobalSettings(**GlobalSettings.read_environment(env_file=None))
    assert settings.log_level == "DEBUG"
    assert settings.action_deadline_seconds == 8.0
    assert settings.token == ""
    assert not settings.allow_insecure_http


def test_the_action_server_refuses_to_start_one_line_per_problem(tmp_path: Path) -> None:
    bad = {
        "SANDBOX": "maybe",
        "LOG_LEVEL": "loud",
        "SANDBOX_URL": "ftp://127.0.0.1:8765",
        "ACTION_DEADLINE_SECONDS": "600",
        "ACTION_SERVER_TOKEN": "short-secret",
        "BENTI_AUTH_URL": "api.inbenta.io/",
        "BENTI_TIMEOUT_SECONDS": "0",
        "BENTI_RETRY_ATTEMPTS": "11",
    }
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **bad}
    done = subprocess.run([sys.executable, "-m", "rasa_sdk", "--actions", "actions",
                           "--port", str(free_port())], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    assert "short-secret" not in output
    # "  VARIABLE: problem"; other indented lines (a library's DeprecationWarning quoting
    # its source line, as Rasa's environment prints) are not the server's.
    problems = [line.strip() for line in done.stderr.splitlines()
                if re.match(r"  [A-Z][A-Z0-9_]*: ", line)]
    assert sorted(line.split(":", 1)[0] for line in problems) == sorted(bad)

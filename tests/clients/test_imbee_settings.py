"""IMBEE_* settings: parsing, the agent pool, the simulator copy, half-configured setups."""

from __future__ import annotations

import pytest

from rasa_service_desk.clients import settings as settings_module
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.imbee.settings import (
    SANDBOX_AGENT_IDS,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_CORPORATE_TOKEN,
    ImbeeSettings,
)

FULL = {
    "IMBEE_HOST": "https://imbee.example.com/api/",
    "IMBEE_AUTH_TOKEN": "auth-value",
    "IMBEE_CORPORATE_TOKEN": "corporate-value",
    "IMBEE_BOT_ID": "bot-idsha",
    "IMBEE_AGENT_IDS": " agent-1, agent-2 ,agent-1,, ",
    "IMBEE_USER_ID_SALT": "salt-value",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*FULL, "IMBEE_MAX_RETRIES", "IMBEE_VALIDITY_DAYS", "IMBEE_DEFAULT_REGION",
                 "SANDBOX", "SANDBOX_URL"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings_module, "INTEGRATIONS",
                        {"imbee": "rasa_service_desk.clients.imbee.settings:ImbeeSettings"})
    return monkeypatch


def test_reads_every_variable(env: pytest.MonkeyPatch) -> None:
    for name, value in FULL.items():
        env.setenv(name, value)
    env.setenv("IMBEE_MAX_RETRIES", "3")
    env.setenv("IMBEE_VALIDITY_DAYS", "14")
    env.setenv("IMBEE_DEFAULT_REGION", "es")
    loaded = ImbeeSettings.load(env_file=None)
    assert loaded.host == "https://imbee.example.com/api"
    assert loaded.auth_token.get_secret_value() == "auth-value"
    assert loaded.agent_pool == ("agent-1", "agent-2")
    assert (loaded.max_retries, loaded.validity_days, loaded.phone_region) == (3, 14, "ES")
    assert loaded.missing_credentials() == []
    assert "auth-value" not in repr(loaded) and "salt-value" not in repr(loaded)
    assert {"auth-value", "corporate-value", "salt-value"} <= set(loaded.secret_values())


@pytest.mark.parametrize(("name", "value"), [
    ("IMBEE_HOST", "imbee.example.com"),
    ("IMBEE_MAX_RETRIES", "0"),
    ("IMBEE_VALIDITY_DAYS", "-1"),
    ("IMBEE_DEFAULT_REGION", "Spain"),
])
def test_rejects_nonsense(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigurationError):
        ImbeeSettings.load(env_file=None)


def test_sandbox_copy_points_at_the_simulator_with_demo_credentials(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("IMBEE_VALIDITY_DAYS", "2")
    sandboxed = ImbeeSettings.load(env_file=None).for_sandbox("http://127.0.0.1:9999")
    assert sandboxed.host == "http://127.0.0.1:9999/imbee"
    assert sandboxed.auth_token.get_secret_value() == SANDBOX_AUTH_TOKEN
    assert sandboxed.corporate_token.get_secret_value() == SANDBOX_CORPORATE_TOKEN
    assert sandboxed.agent_pool == SANDBOX_AGENT_IDS
    assert sandboxed.validity_days == 2
    assert sandboxed.missing_credentials() == []


def test_no_credentials_means_the_simulator(env: pytest.MonkeyPatch) -> None:
    loaded = settings_module.load_integrations(env_file=None)["imbee"]
    assert loaded.sandboxed
    assert loaded.settings.host.endswith("/imbee")


def test_half_configured_stops_startup_naming_what_is_missing(env: pytest.MonkeyPatch) -> None:
    env.setenv("IMBEE_HOST", FULL["IMBEE_HOST"])
    env.setenv("IMBEE_AUTH_TOKEN", "auth-value")
    with pytest.raises(ConfigurationError) as error:
        settings_module.load_integrations(env_file=None)
    for name in ("IMBEE_CORPORATE_TOKEN", "IMBEE_BOT_ID", "IMBEE_AGENT_IDS",
                 "IMBEE_USER_ID_SALT"):
        assert name in error.value.message
    assert "auth-value" not in error.value.message


def test_fully_configured_uses_the_vendor(env: pytest.MonkeyPatch) -> None:
    for name, value in FULL.items():
        env.setenv(name, value)
    loaded = settings_module.load_integrations(env_file=None)["imbee"]
    assert not loaded.sandboxed
    assert loaded.settings.host == "https://imbee.example.com/api"

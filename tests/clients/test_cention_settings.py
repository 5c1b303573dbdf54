"""CENTION_* settings: per-claim tokens with a shared fallback, the simulator copy, and
half-configured setups that must stop the action server with the right variable names."""

from __future__ import annotations

import pytest

from rasa_service_desk.clients import settings as settings_module
from rasa_service_desk.clients.cention.settings import (
    SANDBOX_ERRAND_TOKEN,
    SANDBOX_LIBRARY_TOKEN,
    CentionSettings,
)
from rasa_service_desk.clients.errors import ConfigurationError

VARIABLES = ["CENTION_BASE_URL", "CENTION_TOKEN", "CENTION_LIBRARY_TOKEN",
             "CENTION_ERRAND_TOKEN", "CENTION_ALLOW_INTERNAL_LIBRARIES",
             "CENTION_CACHE_TTL_SECONDS", "CENTION_MAX_SUGGESTIONS", "CENTION_ERRAND_REGISTRY",
             "SANDBOX", "SANDBOX_URL"]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings_module, "INTEGRATIONS",
                        {"cention": "rasa_service_desk.clients.cention.settings:CentionSettings"})
    return monkeypatch


def test_per_claim_tokens(env: pytest.MonkeyPatch) -> None:
    env.setenv("CENTION_BASE_URL", "https://api.cention.com/s/demo/")
    env.setenv("CENTION_LIBRARY_TOKEN", "library-value")
    env.setenv("CENTION_ERRAND_TOKEN", "errand-value")
    env.setenv("CENTION_CACHE_TTL_SECONDS", "60")
    env.setenv("CENTION_MAX_SUGGESTIONS", "5")
    loaded = CentionSettings.load(env_file=None)
    assert loaded.base_url == "https://api.cention.com/s/demo"
    assert (loaded.library_jwt, loaded.errand_jwt) == ("library-value", "errand-value")
    assert (loaded.cache_ttl_seconds, loaded.max_suggestions) == (60, 5)
    assert loaded.allow_internal_libraries is False
    assert loaded.missing_credentials() == []
    assert "library-value" not in repr(loaded)
    assert {"library-value", "errand-value"} <= set(loaded.secret_values())


def test_one_token_for_every_claim(env: pytest.MonkeyPatch) -> None:
    env.setenv("CENTION_BASE_URL", "https://api.cention.com/s/demo")
    env.setenv("CENTION_TOKEN", "shared-value")
    env.setenv("CENTION_ERRAND_TOKEN", "errand-value")
    loaded = CentionSettings.load(env_file=None)
    assert (loaded.library_jwt, loaded.errand_jwt) == ("shared-value", "errand-value")
    assert loaded.missing_credentials() == []


def test_nothing_set_means_the_simulator(env: pytest.MonkeyPatch) -> None:
    [cention] = settings_module.load_integrations(env_file=None).values()
    assert cention.sandboxed
    assert cention.settings.base_url == "http://127.0.0.1:8765/cention/s/demo"
    assert cention.settings.library_jwt == SANDBOX_LIBRARY_TOKEN
    assert cention.settings.errand_jwt == SANDBOX_ERRAND_TOKEN


def test_half_configured_stops_startup_naming_what_is_missing(env: pytest.MonkeyPatch) -> None:
    env.setenv("CENTION_BASE_URL", "https://api.cention.com/s/demo")
    env.setenv("CENTION_LIBRARY_TOKEN", "library-value")
    with pytest.raises(ConfigurationError) as caught:
        settings_module.load_integrations(env_file=None)
    assert "CENTION_ERRAND_TOKEN" in caught.value.message
    assert "CENTION_LIBRARY_TOKEN" not in caught.value.message


@pytest.mark.parametrize(("name", "value"), [
    ("CENTION_BASE_URL", "api.cention.com/s/demo"),
    ("CENTION_CACHE_TTL_SECONDS", "-1"),
    ("CENTION_MAX_SUGGESTIONS", "50"),
])
def test_invalid_values_are_refused(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigurationError):
        CentionSettings.load(env_file=None)

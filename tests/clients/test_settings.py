"""Configuration: real vendor, simulator, or a clear refusal to start."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

from rasa_service_desk.clients import settings as settings_module
from rasa_service_desk.clients.compat import copy_model
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.redact import redact
from rasa_service_desk.clients.settings import IntegrationSettings, load_integrations


class AcmeSettings(IntegrationSettings):
    env_prefix: ClassVar[str] = "ACME_"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")

    base_url: str = "https://api.acme.example"
    api_key: str = ""
    api_secret: SecretStr = SecretStr("")
    queue: int | None = None

    def for_sandbox(self, sandbox_url: str) -> AcmeSettings:
        return copy_model(self, **{"base_url": f"{sandbox_url}/acme", "api_key": "demo",
                                       "api_secret": SecretStr("demo-secret")})


@pytest.fixture(autouse=True)
def only_acme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "INTEGRATIONS",
                        {"acme": f"{__name__}:AcmeSettings"})
    for var in ("ACME_API_KEY", "ACME_API_SECRET", "ACME_QUEUE", "SANDBOX", "SANDBOX_URL"):
        monkeypatch.delenv(var, raising=False)


def test_without_credentials_the_integration_uses_the_simulator() -> None:
    acme = load_integrations(env_file=None)["acme"]
    assert acme.sandboxed
    assert acme.settings.base_url == "http://127.0.0.1:8765/acme"


def test_with_all_credentials_the_real_vendor_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "key-123")
    monkeypatch.setenv("ACME_API_SECRET", "secret-456")
    acme = load_integrations(env_file=None)["acme"]
    assert not acme.sandboxed
    assert acme.settings.base_url == "https://api.acme.example"
    assert acme.settings.api_secret.get_secret_value() == "secret-456"
    assert "secret-456" not in repr(acme.settings)


def test_sandbox_switch_forces_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "key-123")
    monkeypatch.setenv("ACME_API_SECRET", "secret-456")
    monkeypatch.setenv("SANDBOX", "1")
    monkeypatch.setenv("SANDBOX_URL", "http://127.0.0.1:9999/")
    acme = load_integrations(env_file=None)["acme"]
    assert acme.sandboxed
    assert acme.settings.base_url == "http://127.0.0.1:9999/acme"


def test_partial_configuration_names_every_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "key-123")
    monkeypatch.setenv("ACME_QUEUE", "not-a-number")
    with pytest.raises(ConfigurationError) as info:
        load_integrations(env_file=None)
    assert "ACME_QUEUE" in info.value.message
    monkeypatch.setenv("ACME_QUEUE", "3")
    with pytest.raises(ConfigurationError) as info:
        load_integrations(env_file=None)
    assert "ACME_API_SECRET: required when acme is configured" in info.value.message
    assert "key-123" not in info.value.message


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("ACME_API_KEY=from-file\nACME_API_SECRET=file-secret\nACME_QUEUE=4\n")
    acme = load_integrations(env_file=str(env))["acme"]
    assert not acme.sandboxed
    assert acme.settings.queue == 4


def test_loaded_secrets_are_masked_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", "key-123")
    monkeypatch.setenv("ACME_API_SECRET", "s3cr3t-value")
    load_integrations(env_file=None)
    assert "s3cr3t-value" not in redact("auth failed with s3cr3t-value")


def test_global_switches_are_read_from_the_dotenv_file_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOG_LEVEL", "ACTION_DEADLINE_SECONDS", "ACTION_SERVER_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    env = tmp_path / ".env"
    env.write_text("LOG_LEVEL=warning\nACTION_DEADLINE_SECONDS=5\n"
                   "ACTION_SERVER_TOKEN=token-from-the-env-file-0123\n")
    loaded = settings_module.load_global_settings(str(env))
    assert (loaded.log_level, loaded.action_deadline_seconds) == ("WARNING", 5.0)
    assert loaded.token == "token-from-the-env-file-0123"
    assert redact("token-from-the-env-file-0123 leaked") == "*** leaked"
    assert "token-from-the-env-file-0123" not in repr(loaded)


def test_a_problem_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_QUEUE", "many\nlines")
    with pytest.raises(ConfigurationError) as info:
        load_integrations(env_file=None)
    assert info.value.message.splitlines()[1:] == ["  ACME_QUEUE: must be a whole number"]

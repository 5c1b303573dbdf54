"""Settings of the action server: one group per vendor, read from the environment and `.env`.

Each vendor declares a subclass of `IntegrationSettings` in `clients/<vendor>/settings.py`
with its own `env_prefix`, its secrets as `SecretStr`, and which fields are its credentials.
`load_integrations()` reads every group and decides, per vendor:

- all credentials set   -> the real vendor;
- none set, or SANDBOX=1 -> the local simulator (`for_sandbox()`), with a warning in the log;
- some but not all set  -> a `ConfigurationError` naming every missing or invalid variable
  of every vendor at once, so the operator fixes the configuration in one go.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from clients.errors import ConfigurationError
from clients.redact import register_secrets

logger = logging.getLogger(__name__)

ENV_FILE = ".env"

#: Vendor name -> "module:SettingsClass". Adding an integration means adding one line here.
INTEGRATIONS: dict[str, str] = {
    "benti": "clients.benti.settings:BentiSettings",
    "cention": "clients.cention.settings:CentionSettings",
    "imbee": "clients.imbee.settings:ImbeeSettings",
    "loop": "clients.loop.settings:LoopSettings",
}


class IntegrationSettings(BaseSettings):
    """Base of a vendor's settings group."""

    # An empty variable (`BENTI_QUEUE=` in .env.example) means "not set", not "invalid".
    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", frozen=True,
        env_ignore_empty=True,
    )

    #: Field names that together make the integration "configured".
    credential_fields: ClassVar[tuple[str, ...]] = ()

    timeout_seconds: float = 10.0
    retry_attempts: int = 3

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable behind `field_name`, e.g. `BENTI_API_KEY`."""
        prefix = cls.model_config.get("env_prefix", "") or ""
        return f"{prefix}{field_name}".upper()

    def missing_credentials(self) -> list[str]:
        """Names of the credential variables that are not set."""
        missing = []
        for name in self.credential_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value in (None, ""):
                missing.append(self.env_name(name))
        return missing

    def for_sandbox(self, sandbox_url: str) -> IntegrationSettings:
        """A copy pointing at the local simulator under `sandbox_url`, with its demo credentials."""
        raise NotImplementedError

    def secret_values(self) -> list[str]:
        """Every secret of this group, so the log redaction can mask it."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values.append(value.get_secret_value())
        return values


class GlobalSettings(BaseSettings):
    """Switches that apply to every integration."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")

    sandbox: bool = False
    sandbox_url: str = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Integration:
    """One vendor's effective settings and whether they point at the simulator."""

    name: str
    settings: Any
    sandboxed: bool


def settings_class(name: str) -> type[IntegrationSettings]:
    """Import the settings class registered for `name`."""
    module_name, _, class_name = INTEGRATIONS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, IntegrationSettings)):
        raise TypeError(f"{INTEGRATIONS[name]} is not an IntegrationSettings subclass")
    return cls


def _describe(cls: type[IntegrationSettings], exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else ""
        problems.append(f"{cls.env_name(field_name)}: {error['msg']}")
    return problems


def load_integrations(env_file: str | None = ENV_FILE) -> dict[str, Integration]:
    """Read and check every integration's settings; raise one error listing all problems."""
    overrides: dict[str, Any] = {"_env_file": env_file}
    global_settings = GlobalSettings(**overrides)
    problems: list[str] = []
    result: dict[str, Integration] = {}
    for name in INTEGRATIONS:
        cls = settings_class(name)
        try:
            settings = cls(**overrides)
        except ValidationError as exc:
            problems.extend(_describe(cls, exc))
            continue
        missing = settings.missing_credentials()
        partly = 0 < len(missing) < len(cls.credential_fields)
        if partly and not global_settings.sandbox:
            problems.extend(f"{var}: required when {name} is configured" for var in missing)
            continue
        sandboxed = global_settings.sandbox or bool(missing)
        if sandboxed:
            settings = settings.for_sandbox(global_settings.sandbox_url.rstrip("/"))
            logger.warning(
                "%s: no credentials configured, using the local simulator at %s",
                name, global_settings.sandbox_url,
            )
        register_secrets(settings.secret_values())
        result[name] = Integration(name, settings, sandboxed)
    if problems:
        raise ConfigurationError(
            "settings", "invalid configuration:\n  " + "\n  ".join(problems)
        )
    return result

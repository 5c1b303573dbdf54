"""Settings: one group per vendor, read from the environment and `.env`.

Each vendor declares a subclass of `IntegrationSettings` in `clients/<vendor>/settings.py`
with its `env_prefix`, its secrets as `SecretStr`, and which fields are its credentials.
`load_integrations(names)` reads the groups of the integrations a bot uses, and only those,
and decides per vendor:

- all credentials set    -> the real vendor;
- none set, or SANDBOX=1 -> the local simulator (`for_sandbox()`);
- some but not all set   -> a `ConfigurationError` naming every missing or invalid variable
  of the requested vendors at once, so the operator fixes the configuration in one go.

The groups are plain pydantic models filled from the environment by `read_environment()`
(python-dotenv for the file), not pydantic-settings: they then validate the same way on
pydantic 2 and on the pydantic 1.10 that Rasa 3.6 pins, so the actions run in either
environment. Variables of the process win over the file; an empty value counts as unset.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel, SecretStr, ValidationError

from rasa_service_desk.clients.compat import field_names
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.redact import register_secrets

logger = logging.getLogger(__name__)

ENV_FILE = ".env"

#: Vendor name -> "module:SettingsClass". Adding an integration means adding one line here.
INTEGRATIONS: dict[str, str] = {
    "benti": "rasa_service_desk.clients.benti.settings:BentiSettings",
    "cention": "rasa_service_desk.clients.cention.settings:CentionSettings",
    "imbee": "rasa_service_desk.clients.imbee.settings:ImbeeSettings",
    "loop": "rasa_service_desk.clients.loop.settings:LoopSettings",
}

S = TypeVar("S", bound="EnvironmentSettings")


def read_env_file(env_file: str | None) -> dict[str, str]:
    """The variables of `env_file` (missing file: none). An unreadable file is a
    configuration error naming it, not a traceback and not a silent skip."""
    if not env_file or not os.path.lexists(env_file):
        return {}
    if os.path.isdir(env_file):
        raise ConfigurationError("settings", f"{env_file} is a directory, not a .env file")
    try:
        values = dotenv_values(env_file, encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError("settings", f"{env_file} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(
            "settings", f"{env_file} cannot be read ({exc.strerror})") from None
    return {key: value for key, value in values.items() if value is not None}


class EnvironmentSettings(BaseModel):
    """A settings group filled from `<env_prefix><FIELD>` variables."""

    env_prefix: ClassVar[str] = ""

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable behind `field_name`, e.g. `BENTI_API_KEY`."""
        return f"{cls.env_prefix}{field_name}".upper()

    @classmethod
    def read_environment(
        cls, env_file: str | None = ENV_FILE, environ: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Field name -> raw value of every variable of this group that is set and not empty."""
        environ = os.environ if environ is None else environ
        from_file = read_env_file(env_file)
        values: dict[str, str] = {}
        for name in field_names(cls):
            key = cls.env_name(name)
            raw = environ.get(key)
            if raw is None or not raw.strip():
                raw = from_file.get(key)
            if raw is not None and raw.strip():
                values[name] = raw.strip()
        return values

    @classmethod
    def load(
        cls: type[S], env_file: str | None = ENV_FILE, **overrides: Any
    ) -> S:
        """The group as configured; `overrides` (e.g. from credentials.yml) win over variables.
        Raises `ConfigurationError` with one line per invalid variable."""
        values: dict[str, Any] = cls.read_environment(env_file)
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(
                "settings", "invalid configuration:\n  " + "\n  ".join(describe(cls, exc))
            ) from None


def describe(cls: type[EnvironmentSettings], exc: ValidationError) -> list[str]:
    """One line per problem: the variable and what is wrong with it (never its value)."""
    problems = []
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else ""
        problems.append(f"{cls.env_name(field_name)}: {error['msg']}")
    return problems


class IntegrationSettings(EnvironmentSettings):
    """Base of a vendor's settings group."""

    #: Field names that together make the integration "configured".
    credential_fields: ClassVar[tuple[str, ...]] = ()

    timeout_seconds: float = 10.0
    retry_attempts: int = 3

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
        for name in field_names(type(self)):
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values.append(value.get_secret_value())
        return values


class GlobalSettings(EnvironmentSettings):
    """Switches that apply to every integration."""

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


def load_integrations(
    names: Iterable[str] | None = None, env_file: str | None = ENV_FILE
) -> dict[str, Integration]:
    """Read and check the settings of `names` (default: every registered integration);
    raise one error listing all problems. Integrations not named are not read at all."""
    wanted = list(INTEGRATIONS if names is None else names)
    unknown = [name for name in wanted if name not in INTEGRATIONS]
    if unknown:
        raise ConfigurationError("settings", f"unknown integration(s): {', '.join(unknown)}")
    global_settings = GlobalSettings.load(env_file)
    problems: list[str] = []
    result: dict[str, Integration] = {}
    for name in wanted:
        cls = settings_class(name)
        try:
            settings = cls(**cls.read_environment(env_file))
        except ValidationError as exc:
            problems.extend(describe(cls, exc))
            continue
        missing = settings.missing_credentials()
        partly = 0 < len(missing) < len(cls.credential_fields)
        if partly and not global_settings.sandbox:
            problems.extend(f"{var}: required when {name} is configured" for var in missing)
            continue
        sandboxed = global_settings.sandbox or bool(missing)
        if sandboxed:
            settings = settings.for_sandbox(global_settings.sandbox_url.rstrip("/"))
        register_secrets(settings.secret_values())
        result[name] = Integration(name, settings, sandboxed)
    if problems:
        raise ConfigurationError(
            "settings", "invalid configuration:\n  " + "\n  ".join(problems)
        )
    return result

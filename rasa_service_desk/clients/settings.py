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

Every URL setting goes through the one `check_url` (attached with `url_validator`): a
vendor URL must be `https://`; `http://` is accepted for this machine (the simulators) or
when the operator sets `ALLOW_INSECURE_HTTP=1` (a TLS-terminating proxy in between).
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BaseModel, SecretStr, ValidationError

from rasa_service_desk.clients.compat import field_check, field_names
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.pool import (
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_SIZE_PER_HOST,
    MAX_POOL_SIZE,
    configure_pool,
)
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

#: Bounds of every vendor's `<VENDOR>_TIMEOUT_SECONDS` and `<VENDOR>_RETRY_ATTEMPTS`.
MAX_TIMEOUT_SECONDS = 120.0
MIN_RETRY_ATTEMPTS, MAX_RETRY_ATTEMPTS = 1, 10
#: `ACTION_DEADLINE_SECONDS`: the longest a vendor action may take before the customer is
#: told the vendor is unavailable (below Rasa's own timeout of the action call).
DEFAULT_ACTION_DEADLINE_SECONDS = 8.0
#: Young-generation GC threshold of action-server workers (see `rasa_service_desk.plugin`).
DEFAULT_GC_THRESHOLD = 50_000
MAX_GC_THRESHOLD = 10_000_000
MAX_ACTION_DEADLINE_SECONDS = 120.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_TOKEN_LENGTH = 16

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


# -- URLs ------------------------------------------------------------------------------------

_insecure_http_allowed: ContextVar[bool] = ContextVar("insecure_http_allowed", default=False)

HTTPS_EXAMPLE = "https://api.example.com"


@contextmanager
def insecure_http(allowed: bool) -> Iterator[None]:
    """Within the block, vendor URLs may use http:// for any host (ALLOW_INSECURE_HTTP=1)."""
    token = _insecure_http_allowed.set(allowed)
    try:
        yield
    finally:
        _insecure_http_allowed.reset(token)


def is_loopback(host: str) -> bool:
    """True for this machine: localhost, 127.0.0.0/8 and ::1."""
    host = host.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 literal (urlsplit has removed the brackets)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    labels = host.rstrip(".").split(".")
    return all(
        label and len(label) <= 63 and all(ch.isalnum() or ch in "-_" for ch in label)
        for label in labels
    )


def check_url(value: Any, *, vendor: bool = True) -> str:
    """The one check of every URL setting; returns the URL without a trailing slash.

    It must be an absolute http(s) URL with a host and nothing a base URL cannot carry
    (credentials, a query, a fragment). A `vendor` URL must use https://, except for this
    machine (the simulators) or when `ALLOW_INSECURE_HTTP=1` is set. An empty value means
    unset and is returned as is. Messages say what is wrong and what is accepted, and never
    repeat the value (a URL may carry an account name).
    """
    if not isinstance(value, str):
        raise ValueError(f"must be a URL like {HTTPS_EXAMPLE}")
    value = value.strip()
    if not value:
        return value
    accepted = ("https://" if vendor else "http:// or https://")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"must be a URL without spaces or control characters, like "
                         f"{HTTPS_EXAMPLE}")
    if "://" not in value:
        raise ValueError(f"has no scheme: write the full URL starting with {accepted} "
                         f"(like {HTTPS_EXAMPLE})")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"is not a valid URL (bad host or port); expected {accepted}host"
                         "[:port][/path]") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"must start with {accepted} (like {HTTPS_EXAMPLE})")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password (credentials have "
                         "their own settings)")
    host = parts.hostname or ""
    if not host or not _valid_host(host):
        raise ValueError(f"has no valid host name; expected {accepted}host[:port][/path]")
    if port == 0:
        raise ValueError("has an invalid port number (1-65535)")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("must not contain a query (?...) or a fragment (#...): only "
                         f"{accepted}host[:port][/path]")
    if (vendor and scheme == "http" and not is_loopback(host)
            and not _insecure_http_allowed.get()):
        raise ValueError("uses http:// for a host other than this machine: use https://, "
                         "or set ALLOW_INSECURE_HTTP=1 if a TLS-terminating proxy sits in "
                         "between (http:// is otherwise accepted only for localhost, "
                         "127.0.0.0/8 and ::1)")
    return value.rstrip("/")


def url_validator(*fields: str) -> Any:
    """The validator of a settings class's URL fields, e.g. in a vendor's settings:

        _check_urls = url_validator("base_url")
    """

    def check(cls: Any, value: Any) -> str:
        return check_url(value)

    return field_check(*fields)(classmethod(check))


# -- Settings groups -------------------------------------------------------------------------


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


#: pydantic error types (2 and 1.10) -> what is accepted, in words an operator reads.
_ACCEPTED = {
    "bool_parsing": "must be 1 or 0 (also true/false, yes/no, on/off)",
    "bool_type": "must be 1 or 0 (also true/false, yes/no, on/off)",
    "type_error.bool": "must be 1 or 0 (also true/false, yes/no, on/off)",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "type_error.integer": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "type_error.float": "must be a number",
}
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def describe(cls: type[EnvironmentSettings], exc: ValidationError) -> list[str]:
    """One line per problem: the variable and what is wrong with it (never its value)."""
    problems = []
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else ""
        message = _ACCEPTED.get(str(error.get("type", "")), str(error["msg"]))
        for prefix in _PYDANTIC_PREFIXES:
            message = message.removeprefix(prefix)
        message = " ".join(message.split())  # one line, whatever the validator wrote
        problems.append(f"{cls.env_name(field_name)}: {message}")
    return problems


class IntegrationSettings(EnvironmentSettings):
    """Base of a vendor's settings group."""

    #: Field names that together make the integration "configured".
    credential_fields: ClassVar[tuple[str, ...]] = ()

    #: Seconds one vendor request may take (each attempt), 0 < value <= 120.
    timeout_seconds: float = 10.0
    #: Attempts per vendor request, 1..10 (non-idempotent calls retry only when safe).
    retry_attempts: int = 3

    @field_check("timeout_seconds")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_SECONDS):
            raise ValueError(f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g} "
                             "seconds")
        return value

    @field_check("retry_attempts")
    @classmethod
    def _check_retry_attempts(cls, value: int) -> int:
        if not MIN_RETRY_ATTEMPTS <= value <= MAX_RETRY_ATTEMPTS:
            raise ValueError(f"must be a whole number from {MIN_RETRY_ATTEMPTS} to "
                             f"{MAX_RETRY_ATTEMPTS} (1 = no retry)")
        return value

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
    """Switches that apply to every integration and to the action server."""

    #: 1 = every integration uses the local simulators, whatever credentials are set.
    sandbox: bool = False
    #: Where the simulators are served (http:// or https://, any host).
    sandbox_url: str = "http://127.0.0.1:8765"
    #: 1 = vendor URLs may use http:// for any host (a TLS-terminating proxy in between).
    allow_insecure_http: bool = False
    #: Level of the log handler installed where rasa-sdk configured none (its workers).
    log_level: str = "INFO"
    #: Longest a vendor action may run before the customer is told the vendor is unavailable.
    action_deadline_seconds: float = DEFAULT_ACTION_DEADLINE_SECONDS
    #: When set, every call to the action server except /health must carry it (Rasa's
    #: endpoints.yml `token:`, sent as the `token` query parameter, or an
    #: `Authorization: Bearer` header).
    action_server_token: SecretStr | None = None
    #: Log lines as text or as one JSON object per line (`rasa_service_desk.logs`).
    log_format: Literal["text", "json"] = "text"
    #: Regions whose national phone numbers the log redaction masks (`ES` or `ES,GB`).
    log_phone_region: str = ""
    #: Key of the conversation hash in log lines.
    log_hash_key: SecretStr | None = None
    #: 1 = Rasa's conversation text passes its logs at DEBUG (test systems only).
    log_conversation_text: bool = False
    #: Allocations between two young-generation garbage collections in each action-server
    #: worker (Python's default is 700; 0 keeps it). See `rasa_service_desk.plugin`.
    action_server_gc_threshold: int = DEFAULT_GC_THRESHOLD
    #: Vendor connections per process (one per in-flight call; each a file descriptor).
    http_pool_size: int = DEFAULT_POOL_SIZE
    #: ... of which to one vendor host; a call beyond it waits (and is logged).
    http_pool_size_per_host: int = DEFAULT_POOL_SIZE_PER_HOST

    @field_check("http_pool_size", "http_pool_size_per_host")
    @classmethod
    def _check_pool_size(cls, value: int) -> int:
        if not 1 <= value <= MAX_POOL_SIZE:
            raise ValueError(f"must be a whole number from 1 to {MAX_POOL_SIZE} (connections "
                             "per action-server process; keep it below `ulimit -n`)")
        return value

    @field_check("action_server_gc_threshold")
    @classmethod
    def _check_gc_threshold(cls, value: int) -> int:
        if value != 0 and not 700 <= value <= MAX_GC_THRESHOLD:
            raise ValueError(f"must be 0 (Python's own setting) or a whole number from 700 to "
                             f"{MAX_GC_THRESHOLD}")
        return value

    @field_check("log_format", before=True)
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_check("log_phone_region")
    @classmethod
    def _check_regions(cls, value: str) -> str:
        import phonenumbers

        regions = [part.strip().upper() for part in value.split(",") if part.strip()]
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError("must be two-letter region codes phonenumbers knows, "
                             "comma-separated, like ES or ES,GB")
        return ",".join(regions)

    @field_check("sandbox_url")
    @classmethod
    def _check_sandbox_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be the simulators' URL, like http://127.0.0.1:8765")
        return check_url(value, vendor=False)

    @field_check("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_check("action_deadline_seconds")
    @classmethod
    def _check_deadline(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 < value <= MAX_ACTION_DEADLINE_SECONDS):
            raise ValueError(f"must be more than 0 and at most "
                             f"{MAX_ACTION_DEADLINE_SECONDS:g} seconds (keep it below the "
                             "timeout Rasa allows an action call)")
        return value

    @field_check("action_server_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        token = value.get_secret_value()
        if not token:
            return None
        if len(token) < MIN_TOKEN_LENGTH or not all(33 <= ord(ch) < 127 for ch in token):
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} printable ASCII characters "
                             "without spaces (e.g. the output of `openssl rand -hex 32`)")
        return value

    @property
    def token(self) -> str:
        """The action server token, or "" when calls are not authenticated."""
        return self.action_server_token.get_secret_value() if self.action_server_token else ""


def load_global_settings(env_file: str | None = ENV_FILE) -> GlobalSettings:
    """The global switches, checked; registers the action server token for log redaction."""
    loaded = GlobalSettings.load(env_file)
    register_secrets([loaded.token])
    configure_pool(loaded.http_pool_size, loaded.http_pool_size_per_host)
    return loaded


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
    raise one error listing all problems, the global switches' included. Integrations not
    named are not read at all."""
    wanted = list(INTEGRATIONS if names is None else names)
    unknown = [name for name in wanted if name not in INTEGRATIONS]
    if unknown:
        raise ConfigurationError("settings", f"unknown integration(s): {', '.join(unknown)}")
    problems: list[str] = []
    try:
        global_settings = GlobalSettings(**GlobalSettings.read_environment(env_file))
    except ValidationError as exc:
        problems.extend(describe(GlobalSettings, exc))
        global_settings = GlobalSettings()
    register_secrets([global_settings.token])
    configure_pool(global_settings.http_pool_size, global_settings.http_pool_size_per_host)
    result: dict[str, Integration] = {}
    for name in wanted:
        cls = settings_class(name)
        try:
            with insecure_http(global_settings.allow_insecure_http):
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

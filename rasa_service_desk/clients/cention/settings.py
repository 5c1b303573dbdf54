"""Cention settings (`CENTION_*`).

Cention issues one JWT per claim ("Access to library", "Create Errand", ...), so a deployment
may hold several tokens: `CENTION_LIBRARY_TOKEN` and `CENTION_ERRAND_TOKEN`, each falling back
to `CENTION_TOKEN` when one JWT carries both claims.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr

from rasa_service_desk.clients.compat import copy_model, field_check
from rasa_service_desk.clients.settings import IntegrationSettings

#: Demo JWTs the simulator accepts, one per claim (they are not secret).
SANDBOX_LIBRARY_TOKEN = "sandbox-cention-library-jwt"  # noqa: S105
SANDBOX_ERRAND_TOKEN = "sandbox-cention-errand-jwt"  # noqa: S105
SANDBOX_WORKSPACE_PATH = "/cention/s/demo"


class CentionSettings(IntegrationSettings):
    """Where the Cention workspace is and which tokens open it."""

    env_prefix: ClassVar[str] = "CENTION_"

    credential_fields: ClassVar[tuple[str, ...]] = ("base_url", "library_token", "errand_token")

    #: The workspace URL, e.g. https://api.cention.com/s/demo (the client adds /capi/json/...).
    base_url: str = ""
    token: SecretStr | None = None
    library_token: SecretStr | None = None
    errand_token: SecretStr | None = None
    #: Show answers of internal libraries to customers too (agents' notes: off by default).
    allow_internal_libraries: bool = False
    cache_ttl_seconds: float = 300.0
    max_suggestions: int = 3
    #: SQLite file recording which conversation owns each errand (shared with the connector).
    errand_registry: str = "cention_errands.sqlite3"

    @field_check("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be the workspace URL, like https://api.cention.com/s/demo")
        return value

    @field_check("cache_ttl_seconds")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be 0 (no cache) or more")
        return value

    @field_check("max_suggestions")
    @classmethod
    def _suggestions(cls, value: int) -> int:
        if not 0 <= value <= 10:
            raise ValueError("must be between 0 and 10")
        return value

    def _token(self, own: SecretStr | None) -> str:
        for candidate in (own, self.token):
            if candidate is not None and candidate.get_secret_value():
                return candidate.get_secret_value()
        return ""

    @property
    def library_jwt(self) -> str:
        """The JWT carrying the "Access to library" claim."""
        return self._token(self.library_token)

    @property
    def errand_jwt(self) -> str:
        """The JWT carrying the "Create Errand" claim."""
        return self._token(self.errand_token)

    def missing_credentials(self) -> list[str]:
        """Like the base class, but `CENTION_TOKEN` stands in for either per-claim token."""
        missing = [] if self.base_url else [self.env_name("base_url")]
        if not self.library_jwt:
            missing.append(self.env_name("library_token"))
        if not self.errand_jwt:
            missing.append(self.env_name("errand_token"))
        return missing

    def for_sandbox(self, sandbox_url: str) -> CentionSettings:
        return copy_model(self, **{
            "base_url": f"{sandbox_url.rstrip('/')}{SANDBOX_WORKSPACE_PATH}",
            "token": None,
            "library_token": SecretStr(SANDBOX_LIBRARY_TOKEN),
            "errand_token": SecretStr(SANDBOX_ERRAND_TOKEN),
        })

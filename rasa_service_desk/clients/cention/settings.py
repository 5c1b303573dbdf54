"""Cention settings (`CENTION_*`).

Cention issues one JWT per claim ("Access to library", "Create Errand", ...), so a deployment
may hold several tokens: `CENTION_LIBRARY_TOKEN` and `CENTION_ERRAND_TOKEN`, each falling back
to `CENTION_TOKEN` when one JWT carries both claims.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr

from rasa_service_desk.clients.compat import copy_model, field_check
from rasa_service_desk.clients.settings import IntegrationSettings, url_validator

#: Demo JWTs the simulator accepts, one per claim (they are not secret).
SANDBOX_LIBRARY_TOKEN = "sandbox-cention-library-jwt"  # noqa: S105
SANDBOX_ERRAND_TOKEN = "sandbox-cention-errand-jwt"  # noqa: S105
SANDBOX_REPORT_TOKEN = "sandbox-cention-report-jwt"  # noqa: S105
SANDBOX_CONTACT_TOKEN = "sandbox-cention-contact-jwt"  # noqa: S105
SANDBOX_CLOSING_USER_ID = "1"
SANDBOX_WORKSPACE_PATH = "/cention/s/demo"

_SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


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
    #: How a question is searched (`clients.cention.client.search_queries`): `keywords`
    #: (significant words, then the longest words alone) or `sentence` (as typed).
    search_strategy: Literal["keywords", "sentence"] = "keywords"
    #: At most this many one-word searches after the keywords found nothing.
    search_fallback_queries: int = Field(default=2, ge=0, le=5)
    max_suggestions: int = 3
    #: JWT with "Access to errand data" (status replies); else CENTION_TOKEN, CENTION_ERRAND_TOKEN.
    report_token: SecretStr | None = None
    #: JWT with "Access and create customer contacts" (contact cards); same fallbacks.
    contact_token: SecretStr | None = None
    #: Name the agent in status replies ("Ana is looking at it").
    show_agent_names: bool = False
    #: The Cention user the bot closes withdrawn errands as; empty: withdrawing is unavailable.
    closing_user_id: str = ""
    closing_user_type: Literal["cention", "solidus", "clearinteract"] = "cention"
    #: Save the customer's contact card when an errand is created.
    contact_card: bool = False
    #: Slot whose value is sent as the errand's `cuid` (the customer's id in your systems).
    contact_card_cuid_slot: str = ""
    #: Record "that helped" after a library answer as an already-closed errand.
    record_resolved: bool = False
    #: Time zone of the times in status replies (an IANA name such as Europe/Stockholm).
    timezone: str = "UTC"

    _http_url = url_validator("base_url")

    @field_check("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        value = value.strip() or "UTC"
        if value.upper() == "UTC":
            return "UTC"
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name such as Europe/Stockholm "
                             "or UTC") from None
        return value

    @field_check("contact_card_cuid_slot")
    @classmethod
    def _slot_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _SLOT_NAME.match(value):
            raise ValueError("must be a slot name (letters, digits, _ and -)")
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
            "report_token": SecretStr(SANDBOX_REPORT_TOKEN),
            "contact_token": SecretStr(SANDBOX_CONTACT_TOKEN),
            # The simulator's demo agent, unless a closing user is configured.
            "closing_user_id": self.closing_user_id or SANDBOX_CLOSING_USER_ID,
        })

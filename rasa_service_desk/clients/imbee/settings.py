"""Imbee settings, read from `IMBEE_*` variables (see `.env.example`).

The integration counts as configured when the host, both tokens, the bot id, at least one
agent id and the user-id salt are all set: without any one of them no chat can be opened,
so a partial configuration stops the action server at startup instead of failing customers.
"""

from __future__ import annotations

from typing import ClassVar

import phonenumbers
from pydantic import Field, SecretStr

from rasa_service_desk.clients.compat import copy_model, field_check
from rasa_service_desk.clients.settings import IntegrationSettings, url_validator

#: What the local simulator accepts; `for_sandbox()` points the client at it with these.
SANDBOX_AUTH_TOKEN = "sandbox-imbee-auth"  # noqa: S105 (public demo value)
SANDBOX_CORPORATE_TOKEN = "sandbox-imbee-corporate"  # noqa: S105 (public demo value)
SANDBOX_BOT_ID = "sandbox-bot-idsha"
SANDBOX_AGENT_IDS = ("sandbox-agent-1-idsha", "sandbox-agent-2-idsha")
SANDBOX_USER_ID_SALT = "sandbox-imbee-user-id-salt"


class ImbeeSettings(IntegrationSettings):
    """Where Imbee lives, how we authenticate, which bot and agents serve the chats."""

    env_prefix: ClassVar[str] = "IMBEE_"

    credential_fields: ClassVar[tuple[str, ...]] = (
        "host", "auth_token", "corporate_token", "bot_id", "agent_ids", "user_id_salt",
    )

    #: Base URL given by Imbee, e.g. `https://api.example-imbee-host.com` (no trailing slash).
    host: str = ""
    auth_token: SecretStr = SecretStr("")
    corporate_token: SecretStr = SecretStr("")
    #: `bot_idsha` sent when generating access tokens.
    bot_id: str = ""
    #: One agent idsha, or several separated by commas (a pool, see `agent_pool`).
    agent_ids: str = ""
    #: Times the customer may use the access link (`max_retries`).
    max_retries: int = Field(default=10, ge=1, le=1000)
    #: Days the access link stays valid, counted from today (UTC), the last day included.
    validity_days: int = Field(default=7, ge=1, le=365)
    #: Key of the HMAC that turns a conversation id into the Imbee external user id.
    user_id_salt: SecretStr = SecretStr("")
    #: ISO country (e.g. `ES`) for phone numbers typed without a country code; empty = none.
    default_region: str = ""

    _check_host = url_validator("host")

    @field_check("agent_ids")
    @classmethod
    def _normalise_agents(cls, value: str) -> str:
        unique = dict.fromkeys(item.strip() for item in value.split(",") if item.strip())
        return ",".join(unique)

    @field_check("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        value = value.strip().upper()
        if value and value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a two-letter country code phonenumbers knows, such as "
                             "ES or GB")
        return value

    @property
    def agent_pool(self) -> tuple[str, ...]:
        """The configured agent idshas, in order (blanks and duplicates already dropped)."""
        return tuple(self.agent_ids.split(",")) if self.agent_ids else ()

    @property
    def phone_region(self) -> str | None:
        """`default_region` for `phonenumbers`, or None when numbers must be international."""
        return self.default_region or None

    def for_sandbox(self, sandbox_url: str) -> ImbeeSettings:
        return copy_model(self, **{
            "host": f"{sandbox_url}/imbee",
            "auth_token": SecretStr(SANDBOX_AUTH_TOKEN),
            "corporate_token": SecretStr(SANDBOX_CORPORATE_TOKEN),
            "bot_id": SANDBOX_BOT_ID,
            "agent_ids": ",".join(SANDBOX_AGENT_IDS),
            "user_id_salt": SecretStr(SANDBOX_USER_ID_SALT),
        })

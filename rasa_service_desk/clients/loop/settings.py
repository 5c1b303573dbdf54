"""Loop settings: `LOOP_*` variables of the environment or `.env`.

The integration counts as configured when the account's base URL, the auth token and the
location are all set: without any of them neither a survey nor a loop can be sent.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

from pydantic import Field, SecretStr

from rasa_service_desk.clients.compat import copy_model, field_check
from rasa_service_desk.clients.settings import IntegrationSettings, url_validator

#: What the local simulator accepts and is seeded with (never valid against the real vendor).
SANDBOX_AUTH_TOKEN = "loop-sandbox-token"  # noqa: S105 - public demo value of the simulator
SANDBOX_LOCATION = "1300"
SANDBOX_LOOP_TYPE = "5296530b121d5fa206011b01"

_SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class LoopSettings(IntegrationSettings):
    """Which Loop account, location and survey the bot works with."""

    env_prefix: ClassVar[str] = "LOOP_"

    credential_fields: ClassVar[tuple[str, ...]] = ("base_url", "auth_token", "location")

    #: The account's API root, e.g. `https://sunnyclear.blazeloop.net/api/v1`.
    base_url: str = ""
    #: Token Benbria issues; sent as the `authToken` query parameter of every request.
    auth_token: SecretStr = SecretStr("")
    #: Location id (immutable) or shortcode (e.g. `1300`), resolved once per process.
    location: str = ""
    #: Survey shortcode; empty = the survey Loop assigns to the location.
    survey: str = ""
    #: Loop type id (or its title) of the loops the bot creates.
    loop_type: str = ""
    #: `source` of responses and loops: where they come from.
    source: str = "chatbot"
    #: `deviceId` of responses and loops (helps Loop's staff trace a misconfigured bot).
    device_id: str = ""
    #: Language of survey texts when the customer's language is not in the survey.
    fallback_language: str = "en"
    #: Slot name -> custom field shortcode, as JSON, e.g. `{"room_number": "room"}`.
    custom_fields: dict[str, str] = Field(default_factory=dict)
    #: How long a fetched survey is reused before asking Loop again (edits show up after it).
    survey_cache_seconds: float = Field(default=300.0, ge=0)
    #: Longest free-text survey answer or loop description accepted from the customer.
    max_text_length: int = Field(default=2000, ge=10, le=20000)
    #: Let the customer pick the location (buttons) when the account has several.
    let_customer_choose_location: bool = False
    #: Dotted path in the message metadata where the front end puts the customer's
    #: authenticated e-mail (then all their loops may be shown); empty = off.
    verified_email_metadata_key: str = ""
    #: How long the account's location list is reused (seconds).
    locations_cache_seconds: float = Field(default=3600.0, ge=0)

    _check_base_url = url_validator("base_url")

    @field_check("custom_fields", before=True)
    @classmethod
    def _parse_custom_fields(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object like {"room_number": "room"}')
        for slot, shortcode in value.items():
            if not isinstance(slot, str) or not _SLOT_NAME.match(slot):
                raise ValueError(f"{slot!r} is not a slot name")
            if not isinstance(shortcode, str) or not shortcode.strip():
                raise ValueError(f"the custom field shortcode of {slot!r} must be a string")
        return {slot: shortcode.strip() for slot, shortcode in value.items()}

    @field_check("fallback_language")
    @classmethod
    def _normalise_language(cls, value: str) -> str:
        return value.strip() or "en"

    def for_sandbox(self, sandbox_url: str) -> LoopSettings:
        """A copy pointing at the local simulator, keeping an explicitly chosen location,
        survey, loop type and custom fields (the simulator is seeded with the doc's data)."""
        return copy_model(self, **{
                "base_url": f"{sandbox_url}/loop/api/v1",
                "auth_token": SecretStr(SANDBOX_AUTH_TOKEN),
                "location": self.location or SANDBOX_LOCATION,
                "loop_type": self.loop_type or SANDBOX_LOOP_TYPE,
            })

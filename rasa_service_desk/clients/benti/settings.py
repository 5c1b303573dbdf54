"""Benti settings: `BENTI_*` variables of the environment or `.env`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from rasa_service_desk.clients.compat import copy_model
from rasa_service_desk.clients.settings import IntegrationSettings, url_validator

#: Credentials the local simulator accepts (never valid against the real vendor).
SANDBOX_API_KEY = "benti-sandbox-key"
SANDBOX_API_SECRET = "benti-sandbox-secret"  # noqa: S105 - public demo value of the simulator

MIB = 1024 * 1024


class BentiSettings(IntegrationSettings):
    """How to reach Benti and what a ticket carries by default.

    The ticketing base URL is not a setting: Benti hands it out with each token (`/v1/apis`)
    and may move it, so it is discovered at run time.
    """

    env_prefix: ClassVar[str] = "BENTI_"

    credential_fields: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    auth_url: str = "https://api.inbenta.io"
    queue: int | None = None
    source: int | None = None
    #: Refresh the access token this long before it expires (Inbenta's own client uses 180 s).
    token_refresh_margin_seconds: float = Field(default=180.0, ge=0)
    #: Largest file sent as an attachment. Base64 makes it ~4/3 larger and a request may
    #: carry at most 10 MiB, hence 7 MiB.
    max_attachment_bytes: int = Field(default=7 * MIB, gt=0, le=7 * MIB)
    #: How many of the files a customer shared in the conversation go with a ticket.
    max_shared_files: int = Field(default=5, ge=0)

    _check_auth_url = url_validator("auth_url")

    def for_sandbox(self, sandbox_url: str) -> BentiSettings:
        """A copy pointing at the local simulator, with its demo credentials."""
        return copy_model(self, **{
                "api_key": SecretStr(SANDBOX_API_KEY),
                "api_secret": SecretStr(SANDBOX_API_SECRET),
                "auth_url": f"{sandbox_url}/benti",
            })

"""`OUTBOX_*`: how long the outbox keeps trying, how often it looks, and where Rasa is.

Read and checked when the action server starts, like every other setting: a wrong value
stops the process with one line per problem. `OUTBOX_RASA_URL` is Rasa's own HTTP API
(`rasa run --enable-api`), reached from the action server over the network: the two never
need to share a disk.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from rasa_service_desk.clients.compat import field_check
from rasa_service_desk.clients.settings import EnvironmentSettings, check_url

DAY = 86400.0


class OutboxSettings(EnvironmentSettings):
    """The outbox of submissions waiting for a vendor (`rasa_service_desk.outbox`)."""

    env_prefix: ClassVar[str] = "OUTBOX_"

    #: 0 = no outbox: a vendor outage is told to the customer, who says "try again" later.
    enabled: bool = True
    #: After this long without getting through, a submission is given up and the customer
    #: is told (seconds; a day by default).
    give_up_after_seconds: float = Field(default=DAY, gt=0, le=30 * DAY)
    #: How often the action server looks for submissions that are due (seconds).
    poll_seconds: float = Field(default=2.0, gt=0, le=300)
    #: The longest wait between two attempts of one submission (seconds); the waits double
    #: from 2 s up to it, or follow the vendor's Retry-After.
    max_backoff_seconds: float = Field(default=300.0, ge=1, le=DAY)
    #: A given-up submission keeps what the customer submitted this long, so an operator
    #: can send it again (`python -m rasa_service_desk outbox retry`); then it is deleted.
    failed_retention_days: float = Field(default=7.0, gt=0, le=90)
    #: Rasa's HTTP API (`rasa run --enable-api`): where the outbox tells a conversation
    #: that its submission went through or was given up.
    rasa_url: str = "http://localhost:5005"
    #: Rasa's `--auth-token`, when Rasa was started with one.
    rasa_token: SecretStr | None = None

    @field_check("rasa_url")
    @classmethod
    def _check_rasa_url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be Rasa's URL, like http://localhost:5005")
        return check_url(value, vendor=False)

"""Typed errors that every vendor client raises.

Actions map each class to a domain response, so the customer always gets a clear,
friendly reply. Messages never contain secrets or customer data: they are logged.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class: something went wrong talking to a vendor.

    `status` is the HTTP status when there was one; `vendor_message` the vendor's own
    explanation (for logs and for clients that react to it, e.g. "token expired").
    """

    def __init__(
        self, vendor: str, message: str, *, status: int | None = None, vendor_message: str = ""
    ) -> None:
        super().__init__(f"{vendor}: {message}")
        self.vendor = vendor
        self.message = message
        self.status = status
        self.vendor_message = vendor_message


class ConfigurationError(IntegrationError):
    """Settings are missing or invalid; raised at startup, before any customer is served."""


class AuthenticationError(IntegrationError):
    """The vendor refused our credentials (wrong key, expired token that could not be renewed)."""


class RateLimited(IntegrationError):
    """The vendor asked us to slow down (HTTP 429) and retries did not get through."""

    def __init__(
        self, vendor: str, message: str, retry_after: float | None = None, **kwargs: object
    ) -> None:
        super().__init__(vendor, message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class VendorUnavailable(IntegrationError):
    """The vendor could not be reached, timed out, or answered with a server error.

    `reached` is False only when the request certainly never arrived (no connection was
    made): otherwise the vendor may have acted on it before the failure, which matters for
    anything that creates something (see `rasa_service_desk.actions.submissions`).
    """

    def __init__(self, vendor: str, message: str, *, reached: bool = True,
                 **kwargs: object) -> None:
        super().__init__(vendor, message, **kwargs)  # type: ignore[arg-type]
        self.reached = reached


class RejectedInput(IntegrationError):
    """The vendor refused what we sent (4xx other than 401/403/429), or a client refused it
    before sending (e.g. an attachment over the size limit)."""


class MalformedReply(IntegrationError):
    """The vendor answered, but not with the shape its documentation promises."""

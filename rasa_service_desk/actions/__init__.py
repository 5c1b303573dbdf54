"""Rasa custom actions of the four integrations, one module (or package) per vendor.

A bot enables an integration by importing its module from the bot's own actions package:

    from rasa_service_desk.actions import benti  # noqa: F401

rasa-sdk registers every action class loaded by then. Importing a vendor's module reads and
checks that vendor's settings only. A separate action server can also serve one vendor with
`python -m rasa_sdk --actions rasa_service_desk.actions.benti`, or all four with
`--actions rasa_service_desk.actions`.

Importing this package itself loads only what every integration shares: "try again"
(`action_retry_pending`).
"""

from rasa_service_desk.actions.retry import ActionRetryPending

__all__ = ["ActionRetryPending"]

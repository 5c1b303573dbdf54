"""Benti, Cention, Imbee and Loop for Rasa bots: custom actions, channel connectors, clients
and local simulators of the vendor APIs.

Every installed module lives under this one name, so nothing here can shadow a bot's own
`actions`, `connectors` or other packages. See `rasa_service_desk.actions` for how a bot
enables an integration.
"""

__version__ = "0.2.0"

"""Benti (Inbenta ticketing): settings, models and the async client."""

from rasa_service_desk.clients.benti.client import BentiClient
from rasa_service_desk.clients.benti.models import Attachment, NewTicket, Ticket
from rasa_service_desk.clients.benti.settings import BentiSettings

__all__ = ["Attachment", "BentiClient", "BentiSettings", "NewTicket", "Ticket"]

"""Benti (Inbenta ticketing): settings, models and the async client."""

from clients.benti.client import BentiClient
from clients.benti.models import Attachment, NewTicket, Ticket
from clients.benti.settings import BentiSettings

__all__ = ["Attachment", "BentiClient", "BentiSettings", "NewTicket", "Ticket"]

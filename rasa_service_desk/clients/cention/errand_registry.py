"""Which conversation owns which Cention errand, and which answers were delivered.

The action server records the owner when it creates an errand; the callback connector inside
Rasa looks it up when an agent answers, possibly days later, after restarts, and on another
host. Both go through the shared state store (`rasa_service_desk.state`: SQLite on one
host, Redis across hosts), never through a file the two processes must share.

A delivery is claimed before the answer goes into the conversation and counts as done only
once Rasa has processed it: a repeated callback meanwhile is told to come back later (its
claim is a lease, so a crashed delivery is retried after it expires), one after it is a
duplicate, and a failed delivery releases its claim for Cention's next attempt.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from rasa_service_desk.state import StateStore

OWNERS = "cention-errand"
DELIVERIES = "cention-delivery"
#: How long an unfinished delivery blocks a repeat of the same callback (seconds).
DELIVERY_LEASE_SECONDS = 120.0


class Delivery(enum.Enum):
    """What `begin_delivery` found for a callback."""

    CLAIMED = "claimed"          # this caller delivers it
    IN_PROGRESS = "in_progress"  # another caller is delivering it right now
    DELIVERED = "delivered"      # already in the conversation


@dataclass(frozen=True)
class ErrandOwner:
    """The conversation an errand belongs to, and the channel it was created from."""

    sender_id: str
    channel: str | None
    created_at: datetime


class ErrandRegistry:
    """Errand id -> owning conversation, and callback deliveries, in a `StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def record(self, errand_id: str, sender_id: str, channel: str | None) -> None:
        """Remember that `sender_id` owns `errand_id` (a repeated id takes the latest owner)."""
        errand_id = str(errand_id).strip()
        if not errand_id or not sender_id:
            raise ValueError("an errand id and a sender id are required")
        await self.store.put(OWNERS, errand_id, {
            "sender_id": sender_id, "channel": channel, "created_at": time.time()})

    async def owner(self, errand_id: str) -> ErrandOwner | None:
        """The conversation that owns `errand_id`, or None when this bot never created it."""
        value = await self.store.get(OWNERS, str(errand_id).strip())
        if not value or not isinstance(value.get("sender_id"), str):
            return None
        channel = value.get("channel")
        stamp = value.get("created_at")
        return ErrandOwner(
            sender_id=value["sender_id"],
            channel=channel if isinstance(channel, str) else None,
            created_at=datetime.fromtimestamp(
                stamp if isinstance(stamp, (int, float)) else 0, tz=timezone.utc),
        )

    async def begin_delivery(self, key: str) -> Delivery:
        """Claim the delivery of one callback (`key`) for this caller, atomically."""
        if await self.store.claim(DELIVERIES, key, {"state": "delivering"},
                                  ttl=DELIVERY_LEASE_SECONDS):
            return Delivery.CLAIMED
        current = await self.store.get(DELIVERIES, key)
        if current is None:  # the other claim ended between the two calls: try once more
            claimed = await self.store.claim(DELIVERIES, key, {"state": "delivering"},
                                             ttl=DELIVERY_LEASE_SECONDS)
            return Delivery.CLAIMED if claimed else Delivery.IN_PROGRESS
        if current.get("state") == "delivered":
            return Delivery.DELIVERED
        return Delivery.IN_PROGRESS

    async def delivery_done(self, key: str) -> None:
        """The answer is in the conversation: repeats of this callback are duplicates."""
        await self.store.put(DELIVERIES, key, {"state": "delivered"})

    async def delivery_failed(self, key: str) -> None:
        """Release the claim, so Cention's next attempt can deliver the answer."""
        await self.store.delete(DELIVERIES, key)

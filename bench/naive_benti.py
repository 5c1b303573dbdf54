"""The baseline: the Benti ticket flow written the way most Rasa tutorials write it.

A synchronous `run()` calling `requests`, which blocks the action server's event loop for
the whole vendor round trip, so conversations are served one at a time; and a new access
token plus API discovery on every call, as if nothing could be kept between requests. It is
otherwise the same flow as the product's `action_benti_create_ticket` (same name, slots,
user lookup, transcript upload and ticket), so the same request bodies drive both. It is
served by its own action server (`python -m rasa_sdk --actions bench.naive_benti`) and
configured through `NAIVE_BENTI_URL`, `NAIVE_BENTI_KEY` and `NAIVE_BENTI_SECRET`.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import requests
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

TIMEOUT = 30


class NaiveBentiCreateTicket(Action):
    def name(self) -> str:
        return "action_benti_create_ticket"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: dict[str, Any]) -> list[dict[str, Any]]:
        base_url = os.environ["NAIVE_BENTI_URL"]
        key = os.environ["NAIVE_BENTI_KEY"]

        auth = requests.post(f"{base_url}/v1/auth", headers={"x-inbenta-key": key},
                             json={"secret": os.environ["NAIVE_BENTI_SECRET"]}, timeout=TIMEOUT)
        auth.raise_for_status()
        headers = {"x-inbenta-key": key,
                   "Authorization": f"Bearer {auth.json()['accessToken']}"}
        apis = requests.get(f"{base_url}/v1/apis", headers=headers, timeout=TIMEOUT)
        apis.raise_for_status()
        ticketing = apis.json()["apis"]["ticketing"] + "/v1"

        name = tracker.get_slot("customer_name")
        email = tracker.get_slot("customer_email")
        users = requests.get(f"{ticketing}/users", params={"address": email},
                             headers=headers, timeout=TIMEOUT)
        users.raise_for_status()
        if users.json()["data"]:
            creator = users.json()["data"][0]["id"]
        else:
            created = requests.post(f"{ticketing}/users", json={"name": name, "address": email},
                                    headers=headers, timeout=TIMEOUT)
            created.raise_for_status()
            creator = created.json()["uuid"]

        lines = [f"{e['event']}: {e.get('text')}" for e in tracker.events
                 if e.get("event") in ("user", "bot") and e.get("text")]
        transcript = base64.b64encode("\n".join(lines).encode()).decode()
        media = requests.post(f"{ticketing}/media",
                              json={"name": "conversation.txt", "content": transcript},
                              headers=headers, timeout=TIMEOUT)
        media.raise_for_status()

        ticket = requests.post(f"{ticketing}/tickets", headers=headers, timeout=TIMEOUT, json={
            "title": tracker.get_slot("benti_ticket_title"),
            "message": tracker.get_slot("benti_ticket_description"),
            "creator": creator,
            "attachments": [media.json()["uuid"]],
        })
        ticket.raise_for_status()
        dispatcher.utter_message(response="utter_benti_ticket_created",
                                 reference=ticket.json()["id"])
        return [SlotSet("benti_ticket_id", ticket.json()["full_uuid"]),
                SlotSet("benti_ticket_title", None), SlotSet("benti_ticket_description", None)]

"""The four declared submissions as a customer meets them, for the outbox tests: the
action that files one, its slots, the fault that keeps its vendor down, and how to find what
it filed at the simulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rasa_service_desk.sandbox.loop import RESTAURANT
from tests.support.rasa_payloads import webhook_payload
from tests.support.servers import ActionServer, Sandbox

Q_SWIFT, Q_FOOD, Q_CLEAN, Q_ELSE = (q["categoryId"] for q in RESTAURANT["questions"])


@dataclass(frozen=True)
class Case:
    """One declared submission, as a customer meets it."""

    action: str
    update_action: str
    vendor: str
    fault: dict[str, Any]
    slots: Callable[[str], dict[str, Any]]  # unique marker -> the action's slots
    filed: Callable[[Sandbox, str], list[dict[str, Any]]]  # the vendor's objects of a marker
    queued: str
    confirmed: list[str]
    cleared: dict[str, Any]
    id_slot: str
    intent: str


def benti_tickets(sandbox: Sandbox, marker: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.state("benti")["tickets"] if t.get("title") == marker]


def cention_errands(sandbox: Sandbox, marker: str) -> list[dict[str, Any]]:
    return [e for e in sandbox.state("cention")["errands"]
            if e["attributes"]["msg"]["subject"] == marker]


def loop_responses(sandbox: Sandbox, marker: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.state("loop")["responses"]
            if any(a.get("value") == marker for a in r["responses"])]


def loop_loops(sandbox: Sandbox, marker: str) -> list[dict[str, Any]]:
    return [loop for loop in sandbox.state("loop")["loops"] if loop["description"] == marker]


BENTI = Case(
    action="action_benti_create_ticket", update_action="action_benti_submission_update",
    vendor="benti", fault={"path": "/ticketing/v1/tickets", "method": "POST"},
    slots=lambda marker: {"customer_name": "Grace Hopper",
                          "customer_email": "grace.hopper@example.com",
                          "benti_ticket_title": marker,
                          "benti_ticket_description": "I was charged twice for order 4411."},
    filed=benti_tickets, queued="utter_benti_ticket_queued",
    confirmed=["utter_benti_ticket_created"],
    cleared={"benti_ticket_title": None, "benti_ticket_description": None},
    id_slot="benti_ticket_id", intent="benti_submission_update")
CENTION = Case(
    action="action_cention_create_errand", update_action="action_cention_submission_update",
    vendor="cention", fault={"path": "c3_new_errands", "method": "POST"},
    slots=lambda marker: {"customer_name": "Ann Customer",
                          "customer_email": "ann.customer@example.com",
                          "cention_errand_subject": marker},
    filed=cention_errands, queued="utter_cention_errand_queued",
    confirmed=["utter_cention_errand_created"], cleared={"cention_errand_subject": None},
    id_slot="cention_errand_id", intent="cention_submission_update")
SURVEY = Case(
    action="action_loop_submit_survey", update_action="action_loop_submission_update",
    vendor="loop", fault={"path": "/responses", "method": "POST"},
    slots=lambda marker: {"loop_survey": RESTAURANT, "loop_answers": {
        Q_SWIFT: True, Q_FOOD: True, Q_CLEAN: True, Q_ELSE: marker}},
    filed=loop_responses, queued="utter_loop_survey_queued",
    confirmed=["utter_loop_survey_thanks"],
    cleared={"loop_answers": None, "loop_survey": None},
    id_slot="loop_response_id", intent="loop_submission_update")
NEW_LOOP = Case(
    action="action_loop_create_loop", update_action="action_loop_submission_update",
    vendor="loop", fault={"path": "/loops", "method": "POST"},
    slots=lambda marker: {"loop_description": marker, "customer_email": "guest@example.com"},
    filed=loop_loops, queued="utter_loop_create_queued", confirmed=["utter_loop_created"],
    cleared={"loop_description": None, "loop_title": None},
    id_slot="loop_loop_id", intent="loop_submission_update")
CASES = {"benti-ticket": BENTI, "cention-errand": CENTION, "loop-survey": SURVEY,
         "loop-create": NEW_LOOP}


def reference_of(ticket: dict[str, Any]) -> str:
    """What the customer is told of a Benti ticket: its number."""
    return str(ticket["id"])


def marker_for(case: Case) -> str:
    return f"Outbox {case.vendor} {uuid.uuid4().hex[:10]}"


def submit(server: ActionServer, case: Case, sender: str, marker: str) -> dict[str, Any]:
    return server.run(webhook_payload(case.action, sender_id=sender, slots=case.slots(marker)))


def update(server: ActionServer, case: Case, sender: str) -> dict[str, Any]:
    return server.run(webhook_payload(case.update_action, sender_id=sender,
                                      text=f"EXTERNAL: {case.intent}", intent=case.intent,
                                      metadata={"is_external": True}))


def id_of(case: Case, filed: dict[str, Any]) -> Any:
    """The id the customer's slot holds: Benti's ticket UUID, the others' ids."""
    return filed["full_uuid"] if case is BENTI else filed["id"]

"""What the benchmark runs: one scenario per action, with valid slots for its payload.

`stages` lists the vendor routes an action calls once warmed up, in order; routes in the
same stage run concurrently. So `k = len(stages)` is the number of sequential vendor calls
(what the latency bound depends on) and `calls` the vendor calls per action. The benchmark
checks both against the simulators' counters instead of trusting them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.payloads import CONVERSATION, CUSTOMER, BodyTemplate, domain, webhook_payload

PRODUCT = "product"
NAIVE = "naive"
NOOP_ACTION = "action_bench_noop"
#: Says which `file_once` the worker runs (`bench.actions`; `bench.idempotency` checks it).
FILE_ONCE_PROBE = "action_bench_file_once"
#: One bare GET to the Cention simulator: the reference for the CPU of one vendor call.
MINIMAL_CALL_ACTION = "action_bench_minimal_call"

#: Returning customers: the warm-up registers them with the vendors that keep users.
CUSTOMERS = 32

TURNS = [
    ("Hi", "Hello! How can I help?"),
    ("I can't log in to my account since this morning",
     "I'm sorry to hear that. Let me help you."),
]


def slots(**values: Any) -> dict[str, Any]:
    """Every slot of the domain, as Rasa sends them (unset ones as null), with `values`."""
    result: dict[str, Any] = {name: None for name in domain().get("slots", {})}
    result.update(values)
    return result


def customer_slots() -> dict[str, Any]:
    return {"customer_name": f"Customer {CUSTOMER}",
            "customer_email": f"customer-{CUSTOMER}@example.com"}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    action: str
    server: str
    vendor: str | None
    stages: tuple[tuple[str, ...], ...]
    expected_response: str | None
    payload: Callable[[dict[str, Any]], dict[str, Any]]
    #: Empty the simulator before each run: for simulators that look objects up by
    #: scanning all of them, whose clients keep no state that a reset would invalidate.
    reset_simulator: bool = False
    #: For the baseline: the product scenario it is compared with.
    twin: str | None = None
    #: A measuring stick served by the product's server, not a product action: it has no
    #: targets and stays out of the memory run; the CPU table shows it beside the actions.
    reference: bool = False

    @property
    def vendor_action(self) -> bool:
        """A product action that calls a vendor: what the targets and the memory run measure."""
        return self.server == PRODUCT and bool(self.vendor) and not self.reference

    @property
    def k(self) -> int:
        return len(self.stages)

    @property
    def calls(self) -> int:
        return sum(len(stage) for stage in self.stages)

    def template(self, context: dict[str, Any]) -> BodyTemplate:
        """The serialised payload; `context` holds what `prepare()` fetched."""
        return BodyTemplate(self.payload(context), CUSTOMERS)


async def prepare(sandbox_url: str, names: list[str]) -> dict[str, Any]:
    """Data some payloads need from the simulators, fetched with the product's own client.

    A Loop survey submission runs after the survey form, whose slots hold the survey as
    Loop sent it and an answer to every question: yes to yes/no questions, a comment to
    free-text ones.
    """
    context: dict[str, Any] = {}
    if "loop" in names:
        from rasa_service_desk.clients.compat import dump_model
        from rasa_service_desk.clients.http import close_shared_sessions
        from rasa_service_desk.clients.loop.client import LoopClient
        from rasa_service_desk.clients.loop.models import BOOL, TEXT
        from rasa_service_desk.clients.loop.settings import LoopSettings

        settings = LoopSettings().for_sandbox(sandbox_url)
        try:
            survey = await LoopClient(settings).survey()
        finally:
            await close_shared_sessions()
        context["loop_survey"] = dump_model(survey)
        context["loop_answers"] = {
            q.categoryId: True if q.type == BOOL else "Friendly and quick, thank you."
            for q in survey.questions if q.type in (BOOL, TEXT)}
        context["loop_question_order"] = list(context["loop_answers"])
    return context


def noop_payload(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload("action_bench_noop", slots(), TURNS, "hello")


def benti_payload(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload(
        "action_benti_create_ticket",
        slots(**customer_slots(), benti_ticket_title="Cannot log in",
              benti_ticket_description="Since this morning the login page says my password "
                                       "is wrong, although I reset it twice."),
        TURNS, "Please open a ticket", intent="open_ticket")


def cention_payload(context: dict[str, Any]) -> dict[str, Any]:
    # Each conversation asks in its own words (its id is part of the phrase), so every
    # answer is a library search: the answer cache cannot short-circuit the vendor call.
    return webhook_payload("action_cention_answer", slots(), TURNS,
                           f"Where is my order? It is order {CONVERSATION}",
                           intent="nlu_fallback")


def minimal_call_payload(context: dict[str, Any]) -> dict[str, Any]:
    """Cention's payload (same size, same phrase), asking for the reference call instead."""
    return {**cention_payload(context), "next_action": MINIMAL_CALL_ACTION}


def imbee_payload(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload("action_imbee_open_chat", slots(**customer_slots()), TURNS,
                           "I'd like to chat with an agent")


def loop_payload(context: dict[str, Any]) -> dict[str, Any]:
    return webhook_payload(
        "action_loop_submit_survey",
        slots(loop_survey=context["loop_survey"], loop_answers=context["loop_answers"],
              loop_question_order=context["loop_question_order"]),
        [*TURNS, ("Yes, happy to answer a survey", "Thanks! A few quick questions.")],
        "Friendly and quick, thank you.")


BENTI_STAGES = (("GET /ticketing/v1/users", "POST /ticketing/v1/media"),
                ("POST /ticketing/v1/tickets",))
NAIVE_BENTI_STAGES = (("POST /v1/auth",), ("GET /v1/apis",), ("GET /ticketing/v1/users",),
                      ("POST /ticketing/v1/media",), ("POST /ticketing/v1/tickets",))

SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("noop", "No-op (SDK ceiling)", "action_bench_noop", PRODUCT, None, (), None,
             noop_payload),
    Scenario("cention", "Cention library answer", "action_cention_answer", PRODUCT,
             "cention", (("GET /c3_library_questions",),), "utter_cention_answer",
             cention_payload),
    Scenario("benti", "Benti ticket", "action_benti_create_ticket", PRODUCT, "benti",
             BENTI_STAGES, "utter_benti_ticket_created", benti_payload),
    Scenario("imbee", "Imbee chat", "action_imbee_open_chat", PRODUCT, "imbee",
             (("POST /third_parties/user/new",), ("POST /chat/create",), ("POST /token/new",)),
             "utter_imbee_chat_opened", imbee_payload, reset_simulator=True),
    Scenario("loop", "Loop survey submission", "action_loop_submit_survey", PRODUCT, "loop",
             (("POST /responses",),), "utter_loop_survey_thanks", loop_payload),
    Scenario("minimal_call", "Minimal aiohttp call (reference)", MINIMAL_CALL_ACTION, PRODUCT,
             "cention", (("GET /c3_library_questions",),), None, minimal_call_payload,
             reference=True),
    Scenario("naive_benti", "Naive Benti (baseline)", "action_benti_create_ticket", NAIVE,
             "benti", NAIVE_BENTI_STAGES, "utter_benti_ticket_created", benti_payload,
             twin="benti"),
]}


def route_stage(scenario: Scenario, route: str) -> int | None:
    """The stage of `scenario` a counted route (`"GET /benti/ticketing/v1/users"`) belongs to."""
    method, _, path = route.partition(" ")
    for number, stage in enumerate(scenario.stages):
        for expected in stage:
            want_method, _, want_path = expected.partition(" ")
            if method == want_method and path.endswith(want_path):
                return number
    return None

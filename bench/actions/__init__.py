"""The action package the benchmark serves: every product action plus a no-op.

`python -m rasa_sdk --actions bench.actions` registers all `Action` subclasses imported by
then, so this imports the four integrations' action modules (which check their settings)
and adds `action_bench_noop`: an action that does nothing, whose throughput is the ceiling
of the SDK server itself on this machine, and `action_bench_file_once`, which says which
`IntegrationAction.file_once` the worker that runs it has: the product's, or the one of the
benchmark's "off" server (`bench.no_idempotency`).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions import benti, cention, imbee, loop  # noqa: F401
from rasa_service_desk.actions.base import IntegrationAction


class ActionBenchNoop(Action):
    """Returns no events: what remains is the server's own cost per request."""

    def name(self) -> str:
        return "action_bench_noop"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        return []


class ActionBenchFileOnce(Action):
    """Utters the qualified name of the `file_once` this worker runs (a check, not a load)."""

    def name(self) -> str:
        return "action_bench_file_once"  # bench.scenarios.FILE_ONCE_PROBE

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        dispatcher.utter_message(text=IntegrationAction.file_once.__qualname__)
        return []

"""The action package the benchmark serves: every product action plus a no-op.

`python -m rasa_sdk --actions bench.actions` registers all `Action` subclasses imported by
then, so this imports the four integrations' action modules (which check their settings)
and adds `action_bench_noop`: an action that does nothing, whose throughput is the ceiling
of the SDK server itself on this machine.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions import benti, cention, imbee, loop  # noqa: F401


class ActionBenchNoop(Action):
    """Returns no events: what remains is the server's own cost per request."""

    def name(self) -> str:
        return "action_bench_noop"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        return []

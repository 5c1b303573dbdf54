"""The action package the benchmark serves: every product action plus a no-op.

`python -m rasa_sdk --actions bench.actions` registers all `Action` subclasses imported by
then, so this imports the product's `actions` package (which checks the settings) and each
of its modules, and adds `action_bench_noop`: an action that does nothing, whose
throughput is the ceiling of the SDK server itself on this machine.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

import actions

for _module in pkgutil.iter_modules(actions.__path__, "actions."):
    importlib.import_module(_module.name)


class ActionBenchNoop(Action):
    """Returns no events: what remains is the server's own cost per request."""

    def name(self) -> str:
        return "action_bench_noop"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        return []

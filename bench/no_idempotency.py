"""The benchmark's action package with exactly-once submissions taken out: the "off" server.

`python -m rasa_sdk --actions bench.no_idempotency` serves the same actions as
`bench.actions` (imported here), except that `IntegrationAction.file_once` is replaced, in
this process only, by `send_directly`: the vendor call and its outcome, with no claim in the
state store, no record of the outcome or of the conversation's latest submission and no
outbox. The difference in throughput between this server and the normal one is what the
product pays for filing each submission once.

This is a measuring instrument, not a setting: the product has no way to turn idempotency
off. It lives beside `bench/actions`, not inside it, because rasa-sdk imports every submodule
of the package it serves: inside `bench/actions` it would patch the normal server too.

Newer rasa-sdk loads the actions in its main process and hands them to each Sanic worker,
a spawned process, by pickling them: a worker imports only the modules that define the
actions. `action_bench_no_idempotency` is defined here so that every worker imports this
module too, and so runs the replacement; `action_bench_file_once` (in `bench.actions`) lets
the benchmark check it in every worker before it measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

import bench.actions  # noqa: F401  (every product action and the no-op)
from rasa_service_desk.actions.base import IntegrationAction
from rasa_service_desk.actions.delivery import Submission

JsonDict = dict[str, Any]


async def send_directly(self: IntegrationAction, dispatcher: CollectingDispatcher,
                        tracker: Tracker, submission: Submission, payload: JsonDict,
                        identity: Mapping[str, Any]) -> JsonDict | None:
    """`file_once` without exactly-once: the vendor call's outcome, nothing stored."""
    return await submission.kind.send(payload)


IntegrationAction.file_once = send_directly  # type: ignore[method-assign]


class ActionBenchNoIdempotency(Action):
    """Does nothing: registered so that each Sanic worker imports this module (above)."""

    def name(self) -> str:
        return "action_bench_no_idempotency"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        return []

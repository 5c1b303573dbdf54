"""The action package the benchmark serves: every product action plus a no-op.

`python -m rasa_sdk --actions bench.actions` registers all `Action` subclasses imported by
then, so this imports the four integrations' action modules (which check their settings)
and adds `action_bench_noop`: an action that does nothing, whose throughput is the ceiling
of the SDK server itself on this machine, and `action_bench_file_once`, which says which
`IntegrationAction.file_once` the worker that runs it has: the product's, or the one of the
benchmark's "off" server (`bench.no_idempotency`).

`action_bench_minimal_call` is the reference for the CPU of one vendor call: the library
search Cention's action makes, as a bare aiohttp GET with a session of its own and the
integration's token, its JSON decoded and nothing else (no HTTP layer, retries, metrics,
models or logging). Run in the same server, at the same load, it shows what a vendor call costs this
process at the least, so the product's figure can be read against it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from rasa_service_desk.actions import benti, cention, imbee, loop  # noqa: F401
from rasa_service_desk.actions.base import IntegrationAction
from rasa_service_desk.actions.runtime import integration
from rasa_service_desk.clients.cention.client import (
    JSONAPI_MEDIA_TYPE,
    QUESTION_TYPE,
    normalise_query,
    search_queries,
)
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.pool import pool_limits


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


_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def _session() -> aiohttp.ClientSession:
    """One session per worker's event loop, opened on first use and kept."""
    running = asyncio.get_running_loop()
    session = _sessions.get(running)
    if session is None:  # the product's pool sizes, so both queue for connections alike
        limits = pool_limits()
        session = _sessions[running] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            limit=limits.total, limit_per_host=limits.per_host))
    return session


class ActionBenchMinimalCall(Action):
    """One bare GET of the Cention simulator's library search (see the module's docstring),
    to the URL and with the token Cention's action uses."""

    def name(self) -> str:
        return "action_bench_minimal_call"  # bench.scenarios.MINIMAL_CALL_ACTION

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        settings: CentionSettings = integration("cention").settings
        # The phrase Cention's action sends first for this message.
        query = normalise_query(tracker.latest_message.get("text") or "order")
        phrase = search_queries(query, settings.search_strategy,
                                settings.search_fallback_queries)[0]
        async with _session().get(
                f"{settings.base_url}/capi/json/{QUESTION_TYPE}",
                params={"q_filter[phrase]": phrase, "q_filter[option]": "all"},
                headers={"Authorization": f"Bearer {settings.library_jwt}",
                         "Accept": JSONAPI_MEDIA_TYPE}) as resp:
            resp.raise_for_status()
            orjson.loads(await resp.read())
        return []

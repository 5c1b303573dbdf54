"""rasa-sdk plugin hooks, handed to rasa-sdk by the bot's `rasa_sdk_plugins` package.

rasa-sdk (3.6 and newer: "Sanic extensions") imports a top-level `rasa_sdk_plugins` package
and calls its `init_hooks`; a bot's one-line `rasa_sdk_plugins/__init__.py` re-exports
`init_hooks` from here. The hook hardens rasa-sdk's Sanic app (Sanic 21.12 and 25):

- The outbox's delivery worker (`rasa_service_desk.outbox.worker`) starts with the server,
  so submissions queued before a restart are filed without waiting for a customer, and
  stops before the server does (a delivery in flight gets a few seconds to finish).
- Garbage collection sized for a server (`ACTION_SERVER_GC_THRESHOLD`, 50,000 by default):
  when a worker starts, the objects loaded so far (rasa-sdk, Sanic, the clients) are moved
  out of the collector's sight (`gc.freeze`), and the young generation is collected every
  50,000 allocations instead of Python's 700. Each action call parses a tracker of
  thousands of objects. With 700, dozens of young collections ran per request, and what
  64 requests in flight held was promoted and traversed again and again. At 64
  conversations the Cention answer went from 865 to 1,038 req/s (CPU per request 1.47 to
  1.08 ms, p99 150 to 76 ms) in the same benchmark. Memory stays flat: the garbage of a
  request is freed by reference counting, and only cycles wait for the next collection.
- Graceful stop: on SIGTERM Sanic stops accepting, lets the requests in flight finish (up to
  `GRACEFUL_SHUTDOWN_TIMEOUT`, raised here above `ACTION_DEADLINE_SECONDS`), and only then,
  after the server stopped, the shared HTTP session is closed. (Closing it before the drain
  made every action still talking to a vendor answer HTTP 500.)
- Readiness, metrics and the drain (`rasa_service_desk.observability.server`): `/ready`
  (503 from SIGTERM on, while the action calls in flight finish), `/metrics` (Prometheus),
  and vendor-call spans under rasa-sdk's action spans when tracing is configured.
- Optional shared token (`ACTION_SERVER_TOKEN`): every route but `/health`, `/ready` and
  `/metrics` (platform probes and scrapers carry no token; neither route carries customer
  data) then requires it, as Rasa sends it (endpoints.yml `token:`, i.e. the `token` query
  parameter) or as an `Authorization: Bearer` header; it is compared in constant time, a
  miss is a bare 401.
- `/webhook` bodies are checked before rasa-sdk's handler sees them: not JSON, not an
  object, no tracker, slots that are not an object, an unknown content encoding, ... are a
  short 4xx, never a 500.
- No error reply echoes the request: rasa-sdk's own handler answers any exception with the
  request body (tracker and customer data included); here every error is a status and a
  short phrase, logged with its type and code location only.

A bot without the `rasa_sdk_plugins` package gets none of this: the action deadline, the
settings checks and the form validators still work (they live in the actions), and the
shared session is released when the process exits.
"""

from __future__ import annotations

import gc
import hmac
import logging
import traceback
import zlib
from http import HTTPStatus
from typing import Any

import pluggy

from rasa_service_desk.clients import jsoncodec

logger = logging.getLogger(__name__)

hookimpl = pluggy.HookimplMarker("rasa_sdk")

WEBHOOK_PATH = "/webhook"
OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
#: Seconds Sanic waits for requests in flight after a stop signal, beyond the deadline.
DRAIN_MARGIN_SECONDS = 2.0
#: Longest `next_action`, `version`, `sender_id` accepted (Rasa's are far shorter).
MAX_NAME_LENGTH = 200
MAX_SENDER_ID_LENGTH = 1000


class BadActionCall(Exception):
    """A `/webhook` request rasa-sdk cannot run; `status` and a short reason, no data."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _json_reply(body: dict[str, Any], status: int) -> Any:
    from sanic import response

    return response.json(body, status=status)


# -- token -----------------------------------------------------------------------------------


def presented_token(request: Any) -> str | None:
    """The token a call carries: `Authorization: Bearer <token>`, else `?token=`."""
    authorization = request.headers.get("Authorization") or ""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return str(credentials.strip())
    value = request.args.get("token")
    return str(value) if value else None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison (hmac.compare_digest) of the presented and expected token."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8"))


# -- /webhook body ---------------------------------------------------------------------------


def decoded_body(body: bytes, encoding: str, max_size: int) -> bytes:
    """The request body as rasa-sdk will read it; a deflate body is inflated with a bound."""
    if encoding in ("", "identity"):
        return body
    if encoding != "deflate":  # rasa-sdk inflates exactly "deflate" (what Rasa sends)
        raise BadActionCall(415, "unsupported Content-Encoding (only deflate)")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body, max_size + 1)
    except zlib.error:
        raise BadActionCall(400, "the body is not valid deflate data") from None
    if len(data) > max_size or inflater.unconsumed_tail:
        raise BadActionCall(413, "the inflated body is too large")
    return data


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise BadActionCall(400, reason)


def _optional(container: dict[str, Any], key: str, kinds: tuple[type, ...]) -> bool:
    return container.get(key) is None or isinstance(container[key], kinds)


def check_action_call(call: Any) -> None:
    """Raise `BadActionCall` unless `call` has the shape rasa-sdk's executor relies on
    (Rasa 3.6 and newer send it). Reasons name the field, never its value."""
    _check(isinstance(call, dict), "the body must be a JSON object")
    action = call.get("next_action")
    _check(isinstance(action, str) and 0 < len(action) <= MAX_NAME_LENGTH,
           "next_action must be an action name")
    version = call.get("version")
    _check(version is None or (isinstance(version, str) and len(version) <= MAX_NAME_LENGTH),
           "version must be a version string")
    _check(_optional(call, "domain", (dict,)), "domain must be an object")
    _check(_optional(call, "domain_digest", (str,)), "domain_digest must be a string")
    tracker = call.get("tracker")
    _check(isinstance(tracker, dict), "tracker must be an object")
    sender = tracker.get("sender_id")
    _check(isinstance(sender, str) and len(sender) <= MAX_SENDER_ID_LENGTH,
           "tracker.sender_id must be a string")
    _check(_optional(tracker, "slots", (dict,)), "tracker.slots must be an object")
    events = tracker.get("events")
    _check(events is None or (isinstance(events, list)
                              and all(isinstance(event, dict) for event in events)),
           "tracker.events must be a list of objects")
    _check(_optional(tracker, "latest_message", (dict,)),
           "tracker.latest_message must be an object")
    latest = tracker.get("latest_message") or {}
    _check(_optional(latest, "text", (str,)), "tracker.latest_message.text must be a string")
    _check(_optional(latest, "intent", (dict,)),
           "tracker.latest_message.intent must be an object")
    entities = latest.get("entities")
    _check(entities is None or (isinstance(entities, list)
                                and all(isinstance(item, dict) for item in entities)),
           "tracker.latest_message.entities must be a list of objects")
    for key in ("active_loop", "active_form"):
        _check(_optional(tracker, key, (dict,)), f"tracker.{key} must be an object")
    for key in ("followup_action", "latest_action_name", "latest_input_channel", "user_id"):
        _check(_optional(tracker, key, (str,)), f"tracker.{key} must be a string")
    _check(_optional(tracker, "paused", (bool,)), "tracker.paused must be true or false")


def parse_action_call(request: Any, max_size: int) -> Any:
    """The decoded action call of a `/webhook` request, or `BadActionCall`."""
    encoding = (request.headers.get("Content-Encoding") or "").strip()
    body = decoded_body(request.body or b"", encoding, max_size)
    if not body.strip():
        raise BadActionCall(400, "the body is empty")
    try:
        call = jsoncodec.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadActionCall(400, "the body is not JSON") from None
    check_action_call(call)
    return call


def _body_received(request: Any) -> bool:
    """Whether Sanic has read the whole body. Sanic also runs request middleware when it
    fails before the handler (e.g. a body over REQUEST_MAX_SIZE): that error is its to
    answer then, not a malformed body's."""
    stream = getattr(request, "stream", None)
    if stream is not None and getattr(stream, "request_body", None):
        return False
    length = request.headers.get("Content-Length")
    if length is not None:
        try:
            return int(length) == len(request.body or b"")
        except ValueError:
            return False
    return True


# -- the hook --------------------------------------------------------------------------------


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def _code_location(exc: BaseException) -> str:
    """Where an exception was raised (file:line in function), without its message: the
    message may quote request data."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return " <- ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
                       for frame in reversed(frames)) or "unknown location"


def tune_garbage_collection(threshold: int) -> None:
    """Freeze what start-up loaded and collect the young generation every `threshold`
    allocations (0: leave Python's settings). Runs in each worker once it serves."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


class ServerHardening:
    """The Sanic extensions of `attach_sanic_app_extensions`, one instance per app."""

    def __init__(self, token: str, deadline: float, gc_threshold: int = 0) -> None:
        self.token = token
        self.deadline = deadline
        self.gc_threshold = gc_threshold

    def attach(self, app: Any) -> None:
        from sanic.exceptions import SanicException

        from rasa_service_desk.clients.http import close_shared_sessions

        async def close_sessions(*_: Any) -> None:
            await close_shared_sessions()

        async def settle_heap(*_: Any) -> None:
            tune_garbage_collection(self.gc_threshold)

        async def start_outbox(*_: Any) -> None:
            from rasa_service_desk.actions.delivery import ensure_delivery_worker

            ensure_delivery_worker()  # queued submissions are delivered from start on

        async def stop_outbox(*_: Any) -> None:
            from rasa_service_desk.actions.delivery import stop_delivery_worker

            await stop_delivery_worker()

        app.register_listener(start_outbox, "after_server_start")
        app.register_listener(settle_heap, "after_server_start")  # last: it blocks a while
        app.register_listener(stop_outbox, "before_server_stop")
        # After the stop: Sanic has stopped accepting and drained the requests in flight.
        app.register_listener(close_sessions, "after_server_stop")
        graceful = float(getattr(app.config, "GRACEFUL_SHUTDOWN_TIMEOUT", 0) or 0)
        app.config.GRACEFUL_SHUTDOWN_TIMEOUT = max(graceful,
                                                   self.deadline + DRAIN_MARGIN_SECONDS)

        app.register_middleware(self.guard, "request")
        # Route-specific handlers win over rasa-sdk's app-wide `Exception` handler (which
        # echoes the request); `SanicException` covers errors raised before routing.
        route_names = sorted({route.name for route in app.router.routes if route.name})
        app.error_handler.add(SanicException, self.on_error)
        if route_names:
            app.error_handler.add(Exception, self.on_error, route_names)

    async def guard(self, request: Any) -> Any:
        if request.path in OPEN_PATHS or request.method == "OPTIONS":
            return None
        if self.token and not token_matches(presented_token(request), self.token):
            logger.warning("refused a call to %s without a valid ACTION_SERVER_TOKEN",
                           request.path)
            return _json_reply({"error": "unauthorized"}, 401)
        if request.path == WEBHOOK_PATH and request.method == "POST":
            if not _body_received(request):
                return None  # Sanic runs this middleware for its own error (body too large)
            max_size = int(getattr(request.app.config, "REQUEST_MAX_SIZE", 100_000_000))
            try:
                call = parse_action_call(request, max_size)
            except BadActionCall as exc:
                logger.warning("refused a malformed action call: %s (HTTP %d)", exc.reason,
                               exc.status)
                return _json_reply({"error": exc.reason}, exc.status)
            if not request.headers.get("Content-Encoding"):
                request.parsed_json = call  # rasa-sdk's handler does not parse it again
        return None

    def on_error(self, request: Any, exception: BaseException) -> Any:
        method = getattr(request, "method", "-")
        path = getattr(request, "path", "-")
        status = getattr(exception, "status_code", None)
        if isinstance(status, int) and 400 <= status < 600 and status != 500:
            logger.info("%s %s: HTTP %d (%s)", method, path, status, type(exception).__name__)
            return _json_reply({"error": _status_phrase(status)}, status)
        logger.error("%s %s failed: %s at %s", method, path, type(exception).__name__,
                     _code_location(exception))
        return _json_reply({"error": "internal server error"}, 500)


class _Hooks:
    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        from rasa_service_desk.actions.runtime import global_settings
        from rasa_service_desk.observability.server import Observability

        settings = global_settings()  # a wrong setting stops the server here (exit code 2)
        # First: its routes then get the hardened error handler too.
        Observability(settings.action_deadline_seconds + DRAIN_MARGIN_SECONDS,
                      WEBHOOK_PATH).attach(app)
        ServerHardening(settings.token, settings.action_deadline_seconds,
                        settings.action_server_gc_threshold).attach(app)
        if settings.token:
            logger.debug("action server: calls require ACTION_SERVER_TOKEN")


def init_hooks(manager: pluggy.PluginManager) -> None:
    """Called by rasa-sdk's plugin manager."""
    manager.register(_Hooks())

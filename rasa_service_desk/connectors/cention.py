"""Cention callback channel: an agent's answer to an errand comes back into the conversation.

Add to `credentials.yml` (Rasa expands `${VAR}`; keys left out fall back to the variables
in brackets):

    rasa_service_desk.connectors.cention.CentionInput:
      api_secret: ${CENTION_CALLBACK_SECRET}   # required (CENTION_CALLBACK_SECRET)
      base_url: https://api.cention.com/s/demo # attachment host (CENTION_BASE_URL)
      attachment_token: ${CENTION_ATTACHMENT_TOKEN}  # JWT with the attachment claim
                                               # (CENTION_ATTACHMENT_TOKEN, else CENTION_TOKEN)
      state_url: redis://redis:6379/0          # shared state (STATE_URL; default: a
                                               # SQLite file in Rasa's working directory)
      max_body_bytes: 1048576

and set Cention's callback endpoint to `https://<rasa host>/webhooks/cention/webhook`.

The answer reaches the conversation that created the errand as a user message with the intent
`cention_agent_answer` and the entities `cention_errand_id`, `cention_answer_text` and
`cention_attachment_names`, so the designer's rules decide what the bot says. The message is
given to Rasa already parsed (`UserMessage.parse_data`, which Rasa uses instead of the NLU
pipeline), and its text is the same in Rasa's `/intent{...}` syntax for the tracker's record.
The bot's reply goes out through the customer's latest channel when that channel can push
(`get_output_channel()`); otherwise it is held in the shared state and shown with the bot's
reply to the customer's next message by the drop-in REST channel
(`rasa_service_desk.connectors.rest.RestInput`). The delivery counts as done (a repeated
callback is a duplicate) only after Rasa has processed the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationError
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from rasa.shared.core.events import UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from rasa_service_desk.clients.cention.callback import (
    CALLBACK_CHANNEL,
    DEFAULT_MAX_BODY_BYTES,
    AgentAnswer,
    AttachmentFetcher,
    CallbackHandler,
    CallbackOutcome,
    read_request_body,
)
from rasa_service_desk.clients.cention.callback import VENDOR as CENTION
from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.clients.redact import install_redaction, register_secrets
from rasa_service_desk.clients.settings import EnvironmentSettings, url_validator
from rasa_service_desk.connectors.socketio import check_channels, nobody_connected
from rasa_service_desk.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from rasa_service_desk.observability.metrics import count_callback, exposition
from rasa_service_desk.state import StateUnavailable, load_store
from rasa_service_desk.state.held_messages import hold

logger = logging.getLogger(__name__)

INTENT = "cention_agent_answer"
ENTITY_ERRAND_ID = "cention_errand_id"
ENTITY_ANSWER_TEXT = "cention_answer_text"
ENTITY_ATTACHMENT_NAMES = "cention_attachment_names"
#: What the answer holds, for the response's variations: `text`, `text_and_files`, `files`
#: (attachments only) or `empty` (nothing readable: the answer went by email).
ENTITY_ANSWER_KIND = "cention_answer_kind"


def answer_kind(text: str, attachment_names: tuple[str, ...]) -> str:
    """`text`, `text_and_files`, `files` or `empty`: an answer without text must not show as
    an empty message, so the domain words each case on its own."""
    if text.strip():
        return "text_and_files" if attachment_names else "text"
    return "files" if attachment_names else "empty"

class CentionConnectorSettings(EnvironmentSettings):
    """The callback channel's settings: a credentials.yml key wins, else `CENTION_*` from the
    environment or `.env` of Rasa's working directory, read exactly like the action server's.
    """

    env_prefix: ClassVar[str] = "CENTION_"

    callback_secret: SecretStr = SecretStr("")
    base_url: str = ""
    attachment_token: SecretStr = SecretStr("")
    #: The one JWT for every claim, used when no attachment token is set.
    token: SecretStr = SecretStr("")
    callback_max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    attachment_timeout_seconds: float = Field(default=10.0, gt=0)

    #: The one URL check of every setting: https:// (http:// only for this machine, or with
    #: ALLOW_INSECURE_HTTP=1).
    _check_urls = url_validator("base_url")

    @property
    def attachment_jwt(self) -> str:
        own = self.attachment_token.get_secret_value()
        return own or self.token.get_secret_value()


#: credentials.yml key -> settings field (the keys predate the shared settings).
CREDENTIAL_KEYS: dict[str, str] = {
    "api_secret": "callback_secret",
    "base_url": "base_url",
    "attachment_token": "attachment_token",
    "max_body_bytes": "callback_max_body_bytes",
    "attachment_timeout": "attachment_timeout_seconds",
}


def connector_settings(credentials: dict[str, Any] | None) -> CentionConnectorSettings:
    """The settings from credentials.yml over the environment; `ConfigurationError` names
    every problem. Unknown credentials keys are refused, so a typo is not silently ignored."""
    credentials = credentials or {}
    unknown = sorted(set(credentials) - set(CREDENTIAL_KEYS) - {"state_url"})
    if unknown:
        raise ConfigurationError(
            "cention", f"unknown key(s) {', '.join(unknown)} under the Cention connector in "
            f"credentials.yml; known: {', '.join([*CREDENTIAL_KEYS, 'state_url'])}")
    values: dict[str, Any] = CentionConnectorSettings.read_environment()
    values.update({CREDENTIAL_KEYS[key]: str(value).strip() for key, value in credentials.items()
                   if key in CREDENTIAL_KEYS and value is not None and str(value).strip()})
    try:
        return CentionConnectorSettings(**values)
    except ValidationError as exc:
        keys = {field: key for key, field in CREDENTIAL_KEYS.items()}
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            where = CentionConnectorSettings.env_name(field)
            if field in keys:
                where = f"{keys[field]} ({where})"
            problems.append(f"{where}: {error['msg']}")
        raise ConfigurationError(
            "cention", "invalid connector settings in credentials.yml or the environment:\n  "
            + "\n  ".join(problems)) from None


def message_parse_data(answer: AgentAnswer, attachment_names: tuple[str, ...]) -> dict[str, Any]:
    """Rasa parse data for the answer: the intent with full confidence and its entities.

    Attachment names are one comma-separated value, empty when there are none, so the slot
    filled from it never keeps the names of an earlier answer.
    """
    values = {
        ENTITY_ERRAND_ID: answer.errand_id,
        ENTITY_ANSWER_TEXT: answer.text,
        ENTITY_ATTACHMENT_NAMES: ", ".join(attachment_names),
        ENTITY_ANSWER_KIND: answer_kind(answer.text, attachment_names),
    }
    text = f"/{INTENT}{json.dumps(values, ensure_ascii=False)}"
    entities = [
        {"entity": name, "value": value, "start": 0, "end": len(text), "extractor": "cention"}
        for name, value in values.items()
    ]
    return {
        "text": text,
        "intent": {"name": INTENT, "confidence": 1.0},
        "intent_ranking": [{"name": INTENT, "confidence": 1.0}],
        "entities": entities,
    }


class CentionInput(InputChannel):
    """Receives Cention's answer callback at `/webhooks/cention/webhook`."""

    @classmethod
    def name(cls) -> str:
        return CALLBACK_CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> CentionInput:
        settings = connector_settings(credentials)
        secret = settings.callback_secret.get_secret_value()
        if not secret:
            raise ConfigurationError(
                "cention",
                "the callback connector needs api_secret in credentials.yml (or "
                "CENTION_CALLBACK_SECRET): the Secret Key of Cention's callback settings",
            )
        if not settings.base_url:
            logger.warning("Cention connector: no base_url configured; attachment names of "
                           "agent answers will not be fetched")
        register_secrets([secret, settings.attachment_jwt])
        install_redaction()
        store = load_store(**({"url": credentials["state_url"]}
                              if credentials and credentials.get("state_url") else {}))
        handler = CallbackHandler(
            api_secret=secret,
            registry=ErrandRegistry(store),
            fetcher=AttachmentFetcher(settings.base_url, settings.attachment_jwt,
                                      timeout=settings.attachment_timeout_seconds),
            max_body_bytes=settings.callback_max_body_bytes,
        )
        return cls(handler)

    def __init__(self, handler: CallbackHandler) -> None:
        self.handler = handler

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = Blueprint("cention_webhook", __name__)

        @webhook.listener("before_server_start")
        async def check_other_channels(app: Any, _: Any) -> None:
            check_channels(list(getattr(app.ctx, "input_channels", None) or []))

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/metrics", methods=["GET"])
        async def metrics(request: Request) -> HTTPResponse:
            """Rasa's process has no /metrics of its own: callbacks are counted here."""
            return response.raw(exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})

        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            body = await read_request_body(request, self.handler.max_body_bytes)
            outcome = await self.handler.handle(body)
            if outcome.deliver:
                try:
                    await self._deliver(request, outcome, on_new_message)
                except Exception:
                    await self._release(outcome)
                    logger.exception("Cention callback: answer to errand %s could not be "
                                     "delivered", outcome.answer.errand_id if outcome.answer
                                     else "?")
                    count_callback(CENTION, 500, "delivery_failed")
                    return response.json({"status": "delivery_failed"}, status=500)
                try:
                    await self.handler.delivery_done(outcome)
                except StateUnavailable:
                    # Delivered, but not recorded as such: a repeat within the lease is
                    # still refused; after it, Cention's retry could show the answer twice.
                    logger.error("Cention callback: answer to errand %s delivered but not "
                                 "recorded (shared state unavailable)",
                                 outcome.answer.errand_id if outcome.answer else "?")
            headers = {"Retry-After": "30"} if outcome.status == 503 else None
            count_callback(CENTION, outcome.status, outcome.result)
            return response.json(outcome.body(), status=outcome.status, headers=headers)

        return webhook

    async def _deliver(
        self,
        request: Request,
        outcome: CallbackOutcome,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> None:
        answer, owner = outcome.answer, outcome.owner
        assert answer is not None and owner is not None  # outcome.deliver says so
        parse_data = message_parse_data(answer, outcome.attachment_names)
        output = await self._output_channel(request, owner.sender_id, owner.channel)
        message = UserMessage(
            text=parse_data["text"],
            output_channel=output,
            sender_id=owner.sender_id,
            parse_data=parse_data,
            input_channel=self.name(),
            metadata={"cention": {"errand_id": answer.errand_id,
                                  "callback_id": answer.callback_id,
                                  "subject": answer.subject}},
        )
        await on_new_message(message)
        if isinstance(output, CollectingOutputChannel) and output.messages:
            # No channel can push to the customer now: hold the bot's reply for their next
            # message (`rasa_service_desk.connectors.rest.RestInput` shows it).
            held = await hold(self.handler.registry.store, owner.sender_id, output.messages)
            logger.info("Cention callback %s: answer to errand %s held for the customer's "
                        "next message (%d message(s))", answer.callback_id, answer.errand_id,
                        held)
            return
        # The channel may still hold it: a socket.io customer whose socket closed meanwhile,
        # or one connected to another instance, gets it on their next message.
        logger.info("Cention callback %s: answer to errand %s handed to the %s channel",
                    answer.callback_id, answer.errand_id, output.name())

    async def _release(self, outcome: CallbackOutcome) -> None:
        try:
            await self.handler.delivery_failed(outcome)
        except StateUnavailable:
            logger.error("Cention callback: claim not released (shared state unavailable); "
                         "Cention's retry is accepted once the claim expires")

    async def _output_channel(
        self, request: Request, sender_id: str, recorded_channel: str | None
    ) -> OutputChannel:
        """The customer's latest channel if it can push to them now, else a collecting channel
        (whose messages are then held for the customer's next message)."""
        wanted = await self._latest_customer_channel(request, sender_id) or recorded_channel
        channels = getattr(request.app.ctx, "input_channels", None) or []
        for channel in channels:
            if wanted and channel.name() == wanted and channel.name() != self.name():
                try:
                    output = channel.get_output_channel()
                except Exception:
                    logger.exception("Cention callback: channel %s cannot push", wanted)
                    output = None
                if output is not None and not nobody_connected(channel, sender_id):
                    return output
        return CollectingOutputChannel()

    async def _latest_customer_channel(self, request: Request, sender_id: str) -> str | None:
        """The input channel of the customer's latest own message (not this channel's)."""
        agent = getattr(request.app.ctx, "agent", None)
        store = getattr(agent, "tracker_store", None)
        if store is None:
            return None
        try:
            tracker = await store.retrieve(sender_id)
        except Exception:
            logger.exception("Cention callback: tracker of the conversation not readable")
            return None
        for event in reversed(tracker.events if tracker is not None else []):
            if (isinstance(event, UserUttered) and event.input_channel
                    and event.input_channel != self.name()):
                return str(event.input_channel)
        return None

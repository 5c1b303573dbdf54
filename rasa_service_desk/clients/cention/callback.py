"""Cention's answer callback: check, parse and enrich it, independently of any web framework.

When an agent answers an errand, Cention POSTs a JSON:API document
(`c3_callback_answer_errands`, `attributes.event == 1`) to the configured endpoint. The only
proof of origin is `meta.api_secret`, a plain shared string, so it is compared in constant time
before the document is looked at any further. The answer itself sits in `included` as the
`c3_answer_errands` resource; attachments are only links (`links.self` as a string or as
`{"href": ...}`) that need a GET with a JWT carrying the attachment claim. Those GETs go only
to the configured Cention origin: a callback pointing elsewhere could otherwise make the bot
send its token to any host.

`CallbackHandler.handle()` turns raw request bytes into a `CallbackOutcome` (HTTP status plus,
for a deliverable answer, the answer and its owning conversation). The Rasa connector only
maps that to a response and a user message, so all of this runs and is tested without Rasa.

Models use the pydantic API shared by 1.10 (inside Rasa) and 2 (action server).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from rasa_service_desk.clients.cention.errand_registry import (
    Delivery,
    ErrandOwner,
    ErrandRegistry,
)
from rasa_service_desk.clients.cention.html import html_to_text
from rasa_service_desk.clients.cention.models import Relationship
from rasa_service_desk.clients.compat import parse_model
from rasa_service_desk.clients.errors import IntegrationError, MalformedReply
from rasa_service_desk.clients.http import HttpClient, RetryPolicy
from rasa_service_desk.state import StateUnavailable

logger = logging.getLogger(__name__)

VENDOR = "cention"
#: The input channel the connector gives an agent's answer: the answer action trusts a
#: `cention_agent_answer` message only when it came through this channel.
CALLBACK_CHANNEL = "cention"
CALLBACK_TYPE = "c3_callback_answer_errands"
ERRAND_TYPE = "c3_answer_errands"
ATTACHMENT_TYPE = "c3_response_attachments"
ANSWER_EVENT = 1
JSONAPI = "application/vnd.api+json"

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: Largest attachment document read just to learn the file's name (content is base64 inside).
MAX_ATTACHMENT_DOCUMENT_BYTES = 32 * 1024 * 1024
MAX_NAME_LENGTH = 255

# Cention quotes the customer's original message below the answer; the chat already shows it.
_QUOTED_ORIGINAL = re.compile(
    r"-{3,}\s*Cention Contact Center - Original message\s*-{3,}.*?"
    r"(?:-{3,}\s*Cention Contact Center - Original message - End\s*-{3,}|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_BLANK_LINES = re.compile(r"\n{3,}")


# -- the document (resource identifiers and relationships: clients.cention.models) -------


class LinkObject(BaseModel):
    href: str


class CallbackAttributes(BaseModel):
    event: int


class CallbackData(BaseModel):
    type: str
    id: str | int | None = None
    attributes: CallbackAttributes
    relationships: dict[str, Relationship] = Field(default_factory=dict)


class IncludedResource(BaseModel):
    type: str
    id: str | int
    attributes: dict[str, Any] = Field(default_factory=dict)
    relationships: dict[str, Relationship] = Field(default_factory=dict)
    links: dict[str, LinkObject | str | None] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return str(self.id)

    def self_link(self) -> str | None:
        """`links.self` in either documented form: a string or `{"href": ...}`."""
        link = self.links.get("self")
        if isinstance(link, LinkObject):
            return link.href
        return link or None


class CallbackDocument(BaseModel):
    data: CallbackData
    included: list[IncludedResource] = Field(default_factory=list)


class AnswerResponse(BaseModel):
    """The doc's field table types `body` and `html_body` as objects while its sample has
    strings: both are accepted (see `text_of`)."""

    subject: str | None = None
    body: Any = None
    html_body: Any = None


class Answer(BaseModel):
    c3_id: int | None = None
    response: AnswerResponse


class AnswerErrandAttributes(BaseModel):
    answer: Answer


class AttachmentFile(BaseModel):
    name: str = ""
    content_type: str | None = None


class AttachmentAttributes(BaseModel):
    attachment: AttachmentFile


class AttachmentData(BaseModel):
    attributes: AttachmentAttributes


class AttachmentDocument(BaseModel):
    data: AttachmentData


# -- what the bot needs ------------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentLink:
    id: str
    url: str


@dataclass(frozen=True)
class AgentAnswer:
    """An agent's answer to one errand, reduced to what a conversation can show."""

    callback_id: str
    errand_id: str
    event: int
    subject: str
    text: str
    attachments: tuple[AttachmentLink, ...] = ()


#: Keys under which a body given as an object may carry its text (the doc names none).
_TEXT_KEYS = ("text", "value", "content", "body", "html", "html_body", "plain")


def text_of(value: Any) -> str:
    """A body as text: a string as it is; an object's text under a likely key, else its only
    string value; a list's strings joined. Anything else is no text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if isinstance(value.get(key), str) and value[key].strip():
                return str(value[key])
        strings = [v for v in value.values() if isinstance(v, str) and v.strip()]
        return strings[0] if len(strings) == 1 else ""
    if isinstance(value, list):
        return "\n".join(text_of(item) for item in value if text_of(item))
    return ""


def answer_text(body: Any, html_body: Any) -> str:
    """The answer as chat text: the HTML version (links kept) when there is one, else the
    plain body; without the quoted original message Cention appends."""
    html, plain = text_of(html_body), text_of(body)
    text = html_to_text(html) if html.strip() else plain
    text = _QUOTED_ORIGINAL.sub("", text.replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def parse_callback(document: Any) -> AgentAnswer:
    """Validate a callback document and extract the answer; `MalformedReply` when it is not
    a callback Cention documents (wrong type, no errand, no answer)."""
    parsed = parse_model(CallbackDocument, document, VENDOR)
    data = parsed.data
    if data.type != CALLBACK_TYPE:
        raise MalformedReply(VENDOR, f"callback of unexpected type {data.type[:60]!r}")
    callback_id = "" if data.id is None else str(data.id)
    relationship = data.relationships.get("errand")
    errands = relationship.identifiers() if relationship else []
    if data.attributes.event != ANSWER_EVENT:
        # Other events are not documented yet: acknowledged, whatever they carry.
        errand_id = errands[0].key.strip() if len(errands) == 1 else ""
        return AgentAnswer(callback_id, errand_id, data.attributes.event, "", "")
    if len(errands) != 1 or not errands[0].key.strip():
        raise MalformedReply(VENDOR, "callback without exactly one errand relationship")
    errand_id = errands[0].key.strip()

    nodes = {(node.type, node.key): node for node in parsed.included}
    errand = nodes.get((ERRAND_TYPE, errand_id))
    if errand is None:
        raise MalformedReply(VENDOR, "callback does not include the answered errand")
    response = parse_model(AnswerErrandAttributes, errand.attributes, VENDOR).answer.response

    wanted = [i.key for i in errand.relationships.get("attachments", Relationship()).identifiers()
              if i.type == ATTACHMENT_TYPE]
    if not wanted and "attachments" not in errand.relationships:
        wanted = [node.key for node in parsed.included if node.type == ATTACHMENT_TYPE]
    links = []
    for key in dict.fromkeys(wanted):
        node = nodes.get((ATTACHMENT_TYPE, key))
        url = node.self_link() if node else None
        if url:
            links.append(AttachmentLink(key, url))
        else:
            logger.warning("Cention callback: attachment %s of errand %s has no link",
                           key, errand_id)
    return AgentAnswer(
        callback_id=callback_id,
        errand_id=errand_id,
        event=data.attributes.event,
        subject=(response.subject or "").strip(),
        text=answer_text(response.body, response.html_body),
        attachments=tuple(links),
    )


def secret_matches(document: Any, expected: str) -> bool:
    """Whether `meta.api_secret` equals the configured secret, compared in constant time."""
    meta = document.get("meta") if isinstance(document, dict) else None
    given = meta.get("api_secret") if isinstance(meta, dict) else None
    if not expected:
        return False
    if not isinstance(given, str):
        given = ""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# -- attachments -------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return parts.scheme.lower(), parts.hostname.lower().rstrip("."), port


def _clean_name(name: str) -> str:
    return _CONTROL.sub(" ", name).strip()[:MAX_NAME_LENGTH]


class AttachmentFetcher:
    """Learns attachment file names from Cention, fetching only from Cention's own origin.

    `base_url` is the workspace URL (e.g. https://api.cention.com/s/demo); a link is fetched
    only when its scheme, host and port are the same, it has no user info, and redirects are
    not followed. Everything else is refused and logged (host only, never the link).
    """

    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.origin = _origin(base_url) if base_url else None
        self.token = token
        self.timeout = timeout
        # The shared HTTP layer: its session, timeouts and typed errors; reads are retried.
        self.http = HttpClient(VENDOR, timeout=timeout, retry=RetryPolicy(attempts=2))

    def allowed(self, url: str) -> bool:
        return self.origin is not None and _origin(url) == self.origin

    async def names(self, links: Sequence[AttachmentLink]) -> list[str]:
        """File names of the attachments that could be fetched, in the callback's order."""
        allowed = []
        for link in links:
            if self.allowed(link.url):
                allowed.append(link)
            else:
                host = urlsplit(link.url).hostname or "?"
                logger.warning(
                    "Cention callback: refused attachment %s on host %s (not the configured "
                    "Cention host)", link.id, host,
                )
        if not allowed:
            return []
        if not self.token:
            logger.warning("Cention callback: no attachment token configured; %d attachment "
                           "name(s) not fetched", len(allowed))
            return []
        results = await asyncio.gather(*(self._name(link) for link in allowed))
        return [name for name in results if name]

    async def _name(self, link: AttachmentLink) -> str:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": JSONAPI}
        try:
            reply = await self.http.request(
                "GET", link.url, headers=headers, params={"without_content": "true"},
                allow_redirects=False, max_body_bytes=MAX_ATTACHMENT_DOCUMENT_BYTES,
                operation="attachment_name",
            )
            document = parse_model(AttachmentDocument, reply.json(), VENDOR)
        except IntegrationError as exc:
            logger.warning("Cention callback: attachment %s not fetched: %s", link.id,
                           exc.message)
            return ""
        return _clean_name(document.data.attributes.attachment.name)


# -- the whole request -------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackOutcome:
    """What to answer Cention, and for a deliverable answer, where it goes."""

    status: int
    result: str
    answer: AgentAnswer | None = None
    owner: ErrandOwner | None = None
    attachment_names: tuple[str, ...] = field(default=())

    @property
    def deliver(self) -> bool:
        return self.answer is not None and self.owner is not None

    def body(self) -> dict[str, str]:
        return {"status": self.result}


class CallbackHandler:
    """Checks a callback request and finds the conversation its answer belongs to."""

    def __init__(
        self,
        *,
        api_secret: str,
        registry: ErrandRegistry,
        fetcher: AttachmentFetcher,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not api_secret:
            raise ValueError("the callback secret is required")
        self.api_secret = api_secret
        self.registry = registry
        self.fetcher = fetcher
        self.max_body_bytes = max_body_bytes

    async def handle(self, body: bytes | None) -> CallbackOutcome:
        """Status 413 too large, 401 unauthenticated, 400 malformed, 200 otherwise."""
        if body is None or len(body) > self.max_body_bytes:
            logger.warning("Cention callback refused: body over %d bytes", self.max_body_bytes)
            return CallbackOutcome(413, "too_large")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            document = None  # no readable secret: refused as unauthenticated below
        if not secret_matches(document, self.api_secret):
            logger.warning("Cention callback refused: missing or wrong api_secret")
            return CallbackOutcome(401, "unauthorized")
        try:
            answer = parse_callback(document)
        except MalformedReply as exc:
            logger.warning("Cention callback refused: %s", exc.message)
            return CallbackOutcome(400, "malformed")
        if answer.event != ANSWER_EVENT:
            logger.info("Cention callback %s: event %s ignored", answer.callback_id, answer.event)
            return CallbackOutcome(200, "ignored", answer)
        try:
            owner = await self.registry.owner(answer.errand_id)
            if owner is None:
                logger.warning("Cention callback %s: errand %s is not one of this bot's "
                               "errands; acknowledged and dropped",
                               answer.callback_id, answer.errand_id)
                return CallbackOutcome(200, "unknown_errand", answer)
            key = delivery_key(answer)
            claim = await self.registry.begin_delivery(key) if key else Delivery.CLAIMED
        except StateUnavailable as exc:
            # Not acknowledged: Cention keeps the answer and calls again later.
            logger.error("Cention callback %s: shared state unavailable (%s); answered 503 so "
                         "Cention retries", answer.callback_id, exc)
            return CallbackOutcome(503, "state_unavailable", answer)
        if claim is Delivery.DELIVERED:
            logger.info("Cention callback %s for errand %s was already delivered",
                        answer.callback_id, answer.errand_id)
            return CallbackOutcome(200, "duplicate", answer)
        if claim is Delivery.IN_PROGRESS:
            logger.info("Cention callback %s for errand %s is being delivered; answered 503 so "
                        "a failure of that delivery is retried", answer.callback_id,
                        answer.errand_id)
            return CallbackOutcome(503, "in_progress", answer)
        names = await self.fetcher.names(answer.attachments)
        return CallbackOutcome(200, "accepted", answer, owner, tuple(names))

    async def delivery_done(self, outcome: CallbackOutcome) -> None:
        """Rasa has processed the answer: a repeat of this callback is now a duplicate."""
        key = delivery_key(outcome.answer) if outcome.answer else ""
        if key:
            await self.registry.delivery_done(key)

    async def delivery_failed(self, outcome: CallbackOutcome) -> None:
        """Release the claim of an answer that could not be delivered, so Cention's next
        attempt (if it retries) is not taken for a duplicate."""
        key = delivery_key(outcome.answer) if outcome.answer else ""
        if key:
            await self.registry.delivery_failed(key)


def delivery_key(answer: AgentAnswer) -> str:
    """One callback of one errand; empty (no duplicate check) when the callback has no id:
    two equal answers without ids may well be two answers."""
    return f"{answer.errand_id}:{answer.callback_id}" if answer.callback_id else ""


async def read_limited(chunks: AsyncIterable[bytes], limit: int) -> bytes | None:
    """Read an async stream of byte chunks (`async for`), stopping as soon as it exceeds
    `limit`: None then, so an oversized body is never held in memory in full."""
    received = bytearray()
    async for chunk in chunks:
        received.extend(chunk)
        if len(received) > limit:
            return None
    return bytes(received)


async def read_request_body(request: Any, limit: int) -> bytes | None:
    """The body of a Sanic request routed with `stream=True` (sanic 21 to 25), or None when it
    is over `limit`: refused from `Content-Length` at once, or while streaming a chunked body.
    """
    declared = str(request.headers.get("content-length", "")).strip()
    if declared.isdigit() and int(declared) > limit:
        return None
    stream = getattr(request, "stream", None)
    if stream is None:  # not a streamed route: Sanic has read the body already
        body = request.body or b""
        return None if len(body) > limit else bytes(body)
    return await read_limited(stream, limit)

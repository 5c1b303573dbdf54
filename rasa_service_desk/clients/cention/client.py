"""Async client of Cention's JSON:API: library search for customers, and new errands.

- Content negotiation per JSON:API: every request sends `Accept: application/vnd.api+json`,
  bodies go out as `Content-Type: application/vnd.api+json`, both without media-type
  parameters (a JSON:API server answers 415/406 to those).
- Each call uses the JWT of its claim: library reads the library token, errands the errand token.
- Customers only ever see questions published in an external library (`c3_external_libraries`),
  unless the operator allows internal libraries: search results, top-list entries and picked
  questions are all checked against that set, so an agents-only answer cannot leak even when
  Cention's search returns it.
- Library reads are cached for `CENTION_CACHE_TTL_SECONDS`, per normalised query.
- Errand follow-ups (`errand_report`, `end_errand`, `save_contact_card`) use the tokens of
  their claims: "Access to errand data" (`report_token`) and "Access and create customer
  contacts" (`contact_token`), each falling back to `CENTION_TOKEN`, then to the errand
  token (one JWT may carry several claims).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from rasa_service_desk.clients.cention.cache import TtlCache
from rasa_service_desk.clients.cention.errands import (
    REPORT_FIELDS,
    REPORT_TYPE,
    ContactCard,
    ErrandAnswer,
    ErrandReport,
    parse_report,
)
from rasa_service_desk.clients.cention.html import library_text
from rasa_service_desk.clients.cention.models import Document, LibraryQuestion, Resource, error_text
from rasa_service_desk.clients.cention.settings import CentionSettings
from rasa_service_desk.clients.compat import parse_model
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    IntegrationError,
    MalformedReply,
    RejectedInput,
)
from rasa_service_desk.clients.http import HttpClient, HttpResponse, RetryPolicy

logger = logging.getLogger(__name__)

VENDOR = "cention"
JSONAPI_MEDIA_TYPE = "application/vnd.api+json"
QUESTION_TYPE = "c3_library_questions"
MAX_PHRASE_LENGTH = 200

_WORD = re.compile(r"\w+")
_ID = re.compile(r"^[0-9]{1,18}$")
# Words too common to tell two library questions apart when ranking them.
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "can", "could", "do", "does", "for", "from", "have", "how", "i",
    "in", "is", "it", "me", "my", "of", "on", "or", "our", "the", "to", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your", "am", "be", "been", "was", "were",
    "get", "got", "need", "want", "please", "would", "should", "there", "this", "that", "at",
    "by", "if", "we", "us", "any", "about", "just", "still",
})


def normalise_query(phrase: str) -> str:
    """Lower-case words joined by single spaces: the cache key and the phrase sent."""
    return " ".join(_WORD.findall(phrase.casefold()))[:MAX_PHRASE_LENGTH].strip()


def _significant(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS}


def search_queries(query: str, strategy: str, fallbacks: int) -> list[str]:
    """The phrases to send for a normalised question, in order, until one finds something.

    Cention does not document how `q_filter[phrase]` matches. A workspace that needs every
    word, or the exact phrase, finds nothing for a whole sentence ("when will i get my
    refund"), so the default `keywords` strategy sends the significant words first (stop
    words dropped: "get refund") and then, one at a time, the longest of them ("refund"),
    which finds what any matching mode would. `sentence` sends the question as typed.
    """
    if strategy == "sentence":
        return [query]
    words = [w for w in dict.fromkeys(_WORD.findall(query)) if w not in _STOPWORDS]
    if not words:
        return [query]
    queries = [" ".join(words)]
    for word in sorted(words, key=len, reverse=True)[:fallbacks]:
        if len(words) > 1 and len(word) >= 3:
            queries.append(word)
    return queries


def rank(query: str, questions: list[LibraryQuestion]) -> list[LibraryQuestion]:
    """Best match first: query words found in the title count double, in the question once.

    Cention does not document an order for search results, so ties keep its order.
    """
    wanted = _significant(query)

    def score(question: LibraryQuestion) -> int:
        return 2 * len(wanted & _significant(question.title)) + len(
            wanted & _significant(question.question)
        )

    return sorted(questions, key=score, reverse=True)


@dataclass(frozen=True)
class NewErrand:
    """What the bot hands to an agent. `message_id` must be the same when a request is retried.

    `cuid` is stored on the customer's contact card (an id from another system); `answer`
    creates the errand already closed, with that answer (it never reaches an agent's queue).
    """

    message_id: str
    name: str
    email: str
    subject: str
    body: str
    extradata: Mapping[str, Any] = field(default_factory=dict)
    cuid: str = ""
    answer: ErrandAnswer | None = None


class CentionClient:
    """One per process (see `actions.runtime.client`), so the cache serves every conversation."""

    def __init__(
        self,
        settings: CentionSettings,
        http: HttpClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.http = http or HttpClient(
            VENDOR,
            timeout=settings.timeout_seconds,
            retry=RetryPolicy(attempts=settings.retry_attempts),
            error_message=error_text,
        )
        self._cache: TtlCache[Any] = TtlCache(settings.cache_ttl_seconds, clock=clock)

    # -- library -------------------------------------------------------------------
    async def search(self, phrase: str) -> list[LibraryQuestion]:
        """Questions matching `phrase` that customers may see, best match first."""
        query = normalise_query(phrase)
        if not query:
            return []
        result: list[LibraryQuestion] = await self._cache.get(
            ("search", query), lambda: self._search(query)
        )
        return list(result)

    async def popular(self) -> list[LibraryQuestion]:
        """The top-list questions customers may see, in Cention's order."""
        result: list[LibraryQuestion] = await self._cache.get(("toplist",), self._popular)
        return list(result)

    async def question(self, question_id: str) -> LibraryQuestion | None:
        """One question by id, or None when it does not exist or customers may not see it."""
        question_id = str(question_id).strip()
        if not _ID.match(question_id):
            return None
        allowed = await self._allowed_questions()
        if allowed is not None and question_id not in allowed:
            return None
        found: LibraryQuestion | None = await self._cache.get(
            ("question", question_id), lambda: self._question(question_id)
        )
        return found

    async def _search(self, query: str) -> list[LibraryQuestion]:
        allowed = await self._allowed_questions()
        strategy = self.settings.search_strategy
        for phrase in search_queries(query, strategy, self.settings.search_fallback_queries):
            document = await self._get(
                "search_questions", QUESTION_TYPE,
                {"q_filter[phrase]": phrase, "q_filter[option]": "all"},
            )
            found = self._visible(document, allowed)
            if found:
                return rank(query, found)
        return []

    async def _popular(self) -> list[LibraryQuestion]:
        allowed = await self._allowed_questions()
        document = await self._get("popular_questions", QUESTION_TYPE,
                                        {"filter[toplist]": "true"})
        return self._visible(document, allowed)

    async def _question(self, question_id: str) -> LibraryQuestion | None:
        try:
            document = await self._get("get_question", f"{QUESTION_TYPE}/{question_id}")
        except RejectedInput as exc:
            if exc.status == 404:
                return None
            raise
        found = [q for q in document.resources() if q.type == QUESTION_TYPE]
        return _library_question(found[0]) if found else None

    def _visible(self, document: Document, allowed: frozenset[str] | None) -> list[LibraryQuestion]:
        return [
            _library_question(resource)
            for resource in document.resources()
            if resource.type == QUESTION_TYPE and (allowed is None or resource.key in allowed)
        ]

    async def _allowed_questions(self) -> frozenset[str] | None:
        """Ids of the questions customers may see; None when internal libraries are allowed."""
        if self.settings.allow_internal_libraries:
            return None
        allowed: frozenset[str] = await self._cache.get(("external",), self._external_questions)
        return allowed

    async def _external_questions(self) -> frozenset[str]:
        """Questions listed by the external libraries, and by their external sub-libraries.

        Categories are not followed: in Cention a category can group questions of several
        libraries, internal ones included, so only a library's own `questions` count.
        """
        document = await self._get("list_libraries", "c3_external_libraries")
        libraries = {r.key: r for r in document.resources()}
        allowed: set[str] = set()
        seen: set[str] = set()
        pending = list(libraries)
        while pending:
            key = pending.pop()
            if key in seen:
                continue
            seen.add(key)
            library = libraries[key]
            allowed.update(q.key for q in library.related("questions") if q.type == QUESTION_TYPE)
            pending.extend(s.key for s in library.related("libraries") if s.key in libraries)
        return frozenset(allowed)

    # -- errands -------------------------------------------------------------------
    async def create_errand(self, errand: NewErrand) -> str:
        """Create the errand and return its id (Cention's reference for it)."""
        attributes: dict[str, Any] = {
            "msg": {
                "message_id": errand.message_id,
                "name": errand.name,
                "from": errand.email,
                "subject": errand.subject,
                "body": errand.body,
                "html_body": "",
                "attachments": [],
            },
            "extradata": {"message_id": errand.message_id, **errand.extradata},
        }
        if errand.cuid:
            attributes["cuid"] = errand.cuid
        if errand.answer is not None:
            attributes["answer"] = errand.answer.as_json()
        body = {"data": {"type": "c3_new_errands", "attributes": attributes}}
        reply = await self._post("create_errand", "c3_new_errands", body,
                                 self.settings.errand_jwt)
        created = self._document(reply).resources()
        if len(created) != 1 or created[0].type != "c3_new_errands" or not created[0].key:
            raise MalformedReply(VENDOR, "c3_new_errands reply without an errand id")
        return created[0].key

    async def errand_report(self, errand_id: str) -> ErrandReport | None:
        """The errand's state from its report, or None when Cention has no such errand.

        Reading a report clears the errand's dirty flag, which other integrations of the
        workspace may poll (`c3_dirty_errand_list`); unless the report says the errand had
        not changed, the flag is set again, so they still see the change.
        """
        errand_id = str(errand_id).strip()
        if not _ID.match(errand_id):
            return None
        token = self.report_jwt
        try:
            document = await self._get(
                "errand_report", f"{REPORT_TYPE}/{errand_id}",
                {f"fields[{REPORT_TYPE}]": ",".join(REPORT_FIELDS)},
                token=token,
            )
        except RejectedInput as exc:
            if exc.status == 404:
                return None
            raise
        except AuthenticationError as exc:
            raise AuthenticationError(
                VENDOR, f"errand report refused ({exc.message}): the token needs the "
                "'Access to errand data' claim (CENTION_REPORT_TOKEN)",
                status=exc.status, vendor_message=exc.vendor_message) from None
        found = [r for r in document.resources() if r.type == REPORT_TYPE]
        if len(found) != 1:
            raise MalformedReply(VENDOR, "errand report reply without the errand")
        report = parse_report(found[0], errand_id)
        if report.changed is not False:
            await self._mark_changed(errand_id, token)
        return report

    async def _mark_changed(self, errand_id: str, token: str) -> None:
        """Set the errand's dirty flag again; a failure is logged, never raised."""
        body = {"data": {"type": "c3_dirty_errand_list",
                         "attributes": {"errands": [int(errand_id)]}}}
        try:
            await self._post("mark_errand_changed", "c3_dirty_errand_list", body, token,
                             idempotent=True)
        except IntegrationError as exc:
            logger.warning("cention errand %s: could not mark it changed again after "
                           "reading its report (%s)", errand_id, type(exc).__name__)

    async def end_errand(self, errand_id: str, answer: ErrandAnswer) -> None:
        """Close the errand (`c3_end_errands`) as `answer.user`, with `answer`'s text."""
        errand_id = str(errand_id).strip()
        if not _ID.match(errand_id):
            raise RejectedInput(VENDOR, "an errand id is a number")
        body = {"data": {"type": "c3_end_errands", "attributes": {
            "errand_id": int(errand_id), "answer": answer.as_json()}}}
        reply = await self._post("end_errand", "c3_end_errands", body, self.settings.errand_jwt)
        # The doc shows no reply: any success counts (the errand may well be closed now),
        # unless it is a JSON:API error document.
        try:
            document = reply.json()
        except MalformedReply:
            return
        if isinstance(document, dict) and document.get("errors") and not document.get("data"):
            raise RejectedInput(VENDOR, f"error document with HTTP {reply.status}",
                                status=reply.status, vendor_message=error_text(document))

    async def save_contact_card(self, card: ContactCard) -> str:
        """Create the customer's contact card, or add these contacts to the card that has
        one of them already (Cention's documented "append instead of duplicate"): the id."""
        contacts = card.contacts()
        if not (contacts.get("email") or contacts.get("voice")):
            raise RejectedInput(VENDOR, "a contact card needs an email address or a phone")
        body = {"data": {"type": "c3_contact_cards", "attributes": {"contacts": contacts}}}
        token = self._claim_jwt("contact_token")
        try:
            reply = await self._post("save_contact_card", "c3_contact_cards", body, token)
        except AuthenticationError as exc:
            raise AuthenticationError(
                VENDOR, f"contact card refused ({exc.message}): the token needs the "
                "'Access and create customer contacts' claim (CENTION_CONTACT_TOKEN)",
                status=exc.status, vendor_message=exc.vendor_message) from None
        saved = self._document(reply).resources()
        if len(saved) != 1 or saved[0].type != "c3_contact_cards" or not saved[0].key:
            raise MalformedReply(VENDOR, "c3_contact_cards reply without a card id")
        return saved[0].key

    @property
    def report_jwt(self) -> str:
        """The JWT carrying the "Access to errand data" claim."""
        return self._claim_jwt("report_token")

    def _claim_jwt(self, name: str) -> str:
        """The token of setting `name`, else `CENTION_TOKEN`, else the errand token."""
        candidate: Any
        for candidate in (getattr(self.settings, name, None), self.settings.token):
            value = (candidate.get_secret_value() if isinstance(candidate, SecretStr)
                     else candidate)
            if isinstance(value, str) and value:
                return value
        return self.settings.errand_jwt

    # -- transport -----------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}/capi/json/{path}"

    def _headers(self, jwt: str) -> dict[str, str]:
        if not jwt:
            raise ConfigurationError(VENDOR, "no token configured for this request")
        return {"Authorization": f"Bearer {jwt}", "Accept": JSONAPI_MEDIA_TYPE}

    # `operation` names each call in metrics and traces (never the path: it carries ids).
    async def _get(self, operation: str, path: str, params: Mapping[str, str] | None = None,
                   token: str | None = None) -> Document:
        jwt = self.settings.library_jwt if token is None else token
        reply = await self.http.request(
            "GET", self._url(path), params=params, headers=self._headers(jwt),
            operation=operation,
        )
        return self._document(reply)

    async def _post(self, operation: str, path: str, body: Any, token: str,
                    idempotent: bool | None = None) -> HttpResponse:
        return await self.http.request(
            "POST",
            self._url(path),
            data=json.dumps(body).encode(),
            headers={**self._headers(token), "Content-Type": JSONAPI_MEDIA_TYPE},
            idempotent=idempotent,
            operation=operation,
        )

    def _document(self, reply: HttpResponse) -> Document:
        body = reply.json()
        document = parse_model(Document, body, VENDOR)
        if document.errors and document.data is None:
            raise RejectedInput(VENDOR, f"error document with HTTP {reply.status}",
                                status=reply.status, vendor_message=error_text(body))
        return document


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _library_question(resource: Resource) -> LibraryQuestion:
    attributes = resource.attributes
    subject = library_text(_text(attributes.get("subject")))
    question = library_text(_text(attributes.get("question")))
    answer_html = _text(attributes.get("answer"))
    return LibraryQuestion(
        id=resource.key,
        title=subject or question.split("\n", 1)[0],
        question=question,
        answer=library_text(answer_html),
        answer_html=answer_html,
    )

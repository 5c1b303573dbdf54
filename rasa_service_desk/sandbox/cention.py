"""Cention simulator: the library JSON:API, errands (new, closed, reported), contact cards,
attachments, and the answer callback.

Served under `/s/{workspace}/capi/json/...` like a Cention workspace. Faithful to the vendor
documentation where it speaks: JSON:API content negotiation (415 for a request media type with
parameters, 406 when every `application/vnd.api+json` in `Accept` has parameters), bearer JWTs
per claim (401 unknown token, 403 token without the endpoint's claim), the documented sample
shapes. Where it is silent, the simulator chooses and says so:

- search (`q_filter[phrase]`) matches a question when any word of three letters or more
  appears in the searched fields (mode `any`), and returns matches in database (id) order.
  Stricter modes, for tests of what a real workspace might do: `all` (every word of the
  phrase appears) and `phrase` (the phrase appears as typed, words in order); set with
  `POST /_sandbox/search-mode {"mode": "any" | "all" | "phrase"}` (reset: `any`);
- errors are JSON:API error documents `{"errors": [{"status", "title", "detail"}]}`;
- a second errand with an already used `message_id` returns the first errand (mail dedup);
- errands live through the states the errand report shows: new (`basic.acquired` false),
  opened by an agent (`acquired`, an "opened by agent" action), answered and closed (the
  agent's answer, `/_sandbox/answer`), or closed through `c3_end_errands` (`answered` only
  when the closing answer has a body) or created closed with an `answer` object; each action
  is listed in `actions` like the documented sample, with a UTC `time`;
- `c3_errand_reports/<id>` honours sparse fieldsets (`fields[c3_errand_reports]=a,b`), an
  unknown id is 404; reading a report clears the errand's dirty flag and `changed` says
  whether it was set; `c3_dirty_errand_list` lists (GET) and sets (POST) the flags;
- `c3_end_errands` wants a numeric `errand_id` (a number or a string of digits), an
  `answer` with a documented `user_type` and a `user_id`; an unknown errand is 404, an
  already closed one 409; the reply is `{"data": {"type": "c3_end_errands", "id"}}`;
- `c3_contact_cards` appends to the first card (lowest id) holding any of the given
  contacts, without duplicates (200), or creates a card (201); the name may come in
  `contacts.name` (as in the sample) or `attributes.name` (as in the field table); `voice`
  numbers need their plus sign;
- the demo errand JWT also carries the "Access to errand data" and "Access and create
  customer contacts" claims (one JWT may carry several), and there are demo JWTs with only
  those claims (`SANDBOX_REPORT_TOKEN`, `SANDBOX_CONTACT_TOKEN`).

Control routes beside the base ones:

- `POST /_sandbox/callback` <- `{"url", "api_secret"}` where agent answers are sent (defaults:
  `CENTION_SANDBOX_CALLBACK_URL`, `CENTION_SANDBOX_CALLBACK_SECRET`);
- `POST /_sandbox/answer` <- `{"errand_id", "body", "html_body", "subject", "attachments":
  [{"name", "content_type", "content"}], "callback_url", "api_secret"}`: an agent answers the
  errand (it is then answered and closed); posts a `c3_callback_answer_errands` document
  shaped like the documented sample and returns `{"status": <callback's HTTP status>,
  "body": ..., "payload": ...}`;
- `POST /_sandbox/open` <- `{"errand_id", "agent"}`: an agent opens (acquires) the errand.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web

# Demo JWTs (not secret): SANDBOX_REPORT_TOKEN and SANDBOX_CONTACT_TOKEN carry only the
# "Access to errand data" or "Access and create customer contacts" claim.
from rasa_service_desk.clients.cention.settings import (
    SANDBOX_CONTACT_TOKEN,
    SANDBOX_ERRAND_TOKEN,
    SANDBOX_LIBRARY_TOKEN,
    SANDBOX_REPORT_TOKEN,
)
from rasa_service_desk.sandbox.core import Fault, Routes, Simulator

JSONAPI = "application/vnd.api+json"
API = "/s/{workspace}/capi/json"

#: The demo JWTs of the sandbox settings and the claims they carry.
DEMO_TOKENS: dict[str, frozenset[str]] = {
    SANDBOX_LIBRARY_TOKEN: frozenset({"library", "attachment"}),
    SANDBOX_ERRAND_TOKEN: frozenset({"errand", "attachment", "errand_data", "contacts"}),
    SANDBOX_REPORT_TOKEN: frozenset({"errand_data"}),
    SANDBOX_CONTACT_TOKEN: frozenset({"contacts"}),
}
#: `answer.user_type` values the doc lists.
USER_TYPES = ("cention", "solidus", "clearinteract")
#: Contact fields of `c3_contact_cards` the doc lists.
CONTACT_FIELDS = ("email", "facebook", "vk", "line", "voice")
#: The workspace's users, by database id (the closing user of the sandbox is "1").
USERS = {"1": "Service Bot", "2": "System Administrator"}

_TAGS = re.compile(r"<[^>]+>")
# Words the simulated search ignores (like a full-text index's stop list).
_STOPWORDS = frozenset({"and", "are", "can", "does", "for", "how", "the", "what", "where",
                        "who", "why", "with", "you", "your"})
_WORDS = re.compile(r"\w+")
SEARCH_MODES = ("any", "all", "phrase")
# A 1x1 transparent PNG: the image embedded in answers (`c3_area_archives`).
_PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


@dataclass
class Question:
    id: int
    subject: str
    question: str
    answer: str
    toplist: bool = False
    attachments: list[int] = field(default_factory=list)


@dataclass
class Library:
    id: int
    name: str
    external: bool
    questions: list[int] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    libraries: list[int] = field(default_factory=list)


@dataclass
class Category:
    id: int
    name: str
    questions: list[int] = field(default_factory=list)
    libraries: list[int] = field(default_factory=list)


def _seed_questions() -> dict[int, Question]:
    items = [
        Question(1, "Password reset for locked accounts (agents only)",
                 "<div>password reset locked account</div>",
                 "<p>INTERNAL: unlock the account in the admin console with the master key "
                 "before you reset the password.</p>", toplist=True),
        Question(2, "How do I reset my password?", "<div dir=\"ltr\">I forgot my password</div>",
                 "<p>Open <a href=\"https://example.com/account/reset\">the password reset page"
                 "</a> and enter your email address.</p><script>trackView('reset')</script>"
                 "<style>p { color: red; }</style>", toplist=True),
        Question(5, "help me!", "<div dir=\"ltr\">first HELP me!</div>\n",
                 "<p>INTERNAL: escalate to second line support.</p>"),
        Question(6, "Where is my order?", "<div>track my order delivery</div>",
                 "<p>You can follow it under <b>My orders</b> on "
                 "<a href=\"https://example.com/orders\">your account page</a>.</p>", toplist=True),
        Question(7, "Can I change my password in the app?", "<div>change password app</div>",
                 "<p>Yes: open <em>Settings</em> &rarr; <em>Security</em> and choose "
                 "<strong>Change password</strong>.</p>"),
        Question(8, "What are your opening hours?", "<div>opening hours open</div>",
                 "<p>Monday to Friday, 9:00&ndash;17:00.</p>"),
        Question(10, "How do I return an item?", "<div>return refund item</div>",
                 "<p>Print the return label and drop the parcel at any post office.</p>",
                 attachments=[2020]),
    ]
    return {q.id: q for q in items}


def _seed_libraries() -> dict[int, Library]:
    items = [
        Library(3, "cention-org - customer help", True, questions=[2, 6, 7, 8],
                categories=[3], libraries=[9]),
        Library(4, "cention-org - agent handbook", False, questions=[1, 5, 2]),
        Library(9, "cention-org - returns", True, questions=[10]),
    ]
    return {lib.id: lib for lib in items}


def _plain(text: str) -> str:
    return html.unescape(_TAGS.sub(" ", text)).casefold()


class CentionSimulator(Simulator):
    name = "cention"

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(latency)

    # -- state ---------------------------------------------------------------------
    def reset_state(self) -> None:
        self.questions = _seed_questions()
        self.libraries = _seed_libraries()
        self.categories = {3: Category(3, "getting started", questions=[5, 8], libraries=[4, 3])}
        self.library_attachments = {
            2020: {"name": "return-label.txt", "content_type": "text/plain",
                   "content": base64.b64encode(b"Return label: RMA-0001").decode()},
        }
        self.errands: dict[str, dict[str, Any]] = {}
        #: message_id -> errand id: a message sent again gets its errand (no scan of all).
        self.errand_by_message: dict[str, str] = {}
        self.search_mode = "any"
        self.next_errand = 511055
        self.next_action = 83
        self.contact_cards: dict[int, dict[str, Any]] = {}
        self.next_card = 13
        self.response_attachments: dict[int, dict[str, str]] = {}
        self.archives: dict[int, dict[str, str]] = {}
        self.next_ids = {"attachment": 788, "archive": 12, "callback": 76, "answer": 1189,
                         "response": 3304}
        self.callback_url = os.environ.get("CENTION_SANDBOX_CALLBACK_URL", "")
        self.callback_secret = os.environ.get("CENTION_SANDBOX_CALLBACK_SECRET", "")
        self.last_callback: dict[str, Any] | None = None
        self.tokens_expired = False

    def state(self) -> dict[str, Any]:
        return {
            "errands": list(self.errands.values()),
            "contact_cards": list(self.contact_cards.values()),
            "last_callback": self.last_callback,
            "callback": {"url": self.callback_url, "api_secret_set": bool(self.callback_secret)},
        }

    def expire_tokens(self) -> None:
        self.tokens_expired = True

    def _next(self, kind: str) -> int:
        value = self.next_ids[kind]
        self.next_ids[kind] += 1
        return value

    # -- routes --------------------------------------------------------------------
    def add_routes(self, routes: Routes) -> None:
        get = [
            ("c3_libraries", self._libraries, "library"),
            ("c3_libraries/{id}", self._library, "library"),
            ("c3_libraries/{id}/questions", self._library_questions, "library"),
            ("c3_external_libraries", self._external_libraries, "library"),
            ("c3_external_libraries/{id}", self._external_library, "library"),
            ("c3_library_categories", self._categories, "library"),
            ("c3_library_categories/{id}", self._category, "library"),
            ("c3_library_questions", self._questions, "library"),
            ("c3_library_questions/{id}", self._question, "library"),
            ("c3_library_questions/{id}/attachments", self._question_attachments, "library"),
            ("c3_library_attachments/{id}", self._library_attachment, "library"),
            ("c3_response_attachments/{id}", self._response_attachment, "attachment"),
            ("c3_area_archives/{id}", self._archive, "attachment"),
        ]
        for path, handler, claim in get:
            routes.add_get(f"{API}/{path}", self._api(handler, claim))
        routes.add_post(f"{API}/c3_new_errands", self._api(self._new_errand, "errand"))
        routes.add_post(f"{API}/c3_end_errands", self._api(self._end_errand, "errand"))
        routes.add_get(f"{API}/c3_errand_reports/{{id}}",
                       self._api(self._errand_report, "errand_data"))
        routes.add_get(f"{API}/c3_dirty_errand_list",
                       self._api(self._dirty_list, "errand_data"))
        routes.add_post(f"{API}/c3_dirty_errand_list",
                        self._api(self._mark_dirty, "errand_data"))
        routes.add_post(f"{API}/c3_contact_cards",
                        self._api(self._contact_card, "contacts"))
        routes.add_post("/_sandbox/callback", self._set_callback)
        routes.add_post("/_sandbox/answer", self._answer)
        routes.add_post("/_sandbox/open", self._open)
        routes.add_post("/_sandbox/search-mode", self._set_search_mode)

    async def fault_reply(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        headers = dict(fault.headers)
        if fault.status == 429:
            headers.setdefault("Retry-After", "0")
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status or 500, headers=headers,
                                     content_type=JSONAPI)
        return _error(fault.status or 500, "Injected fault", headers=headers)

    def _api(self, handler: Any, claim: str) -> Any:
        """Wrap a vendor route with content negotiation and the claim check."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            # `is None`, not `or`: aiohttp before 3.10 makes an empty response falsy.
            problem = _negotiate(request)
            if problem is None:
                problem = self._authorise(request, claim)
            if problem is not None:
                return problem
            if request.match_info.get("workspace") != "demo":
                return _error(404, "Not Found", "unknown workspace")
            return await handler(request)

        return wrapped

    def _authorise(self, request: web.Request, claim: str) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        claims = DEMO_TOKENS.get(token.strip()) if scheme.lower() == "bearer" else None
        if claims is None or self.tokens_expired:
            return _error(401, "Unauthorized", "missing, unknown or expired token")
        if claim not in claims:
            return _error(403, "Forbidden", f"token lacks the {claim} claim")
        return None

    # -- library -------------------------------------------------------------------
    def _base(self, request: web.Request) -> str:
        prefix = request.path.split("/s/", 1)[0]
        return f"{request.scheme}://{request.host}{prefix}/s/{request.match_info['workspace']}"

    def _question_resource(self, request: web.Request, question: Question) -> dict[str, Any]:
        base = f"{self._base(request)}/capi/json"
        resource: dict[str, Any] = {
            "type": "c3_library_questions",
            "id": str(question.id),
            "attributes": {"answer": question.answer, "c3_id": question.id,
                           "question": question.question, "subject": question.subject},
            "links": {"self": {"href": f"{base}/c3_library_questions/{question.id}"}},
        }
        if question.attachments:
            resource["relationships"] = {"attachments": {
                "data": [{"type": "c3_library_attachments", "id": str(a)}
                         for a in question.attachments],
                "links": {
                    "related": {"href": f"{base}/c3_library_questions/{question.id}/attachments"},
                    "self": {"href": f"{base}/c3_library_questions/{question.id}"
                                     "/relationships/attachments"},
                },
            }}
        return resource

    def _attachment_resource(self, request: web.Request, attachment_id: int,
                             with_content: bool) -> dict[str, Any]:
        stored = self.library_attachments[attachment_id]
        attachment: dict[str, Any] = {"c3_id": attachment_id,
                                      "content_type": stored["content_type"],
                                      "name": stored["name"]}
        if with_content:
            attachment["content"] = stored["content"]
        return {
            "type": "c3_library_attachments", "id": str(attachment_id),
            "attributes": {"attachment": attachment, "c3_id": attachment_id},
            "links": {"self": {"href": f"{self._base(request)}/capi/json/"
                                       f"c3_library_attachments/{attachment_id}"}},
        }

    def _library_resource(self, library: Library, type_: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {"c3_id": library.id, "name": library.name}
        if type_ == "c3_libraries":
            attributes["external"] = library.external
        relationships = {}
        for name, ids, related in (("categories", library.categories, "c3_library_categories"),
                                   ("libraries", library.libraries, "c3_libraries"),
                                   ("questions", library.questions, "c3_library_questions")):
            if ids:
                relationships[name] = {"data": [{"type": related, "id": str(i)} for i in ids]}
        return {"type": type_, "id": str(library.id), "attributes": attributes,
                "relationships": relationships}

    def _category_resource(self, category: Category) -> dict[str, Any]:
        relationships = {}
        if category.libraries:
            relationships["libraries"] = {"data": [{"type": "c3_libraries", "id": str(i)}
                                                   for i in category.libraries]}
        if category.questions:
            relationships["questions"] = {"data": [{"type": "c3_library_questions", "id": str(i)}
                                                   for i in category.questions]}
        return {"type": "c3_library_categories", "id": str(category.id),
                "attributes": {"c3_id": category.id, "name": category.name},
                "relationships": relationships}

    def _included(self, request: web.Request, libraries: list[Library],
                  categories: list[Category]) -> list[dict[str, Any]]:
        """What a library document carries along: questions, categories and their libraries."""
        included: dict[tuple[str, int], dict[str, Any]] = {}
        question_ids: list[int] = []
        for category in categories:
            question_ids.extend(category.questions)
        for library in libraries:
            question_ids.extend(library.questions)
            for category_id in library.categories:
                category = self.categories[category_id]
                included[("c", category.id)] = self._category_resource(category)
                for lib_id in category.libraries:
                    sub = self.libraries[lib_id]
                    included[("l", sub.id)] = self._library_resource(sub, "c3_libraries")
                    question_ids.extend(sub.questions)
            for lib_id in library.libraries:
                sub = self.libraries[lib_id]
                included[("l", sub.id)] = self._library_resource(sub, "c3_libraries")
        for question_id in question_ids:
            question = self.questions[question_id]
            included[("q", question.id)] = self._question_resource(request, question)
            for attachment_id in question.attachments:
                included[("a", attachment_id)] = self._attachment_resource(
                    request, attachment_id, with_content=False)
        return list(included.values())

    def _find(self, table: dict[int, Any], request: web.Request) -> Any:
        try:
            return table[int(request.match_info["id"])]
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text=json.dumps(_error_body(404, "Not Found")),
                                   content_type=JSONAPI) from None

    async def _libraries(self, request: web.Request) -> web.Response:
        libraries = list(self.libraries.values())
        return _document(
            [self._library_resource(lib, "c3_libraries") for lib in libraries],
            self._included(request, libraries, []))

    async def _library(self, request: web.Request) -> web.Response:
        library = self._find(self.libraries, request)
        return _document(self._library_resource(library, "c3_libraries"),
                         self._included(request, [library], []))

    async def _library_questions(self, request: web.Request) -> web.Response:
        library = self._find(self.libraries, request)
        return _document([self._question_resource(request, self.questions[q])
                          for q in library.questions])

    async def _external_libraries(self, request: web.Request) -> web.Response:
        libraries = [lib for lib in self.libraries.values() if lib.external]
        return _document(
            [self._library_resource(lib, "c3_external_libraries") for lib in libraries],
            self._included(request, libraries, []))

    async def _external_library(self, request: web.Request) -> web.Response:
        library = self._find(self.libraries, request)
        if not library.external:
            return _error(404, "Not Found")
        return _document(self._library_resource(library, "c3_external_libraries"),
                         self._included(request, [library], []))

    async def _categories(self, request: web.Request) -> web.Response:
        categories = list(self.categories.values())
        return _document([self._category_resource(c) for c in categories],
                         self._included(request, [], categories))

    async def _category(self, request: web.Request) -> web.Response:
        category = self._find(self.categories, request)
        return _document(self._category_resource(category),
                         self._included(request, [], [category]))

    async def _questions(self, request: web.Request) -> web.Response:
        query = request.query
        option = query.get("q_filter[option]", "all")
        if option not in ("all", "question", "answer"):
            return _error(400, "Bad Request", "q_filter[option] must be all, question or answer")
        phrase_words = _WORDS.findall(query.get("q_filter[phrase]", "").casefold())
        words = [w for w in phrase_words if len(w) >= 3 and w not in _STOPWORDS]
        toplist = query.get("filter[toplist]", "").lower() in ("true", "1")
        found = []
        for question in sorted(self.questions.values(), key=lambda q: q.id):
            if toplist and not question.toplist:
                continue
            if "q_filter[phrase]" in query:
                fields = {"all": (question.subject, question.question, question.answer),
                          "question": (question.subject, question.question),
                          "answer": (question.answer,)}[option]
                text = _plain(" ".join(fields))
                if not self._matches(text, words, phrase_words):
                    continue
            found.append(self._question_resource(request, question))
        return _document(found)

    def _matches(self, text: str, words: list[str], phrase_words: list[str]) -> bool:
        if self.search_mode == "all":
            present = set(_WORDS.findall(text.casefold()))
            return bool(phrase_words) and all(w in present for w in phrase_words)
        if self.search_mode == "phrase":
            return bool(phrase_words) and " ".join(phrase_words) in " ".join(
                _WORDS.findall(text.casefold()))
        return any(w in text for w in words)

    async def _set_search_mode(self, request: web.Request) -> web.Response:
        mode = (await request.json()).get("mode")
        if mode not in SEARCH_MODES:
            return web.json_response({"error": f"mode must be one of {SEARCH_MODES}"},
                                     status=400)
        self.search_mode = mode
        return web.json_response({"mode": mode})

    async def _question(self, request: web.Request) -> web.Response:
        question = self._find(self.questions, request)
        included = [self._attachment_resource(request, a, with_content=False)
                    for a in question.attachments]
        return _document(self._question_resource(request, question), included)

    async def _question_attachments(self, request: web.Request) -> web.Response:
        question = self._find(self.questions, request)
        return _document([self._attachment_resource(request, a, with_content=True)
                          for a in question.attachments])

    async def _library_attachment(self, request: web.Request) -> web.Response:
        attachment_id = self._find(
            {k: k for k in self.library_attachments}, request)
        with_content = request.query.get("without_content", "").lower() not in ("true", "1")
        resource = self._attachment_resource(request, attachment_id, with_content)
        links = resource.pop("links")
        return _document(resource, links=links)

    async def _response_attachment(self, request: web.Request) -> web.Response:
        return self._stored_file(request, self.response_attachments, "c3_response_attachments")

    async def _archive(self, request: web.Request) -> web.Response:
        return self._stored_file(request, self.archives, "c3_area_archives")

    def _stored_file(self, request: web.Request, table: dict[int, dict[str, str]],
                     type_: str) -> web.Response:
        stored = self._find(table, request)
        file_id = int(request.match_info["id"])
        return _document({"id": str(file_id), "type": type_,
                          "attributes": {"attachment": {"c3_id": file_id, **stored}}})

    # -- errands -------------------------------------------------------------------
    async def _new_errand(self, request: web.Request) -> web.Response:
        data = await _data(request, "c3_new_errands")
        if isinstance(data, web.Response):
            return data
        attributes = data.get("attributes")
        msg = attributes.get("msg") if isinstance(attributes, dict) else None
        if not isinstance(attributes, dict) or not isinstance(msg, dict):
            return _error(400, "Bad Request", "missing data.attributes.msg")
        for name in ("message_id", "name", "from", "subject", "body"):
            if not isinstance(msg.get(name, ""), str):
                return _error(400, "Bad Request", f"msg.{name} must be a string")
        if not msg.get("from") or not msg.get("message_id"):
            return _error(400, "Bad Request", "msg.from and msg.message_id are required")
        if not isinstance(attributes.get("cuid", ""), str):
            return _error(400, "Bad Request", "cuid must be a string")
        answer = attributes.get("answer")
        problem = _answer_problem(answer) if answer is not None else None
        if problem:
            return _error(400, "Bad Request", problem)
        existing = self.errand_by_message.get(msg["message_id"])
        if existing is not None:
            return _created(existing)
        errand_id = str(self.next_errand)
        self.next_errand += 1
        self.errand_by_message[msg["message_id"]] = errand_id
        self.errands[errand_id] = {
            "id": errand_id, "workspace": request.match_info["workspace"],
            "message_id": msg["message_id"], "attributes": attributes,
            "extradata": attributes.get("extradata"), "cuid": attributes.get("cuid"),
            "created_at": time.time(), "acquired": False, "agent": "", "agent_id": 0,
            "answered": False, "closed": False, "closing_answer": None, "actions": [],
            "dirty": True,
        }
        if isinstance(answer, dict):
            self._close(self.errands[errand_id], answer)
        return _created(errand_id)

    def _act(self, errand: dict[str, Any], what: str, origin: str) -> None:
        """Record an action on the errand, worded like the documented sample."""
        now = time.time()
        moment = datetime.fromtimestamp(now, tz=timezone.utc)
        stamp = f"{moment:%Y-%m-%d %H:%M:%S} +0000 UTC"
        errand["actions"].append({
            "id": self.next_action, "origin": origin, "time": stamp, "timeStamp": int(now),
            "note": f"Errand {errand['id']} was {what} {origin} at {stamp}."})
        self.next_action += 1
        errand["dirty"] = True

    def _close(self, errand: dict[str, Any], answer: dict[str, Any]) -> None:
        user = USERS.get(str(answer.get("user_id")), f"user {answer.get('user_id')}")
        answered = bool(answer.get("body") or answer.get("html_body"))
        errand.update(closed=True, answered=answered, closing_answer=answer)
        self._act(errand, "answered and closed by" if answered else "closed by", user)

    def _errand(self, errand_id: Any) -> dict[str, Any] | None:
        return self.errands.get(str(errand_id)) if str(errand_id).isdigit() else None

    async def _end_errand(self, request: web.Request) -> web.Response:
        data = await _data(request, "c3_end_errands")
        if isinstance(data, web.Response):
            return data
        attributes = data.get("attributes")
        if not isinstance(attributes, dict):
            return _error(400, "Bad Request", "missing data.attributes")
        errand_id = attributes.get("errand_id")
        if isinstance(errand_id, bool) or not isinstance(errand_id, (int, str)) or not str(
                errand_id).isdigit():
            return _error(400, "Bad Request", "errand_id must be the errand's number")
        answer = attributes.get("answer")
        problem = _answer_problem(answer)
        if problem:
            return _error(400, "Bad Request", problem)
        errand = self._errand(errand_id)
        if errand is None:
            return _error(404, "Not Found", "no such errand")
        if errand["closed"]:
            return _error(409, "Conflict", "errand is already closed")
        assert isinstance(answer, dict)
        self._close(errand, answer)
        return web.json_response({"data": {"type": "c3_end_errands", "id": errand["id"]}},
                                 content_type=JSONAPI)

    async def _errand_report(self, request: web.Request) -> web.Response:
        errand = self._errand(request.match_info["id"])
        if errand is None:
            return _error(404, "Not Found", "no such errand")
        changed = errand["dirty"]
        errand["dirty"] = False
        attributes = self._report_attributes(errand, changed)
        wanted = request.query.get("fields[c3_errand_reports]")
        if wanted is not None:
            names = {name.strip() for name in wanted.split(",")}
            attributes = {k: v for k, v in attributes.items() if k in names}
        return _document({"type": "c3_errand_reports", "id": errand["id"],
                          "attributes": attributes})

    def _report_attributes(self, errand: dict[str, Any], changed: bool) -> dict[str, Any]:
        """The documented sample's shape, filled from the errand."""
        msg = errand["attributes"]["msg"]
        number = int(errand["id"])
        created = datetime.fromtimestamp(errand["created_at"], tz=timezone.utc)
        answered_at = next((a for a in reversed(errand["actions"])
                            if "answered" in a["note"]), None)
        icon = ("ACTION_ANSWER", "Errand has been answered") if errand["answered"] else (
            ("ACTION_CLOSE", "Errand has been closed") if errand["closed"] else
            ("ACTION_OPEN", "Errand is open"))
        answer = errand["closing_answer"] or {}
        return {
            "actions": list(errand["actions"]),
            "basic": {
                "acquired": errand["acquired"],
                "data": {
                    "id": number, "displayId": errand["id"],
                    "status": f'<img src="/ng/img/icons/{icon[0]}.png" '
                              f'style="vertical-align:middle;" title="{icon[1]}" border="0"/> ',
                    "service": 19, "serviceName": "Form", "organisationId": 3,
                    "organisationName": "cention-org", "area": 1,
                    "areaName": "test-services-area", "priority": "",
                    "agentId": errand["agent_id"], "agent": errand["agent"],
                    "from": f"{msg.get('name', '')} ({msg.get('from', '')})",
                    "fromAddress": msg.get("from", ""), "fromName": msg.get("name", ""),
                    "to": "test-services-area", "toAddresses": ["test-services-area"],
                    "copy": "", "copyAddresses": None, "subject": msg.get("subject", ""),
                    "iconicSubject": '<img src="/Cention.app/Resources/Images/'
                                     'unassuming-icon.gif" title="From API" border="0"/> '
                                     + html.escape(str(msg.get("subject", ""))),
                    "body": f"<div>{html.escape(str(msg.get('body', '')))}</div>",
                    "date": f"{created:%Y/%m/%d %H:%M}",
                    "answeredDate": answered_at["time"][:16].replace("-", "/")
                    if answered_at else "No Date",
                    "donedate": "No Date", "attachments": "0",
                    "closed": errand["closed"], "deleted": False,
                    "answered": errand["answered"],
                },
                "groupWith": 0, "hasChild": False, "id": number, "style": {},
                "threadId": number,
            },
            "c3_id": number,
            "changed": changed,
            "extended": {"answer_body": answer.get("body", ""),
                         "answer_subject": answer.get("subject", ""), "errand_tags": [],
                         "feedback": {"Answer": "", "QuestionHTML": "", "QuestionText": "",
                                      "value": 0}},
            "sla": {"done_due": False, "expiry": 0, "handling_time": 0, "response_time": 0,
                    "within_sla": False},
        }

    async def _dirty_list(self, request: web.Request) -> web.Response:
        dirty = [int(e["id"]) for e in self.errands.values() if e["dirty"]]
        return _document({"type": "c3_dirty_errand_list", "id": "0",
                          "attributes": {"errands": dirty}})

    async def _mark_dirty(self, request: web.Request) -> web.Response:
        data = await _data(request, "c3_dirty_errand_list")
        if isinstance(data, web.Response):
            return data
        errands = (data.get("attributes") or {}).get("errands")
        if not isinstance(errands, list) or not all(
                isinstance(e, int) and not isinstance(e, bool) for e in errands):
            return _error(400, "Bad Request", "attributes.errands must be a list of ids")
        for errand_id in errands:
            errand = self._errand(errand_id)
            if errand is not None:
                errand["dirty"] = True
        return _document({"type": "c3_dirty_errand_list", "id": "0"})

    # -- contact cards ---------------------------------------------------------------
    async def _contact_card(self, request: web.Request) -> web.Response:
        data = await _data(request, "c3_contact_cards")
        if isinstance(data, web.Response):
            return data
        attributes = data.get("attributes")
        contacts = attributes.get("contacts") if isinstance(attributes, dict) else None
        if not isinstance(attributes, dict) or not isinstance(contacts, dict):
            return _error(400, "Bad Request", "missing data.attributes.contacts")
        name = contacts.get("name", attributes.get("name", ""))
        if not isinstance(name, str):
            return _error(400, "Bad Request", "name must be a string")
        given: dict[str, list[str]] = {}
        for key, values in contacts.items():
            if key == "name":
                continue
            if key not in CONTACT_FIELDS:
                return _error(400, "Bad Request", f"unsupported contact field {key}")
            if not isinstance(values, list) or not all(
                    isinstance(v, str) and v for v in values):
                return _error(400, "Bad Request", f"contacts.{key} must be a list of strings")
            if key == "voice" and not all(v.startswith("+") for v in values):
                return _error(400, "Bad Request", "voice numbers need their plus sign")
            given[key] = values
        if not any(given.values()):
            return _error(400, "Bad Request", "no contacts given")
        for card_id in sorted(self.contact_cards):
            card = self.contact_cards[card_id]
            if any(v in card["contacts"].get(k, []) for k, vs in given.items() for v in vs):
                for key, values in given.items():
                    known = card["contacts"].setdefault(key, [])
                    known.extend(v for v in values if v not in known)
                if name and not card["contacts"].get("name"):
                    card["contacts"]["name"] = name
                return self._card_reply(card, 200)
        card = {"id": self.next_card, "contacts": {"name": name, **given}}
        self.contact_cards[self.next_card] = card
        self.next_card += 1
        return self._card_reply(card, 201)

    @staticmethod
    def _card_reply(card: dict[str, Any], status: int) -> web.Response:
        return web.json_response({"data": {
            "type": "c3_contact_cards", "id": str(card["id"]),
            "attributes": {"c3_id": card["id"], "contacts": card["contacts"]}}},
            status=status, content_type=JSONAPI)

    # -- agents ----------------------------------------------------------------------
    async def _open(self, request: web.Request) -> web.Response:
        data = await request.json()
        errand = self._errand(data.get("errand_id"))
        if errand is None:
            return web.json_response({"error": "no such errand"}, status=404)
        agent = str(data.get("agent") or USERS["2"])
        errand.update(acquired=True, agent=agent, agent_id=2)
        self._act(errand, "opened by agent", agent)
        return web.json_response({"errand_id": errand["id"], "agent": agent})

    # -- callback --------------------------------------------------------------------
    async def _set_callback(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.callback_url = str(data.get("url") or "")
        self.callback_secret = str(data.get("api_secret") or "")
        return web.json_response({"url": self.callback_url})

    async def _answer(self, request: web.Request) -> web.Response:
        data = await request.json()
        url = data.get("callback_url") or self.callback_url
        if not url or not data.get("errand_id"):
            return web.json_response({"error": "errand_id and a callback URL are needed"},
                                     status=400)
        base = request.path[: -len("/_sandbox/answer")]
        api = f"{request.scheme}://{request.host}{base}/s/demo/capi/json"
        payload = self.answer_payload(data, api, data.get("api_secret", self.callback_secret))
        errand = self._errand(data["errand_id"])
        if errand is not None and not errand["closed"]:
            agent = errand["agent"] or USERS["2"]
            errand.update(acquired=True, agent=agent, agent_id=errand["agent_id"] or 2,
                          answered=True, closed=True,
                          closing_answer={"subject": payload_subject(payload),
                                          "body": str(data.get("body") or "")})
            self._act(errand, "answered and closed by agent", agent)
        try:
            async with aiohttp.ClientSession() as session, session.post(
                url, data=json.dumps(payload), headers={"Content-Type": JSONAPI},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                result = {"status": resp.status, "body": (await resp.text())[:2000]}
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # 3.10: not TimeoutError
            result = {"status": None, "error": type(exc).__name__}
        self.last_callback = {**result, "errand_id": str(data["errand_id"]), "payload": payload}
        return web.json_response({**result, "payload": payload})

    def answer_payload(self, data: dict[str, Any], api: str, secret: str) -> dict[str, Any]:
        """A `c3_callback_answer_errands` document shaped like the documented sample."""
        errand_id = str(data["errand_id"])
        errand = self.errands.get(errand_id, {})
        msg = (errand.get("attributes") or {}).get("msg") or {}
        subject = data.get("subject") or msg.get("subject") or "Your question"
        body = str(data.get("body") or "")
        archive_id = self._next("archive")
        self.archives[archive_id] = {"content_type": "image/png", "name": "logo.png",
                                     "content": _PIXEL}
        attachments = []
        for index, item in enumerate(data.get("attachments") or []):
            attachment_id = self._next("attachment")
            self.response_attachments[attachment_id] = {
                "content_type": str(item.get("content_type") or "application/octet-stream"),
                "name": str(item.get("name") or f"attachment-{attachment_id}"),
                "content": str(item.get("content") or ""),
            }
            href = f"{api}/c3_response_attachments/{attachment_id}"
            # The doc allows both forms of `links.self`; alternate them.
            link: Any = {"href": href} if index % 2 == 0 else href
            attachments.append({"type": "c3_response_attachments", "id": str(attachment_id),
                                "attributes": {"c3_id": attachment_id}, "links": {"self": link}})
        html_body = data.get("html_body") or (
            f"<div>{html.escape(body)}</div>\n<div><br />\n"
            "--------- Cention Contact Center - Original message ---------<br />\n"
            f"Errand: #{errand_id}-1<br />\nSubject: {html.escape(subject)}<br />\n"
            "--------- Cention Contact Center - Original message - End ---------</div>")
        errand_node = {
            "type": "c3_answer_errands",
            "id": errand_id,
            "attributes": {
                "answer": {
                    "c3_id": self._next("answer"),
                    "response": {
                        "body": body,
                        "c3_id": self._next("response"),
                        "html_body": html_body,
                        "subject": subject,
                        "to": [{"c3_id": 279, "email_address": msg.get("from", ""),
                                "name": msg.get("name", "")}],
                    },
                },
                "c3_id": int(errand_id) if errand_id.isdigit() else 0,
                "service": {"c3_id": 16, "name": "Form", "type": 19},
            },
            "relationships": {
                "attachments": {"data": [{"type": a["type"], "id": a["id"]}
                                         for a in attachments]},
                "embedded_archives": {"data": [{"type": "c3_area_archives",
                                                "id": str(archive_id)}]},
            },
        }
        archive_node = {"type": "c3_area_archives", "id": str(archive_id),
                        "attributes": {"c3_id": archive_id},
                        "links": {"self": {"href": f"{api}/c3_area_archives/{archive_id}"}}}
        # Same order as the sample: later attachments, archive, errand, first attachment.
        included = [*attachments[1:], archive_node, errand_node, *attachments[:1]]
        return {
            "data": {
                "type": "c3_callback_answer_errands",
                "id": str(self._next("callback")),
                "attributes": {"event": 1},
                "relationships": {"errand": {"data": {"type": "c3_answer_errands",
                                                      "id": errand_id}}},
            },
            "included": included,
            "meta": {"api_secret": secret},
        }


def payload_subject(payload: dict[str, Any]) -> str:
    """The answer's subject in a callback document."""
    for node in payload.get("included", []):
        if node.get("type") == "c3_answer_errands":
            return str(node["attributes"]["answer"]["response"]["subject"])
    return ""


async def _data(request: web.Request, type_: str) -> dict[str, Any] | web.Response:
    """The request's `data` object of type `type_`, or the error reply."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "Bad Request", "body is not JSON")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return _error(400, "Bad Request", "missing data")
    if data.get("type") != type_:
        return _error(409, "Conflict", f"data.type must be {type_}")
    return data


def _answer_problem(answer: Any) -> str | None:
    """What is wrong with an `answer` object, or None."""
    if not isinstance(answer, dict):
        return "answer must be an object"
    if answer.get("user_type") not in USER_TYPES:
        return f"answer.user_type must be one of {', '.join(USER_TYPES)}"
    if not isinstance(answer.get("user_id"), str) or not answer["user_id"].strip():
        return "answer.user_id must identify the closing user"
    for name in ("subject", "body", "html_body"):
        if not isinstance(answer.get(name, ""), str):
            return f"answer.{name} must be a string"
    return None


def _negotiate(request: web.Request) -> web.Response | None:
    """JSON:API server rules for `Content-Type` and `Accept`."""
    if request.can_read_body or request.method == "POST":
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != JSONAPI or ";" in content_type:
            return _error(415, "Unsupported Media Type",
                          f"Content-Type must be exactly {JSONAPI}")
    accept = [part.strip() for part in request.headers.get("Accept", "").split(",")]
    ours = [part for part in accept if part.split(";")[0].strip().lower() == JSONAPI]
    if ours and all(";" in part for part in ours):
        return _error(406, "Not Acceptable", f"Accept {JSONAPI} without media type parameters")
    return None


def _error_body(status: int, title: str, detail: str = "") -> dict[str, Any]:
    error = {"status": str(status), "title": title}
    if detail:
        error["detail"] = detail
    return {"errors": [error]}


def _error(status: int, title: str, detail: str = "",
           headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_error_body(status, title, detail), status=status,
                             content_type=JSONAPI, headers=headers)


def _document(data: Any, included: list[dict[str, Any]] | None = None,
              links: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"data": data}
    if included:
        body["included"] = included
    if links:
        body["links"] = links
    return web.json_response(body, content_type=JSONAPI)


def _created(errand_id: str) -> web.Response:
    return web.json_response({"data": {"type": "c3_new_errands", "id": errand_id}},
                             status=201, content_type=JSONAPI)

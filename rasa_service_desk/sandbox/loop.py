"""Simulator of Loop's (Benbria) V1 REST API, seeded with the documentation's sample data.

Routes live under `/api/v1` (so `/loop/api/v1/...` when all simulators are mounted): locations
(list and by shortcode), loop types, custom fields (list and by shortcode), surveys (list, by
shortcode, `?location=` by id or shortcode), responses, loops (create, `?customer=` lookup),
user lookup (`/users/?email=|sms=|username=`, the documented trailing slash; also without it)
and invite URLs (`POST /invite/url`). Every request needs the `authToken` query parameter
(401 otherwise).

Seed: the documented locations 1300 and 1200, the "restaurant" survey with its four questions
and `questionOrderRandomization: true` (the survey of location 1300) and the "room" custom
field. Not in the documentation and added so every feature can be exercised: two loop types,
a "booking" custom field, and a "lobby" survey for location 1200 with fixed question order,
texts in English and French, a question in French only and a required free-text question.

Where the documentation is silent the simulator is strict and says so in its answers:
errors are `{"error": "<message>"}` with 400 (invalid body), 401 (token) or 404 (unknown
object; for `GET /surveys?location=` also a location without a survey: the documentation
says the call retrieves "the specific survey for a location", so none is not an empty list).
A response's category ids must all belong to one survey, with `bool` values for
yes/no questions and strings for text questions. A response with a "no" to any yes/no
question opens a loop and returns `loopId`/`loopUrl` (as an account set up to follow up on
negative feedback would); `POST /_sandbox/settings {"open_loop_on_negative": false}` turns
that off, and `{"location_surveys": {"1200": null}}` takes a location's survey away (or
assigns another by its shortcode). A loop's `user` creates a guest user, or reuses one with
the same email or sms; so does an invite URL request with a name, email or sms (custom
field values given then overwrite the guest's), which answers `{"guestId", "url"}`; without
any of the three it creates no guest and answers a generic `{"url"}`. The user lookup finds
these guests and the documentation's two employee accounts ("benria", "benria2"), and answers
400 without one of its parameters. `GET /loops?customer=` lists loops oldest first (the
documentation gives no order). Control: `{"loop_states": {"<loop id>": "closed"}}` changes a
loop's state (the documentation only shows `open`), `{"locations": ["1300"]}` keeps only those
locations (a single-location account).
"""

from __future__ import annotations

import copy
import secrets
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from aiohttp import web

from rasa_service_desk.clients.loop.settings import SANDBOX_AUTH_TOKEN, SANDBOX_LOOP_TYPE
from rasa_service_desk.sandbox.core import CONTROL_PREFIX, Fault, Routes, Simulator, origin

API = "/api/v1"

LOCATIONS: list[dict[str, Any]] = [
    {"id": "529652b0121d5fa206011a97", "shortcode": "1300",
     "title": {"en": "Andros Island Bahamas"},
     "coords": {"latitude": 45.349429, "longitude": -75.9248028}},
    {"id": "529652b0121d5fa206011a98", "shortcode": "1200",
     "title": {"en": "Costa Rica Salinas Bay"}},
]
LOOP_TYPES: list[dict[str, Any]] = [
    {"id": SANDBOX_LOOP_TYPE, "title": {"en": "Guest request"}},
    {"id": "5296530b121d5fa206011b02", "title": {"en": "Complaint"}},
]
CUSTOM_FIELDS: list[dict[str, Any]] = [
    {"id": "529652b0121d5fa206011a97", "shortcode": "room",
     "title": {"en": "Room Number"}, "required": True},
    {"id": "529652b0121d5fa206011c02", "shortcode": "booking",
     "title": {"en": "Booking reference"}, "required": False},
]
RESTAURANT: dict[str, Any] = {
    "id": "529652b0131d5fa206011a98",
    "shortCode": "restaurant",
    "description": "Survey for sit-down restaurant locations",
    "questions": [
        {"categoryId": "529652b0131d5fa206011a99", "type": "bool",
         "text": {"en": "Was the service swift?"}},
        {"categoryId": "529652b0131d5fa206011a9a", "type": "bool",
         "text": {"en": "Was the food fantastic?"}},
        {"categoryId": "529652b0131d5fa206011a9b", "type": "bool",
         "text": {"en": "Was the counter clean?"}},
        {"categoryId": "529652b0131d5fa206011a9c", "type": "text",
         "text": {"en": "What else should we know?"}, "placeholder": {"en": "Type here!"}},
    ],
    "questionOrderRandomization": True,
}
LOBBY: dict[str, Any] = {
    "id": "529652b0131d5fa206011b98",
    "shortCode": "lobby",
    "description": "Check-in experience",
    "questions": [
        {"categoryId": "529652b0131d5fa206011b99", "type": "bool",
         "text": {"en": "Was your room ready on time?",
                  "fr": "Votre chambre était-elle prête à temps ?"}},
        {"categoryId": "529652b0131d5fa206011b9a", "type": "bool",
         "text": {"fr": "Reviendriez-vous chez nous ?"}},
        {"categoryId": "529652b0131d5fa206011b9b", "type": "text", "required": True,
         "text": {"en": "What should we improve first?",
                  "fr": "Que devrions-nous améliorer en premier ?"}},
    ],
    "questionOrderRandomization": False,
}
#: The documentation's sample accounts of the user lookup (employees: they create no loops).
EMPLOYEES: list[dict[str, Any]] = [
    {"username": "benria", "name": "Benbria Admin", "id": "4fc7769576ca50ce2c000012",
     "permissions": ["create", "comment", "close"], "locations": [], "sms": "5556135555",
     "email": "admin@benbria.com"},
    {"username": "benria2", "name": "Benbria Admin", "id": "5c87769576ca50ce2c987659",
     "permissions": [], "locations": [], "sms": "5556135555", "email": ""},
]
#: Which survey each seeded location runs (by location id).
LOCATION_SURVEYS: dict[str, str | None] = {
    LOCATIONS[0]["id"]: RESTAURANT["id"], LOCATIONS[1]["id"]: LOBBY["id"]}


class Invalid(Exception):
    """A request Loop refuses: answered `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def new_id() -> str:
    return secrets.token_hex(12)


def _valid_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        pass
    try:
        parsedate_to_datetime(value)
        return True
    except (TypeError, ValueError):
        return False


class LoopSimulator(Simulator):
    name = "loop"

    def __init__(self, latency: float = 0.0) -> None:
        self.locations: list[dict[str, Any]] = []
        self.loop_types: list[dict[str, Any]] = []
        self.custom_fields: list[dict[str, Any]] = []
        self.surveys: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.loops: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.invites: list[dict[str, Any]] = []
        #: Which survey each location runs (location id -> survey id, None for none).
        self.location_surveys: dict[str, str | None] = {}
        self.open_loop_on_negative = True
        super().__init__(latency)

    def reset_state(self) -> None:
        self.locations = copy.deepcopy(LOCATIONS)
        self.loop_types = copy.deepcopy(LOOP_TYPES)
        self.custom_fields = copy.deepcopy(CUSTOM_FIELDS)
        self.surveys = [copy.deepcopy(RESTAURANT), copy.deepcopy(LOBBY)]
        self.responses = []
        self.loops = []
        self.users = []
        self.invites = []
        self.location_surveys = dict(LOCATION_SURVEYS)
        self.open_loop_on_negative = True

    def state(self) -> dict[str, Any]:
        return {"responses": self.responses, "loops": self.loops, "users": self.users,
                "invites": self.invites, "open_loop_on_negative": self.open_loop_on_negative}

    async def fault_reply(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        headers = dict(fault.headers)
        if fault.status == 429:
            headers.setdefault("Retry-After", "0")
        body = fault.body if fault.body is not None else {"error": f"injected {fault.status}"}
        return web.json_response(body, status=fault.status or 500, headers=headers)

    def add_routes(self, routes: Routes) -> None:
        endpoints = [
            ("GET", "/locations", self._locations),
            ("GET", "/locations/{shortcode}", self._location),
            ("GET", "/looptypes", self._loop_types),
            ("GET", "/customfields", self._custom_fields),
            ("GET", "/customfields/{shortcode}", self._custom_field),
            ("GET", "/surveys", self._surveys),
            ("GET", "/surveys/{shortcode}", self._survey),
            ("POST", "/responses", self._create_response),
            ("POST", "/loops", self._create_loop),
            ("GET", "/loops", self._find_loops),
            ("GET", "/users/", self._find_users),
            ("GET", "/users", self._find_users),
            ("POST", "/invite/url", self._invite_url),
        ]
        for method, path, handler in endpoints:
            add = routes.add_get if method == "GET" else routes.add_post
            add(API + path, self._guarded(handler))
        routes.add_post(CONTROL_PREFIX + "settings", self._post_settings)

    # -- plumbing ------------------------------------------------------------------
    def _guarded(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if request.query.get("authToken") != SANDBOX_AUTH_TOKEN:
                return web.json_response({"error": "Invalid authToken"}, status=401)
            try:
                return web.json_response(await handler(request))
            except Invalid as exc:
                return web.json_response({"error": exc.message}, status=exc.status)
        return wrapped

    async def _post_settings(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "open_loop_on_negative" in data:
            self.open_loop_on_negative = bool(data["open_loop_on_negative"])
        for key, code in (data.get("location_surveys") or {}).items():
            location = next(loc for loc in self.locations if key in (loc["id"], loc["shortcode"]))
            survey = next((s["id"] for s in self.surveys if s["shortCode"] == code), None)
            self.location_surveys[location["id"]] = survey
        for loop_id, state in (data.get("loop_states") or {}).items():
            next(loop for loop in self.loops if loop["id"] == loop_id)["state"] = state
        if data.get("locations"):
            kept = set(data["locations"])
            self.locations = [loc for loc in self.locations
                              if kept & {loc["id"], loc["shortcode"]}]
        return web.json_response({"open_loop_on_negative": self.open_loop_on_negative,
                                  "location_surveys": self.location_surveys,
                                  "locations": [loc["id"] for loc in self.locations]})

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise Invalid("body must be JSON") from None
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object")
        return body

    def _find(self, items: list[dict[str, Any]], key: str, value: Any, what: str
              ) -> dict[str, Any]:
        found = next((item for item in items if item.get(key) == value), None)
        if found is None:
            raise Invalid(f"{what} not found", 404)
        return found

    def _location_by_id(self, value: Any) -> dict[str, Any]:
        found = next((loc for loc in self.locations if loc["id"] == value), None)
        if found is None:
            raise Invalid("location must be the id of a location")
        return found

    def _view_url(self, request: web.Request, loop_id: str) -> str:
        return f"{origin(request)}/loop/view/{loop_id}"

    # -- configuration -------------------------------------------------------------
    async def _locations(self, _: web.Request) -> Any:
        return {"locations": self.locations}

    async def _location(self, request: web.Request) -> Any:
        return self._find(self.locations, "shortcode", request.match_info["shortcode"],
                          "location")

    async def _loop_types(self, _: web.Request) -> Any:
        return {"loopTypes": self.loop_types}

    async def _custom_fields(self, _: web.Request) -> Any:
        return {"customfields": self.custom_fields}

    async def _custom_field(self, request: web.Request) -> Any:
        return self._find(self.custom_fields, "shortcode", request.match_info["shortcode"],
                          "custom field")

    async def _surveys(self, request: web.Request) -> Any:
        wanted = request.query.get("location")
        if wanted is None:
            return {"surveys": self.surveys}
        location = next((loc for loc in self.locations
                         if wanted in (loc["id"], loc.get("shortcode"))), None)
        if location is None:
            raise Invalid("location not found", 404)
        survey_id = self.location_surveys.get(location["id"])
        surveys = [s for s in self.surveys if s["id"] == survey_id]
        if not surveys:
            raise Invalid("survey not found", 404)
        return {"surveys": surveys}

    async def _survey(self, request: web.Request) -> Any:
        return self._find(self.surveys, "shortCode", request.match_info["shortcode"], "survey")

    # -- responses -----------------------------------------------------------------
    async def _create_response(self, request: web.Request) -> Any:
        body = await self._body(request)
        if not isinstance(body.get("source"), str) or not body["source"]:
            raise Invalid("source is required")
        location = self._location_by_id(body.get("location"))
        if "timestamp" in body and not _valid_timestamp(body["timestamp"]):
            raise Invalid("timestamp must be an ISO 8601 or RFC 2822 date")
        answers = body.get("responses")
        if not isinstance(answers, list) or not answers:
            raise Invalid("responses must be a non-empty list")
        survey = self._survey_of(answers)
        questions = {q["categoryId"]: q for q in survey["questions"]}
        seen: set[str] = set()
        for answer in answers:
            category = answer.get("categoryId") if isinstance(answer, dict) else None
            if not isinstance(category, str) or category not in questions or category in seen:
                raise Invalid("every categoryId must be a distinct question of one survey")
            seen.add(category)
            value, kind = answer.get("value"), questions[category]["type"]
            if (kind == "bool" and not isinstance(value, bool)) or (
                kind == "text" and not isinstance(value, str)
            ):
                raise Invalid(f"value of {category} must be of type {kind}")
        stored = {"id": new_id(), "survey": survey["id"], "location": location["id"],
                  "source": body["source"], "deviceId": body.get("deviceId"),
                  "responses": answers, "timestamp": body.get("timestamp")}
        reply: dict[str, Any] = {"id": stored["id"]}
        negative = any(a["value"] is False for a in answers)
        if negative and self.open_loop_on_negative:
            texts = [a["value"] for a in answers if isinstance(a["value"], str) and a["value"]]
            loop = self._store_loop(
                request, description=" / ".join(texts) or "Negative survey response",
                location=location, loop_type=self.loop_types[0]["id"], source=body["source"],
                creator=None, custom_fields=[], title=None, device_id=body.get("deviceId"),
            )
            stored["loopId"] = reply["loopId"] = loop["id"]
            reply["loopUrl"] = loop["url"]
        self.responses.append(stored)
        return reply

    def _survey_of(self, answers: list[Any]) -> dict[str, Any]:
        first = answers[0].get("categoryId") if isinstance(answers[0], dict) else None
        for survey in self.surveys:
            if any(q["categoryId"] == first for q in survey["questions"]):
                return survey
        raise Invalid("categoryId is not a question of any survey")

    # -- loops ---------------------------------------------------------------------
    async def _create_loop(self, request: web.Request) -> Any:
        body = await self._body(request)
        if not isinstance(body.get("source"), str) or not body["source"]:
            raise Invalid("source is required")
        location = self._location_by_id(body.get("location"))
        if not any(t["id"] == body.get("loopType") for t in self.loop_types):
            raise Invalid("loopType must be the id of a loop type")
        description = body.get("description")
        if not isinstance(description, str) or not description.strip():
            raise Invalid("description is required")
        if "title" in body and not isinstance(body["title"], str):
            raise Invalid("title must be a string")
        if "timestamp" in body and not _valid_timestamp(body["timestamp"]):
            raise Invalid("timestamp must be an ISO 8601 or RFC 2822 date")
        fields = self._custom_field_values(body.get("customFields", []))
        creator = self._creator(body)
        loop = self._store_loop(
            request, description=description, location=location, loop_type=body["loopType"],
            source=body["source"], creator=creator, custom_fields=fields,
            title=body.get("title"), device_id=body.get("deviceId"),
        )
        return {"id": loop["id"], "url": loop["url"]}

    def _custom_field_values(self, value: Any) -> list[dict[str, str]]:
        pairs = value if isinstance(value, list) else [value]
        known = {f["id"] for f in self.custom_fields}
        result = []
        for pair in pairs:
            if not isinstance(pair, dict):
                raise Invalid("customFields must be a list of {<field id>: <value>} objects")
            for field_id, field_value in pair.items():
                if field_id not in known:
                    raise Invalid(f"{field_id} is not a custom field")
                if not isinstance(field_value, str):
                    raise Invalid(f"value of custom field {field_id} must be a string")
                result.append({field_id: field_value})
        return result

    def _creator(self, body: dict[str, Any]) -> str | None:
        if body.get("customer") is not None:
            return str(self._find(self.users, "id", body["customer"], "customer")["id"])
        user = body.get("user")
        if user is None:
            return None
        if not isinstance(user, dict) or any(
            not isinstance(user.get(k, ""), str) for k in ("name", "email", "sms")
        ):
            raise Invalid("user must be an object of strings {name, email, sms}")
        guest = self._guest(user)
        return str(guest["id"]) if guest else None

    def _guest(self, user: dict[str, Any], custom_fields: Any = None) -> dict[str, Any] | None:
        """The guest with the user's email or sms (updated), a new one, or None when the
        user has neither name, email nor sms."""
        details = {k: user[k] for k in ("name", "email", "sms") if user.get(k)}
        for existing in self.users:
            if any(details.get(k) and existing.get(k) == details[k] for k in ("email", "sms")):
                existing.update(details)
                if custom_fields:
                    existing["customFields"] = custom_fields
                return existing
        if not details:
            return None
        created = {"id": new_id(), "type": "customer", **details}
        if custom_fields:
            created["customFields"] = custom_fields
        self.users.append(created)
        return created

    def _store_loop(self, request: web.Request, *, description: str,
                    location: dict[str, Any], loop_type: str, source: str,
                    creator: str | None, custom_fields: list[dict[str, str]],
                    title: str | None, device_id: str | None) -> dict[str, Any]:
        loop_id = new_id()
        now = int(time.time() * 1000)
        loop = {"id": loop_id, "url": self._view_url(request, loop_id),
                "description": description, "summary": title or location["title"]["en"],
                "title": title, "state": "open", "creatorId": creator,
                "loopType": loop_type, "source": source, "deviceId": device_id,
                "customFields": custom_fields, "created_on": now, "updated_on": now,
                "location": {"id": location["id"], "title": location["title"]["en"]}}
        self.loops.append(loop)
        return loop

    async def _find_loops(self, request: web.Request) -> Any:
        customer = request.query.get("customer")
        if not customer:
            raise Invalid("customer is required")
        return {"loops": [loop for loop in self.loops if loop["creatorId"] == customer]}

    # -- users and invitations ------------------------------------------------------
    @staticmethod
    def _account(user: dict[str, Any]) -> dict[str, Any]:
        """A guest in the documented shape of a user account."""
        return {"username": user.get("username", ""), "name": user.get("name", ""),
                "id": user["id"], "permissions": user.get("permissions", []),
                "locations": user.get("locations", []), "sms": user.get("sms", ""),
                "email": user.get("email", "")}

    async def _find_users(self, request: web.Request) -> Any:
        query = {k: request.query[k] for k in ("username", "email", "sms")
                 if request.query.get(k)}
        if not query:
            raise Invalid("one of username, email or sms is required")
        found = [self._account(user) for user in [*EMPLOYEES, *self.users]
                 if all(user.get(k) == v for k, v in query.items())]
        return {"users": found}

    async def _invite_url(self, request: web.Request) -> Any:
        body = await self._body(request)
        location = None
        if body.get("locationId") is not None:
            location = self._location_by_id(body["locationId"])
        if any(not isinstance(body.get(k, ""), str) for k in ("name", "email", "sms")):
            raise Invalid("name, email and sms must be strings")
        fields = body.get("customFields")
        if fields is not None:
            fields = self._custom_field_values(fields)
        guest = self._guest(body, fields)
        path = f"/loop/create/{location['shortcode']}" if location else "/loop/create"
        url = f"{origin(request)}{path}"
        reply: dict[str, Any] = {"url": f"{url}?_uid={guest['id']}" if guest else url}
        if guest:
            reply["guestId"] = guest["id"]
        self.invites.append({**reply, "locationId": body.get("locationId")})
        return reply

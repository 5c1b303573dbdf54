"""Async client of Loop's V1 REST API: locations, loop types, custom fields, surveys,
responses, loops, guest lookups and invite URLs.

Authentication: Loop takes its token as the `authToken` query parameter of every request.
It is added as a request parameter (never baked into a stored URL), registered with the log
redaction, and the HTTP layer only ever logs redacted URLs.

Caches (one client per process, shared by every conversation):
- the location, loop type and custom field ids are cached for the life of the process:
  Loop documents ids as immutable and these are account configuration;
- the account's location listing (`GET /locations`, for the customer's choice of location)
  is cached for `LOOP_LOCATIONS_CACHE_SECONDS` (an hour by default), so a new location
  shows up without a restart;
- the survey is cached for `LOOP_SURVEY_CACHE_SECONDS` (5 minutes by default), so a survey
  edited in Loop reaches the bot without a restart.

Where the documentation is silent:
- error bodies: the message is taken from `error`, `message` or `errors` if present;
- single-object lookups (`/locations/<shortcode>`, `/customfields/<shortcode>`,
  `/surveys/<shortcode>`) may answer the object itself, `{"<kind>": {...}}` or a one-item
  list under the plural key; all are accepted;
- listings are read from the plural key (`locations`, `loopTypes`/`looptypes`, ...) or a
  bare JSON list;
- a location, survey, loop type or custom field that Loop does not know (404, or absent
  from a listing) is a `ConfigurationError`: the operator must fix a setting, and the
  customer gets the "service unavailable" answer instead of a vague rejection;
- `GET /surveys?location=` is sent the location's shortcode (as in the documentation's
  example), or its id when it has no shortcode; a 404 there (Loop knows no such location,
  or no survey for it) is a `ConfigurationError` naming `LOOP_LOCATION` and `LOOP_SURVEY`,
  logged as an error;
- `POST /responses` does not name the survey (the documented example does not either):
  the category ids identify it;
- `customFields` of a new loop is sent as a list of one-entry objects `[{"<field id>": value}]`;
- `POST /responses` documents no field for a reference (no `customFields`, no note): what a
  response is about (e.g. the support answer it rates) is recorded in the free text of the
  survey's first text question, as `[<reference>]` after the customer's own words;
- `GET /users/` is sent with the documented trailing slash and one of `email`/`sms`; several
  accounts may share an address (the documentation says so), all are returned;
- `POST /invite/url` takes `locationId` and optionally `name`/`email`/`sms`; without any of
  the three Loop creates no guest and returns a generic URL (`guestId` absent).

Retries: GETs are retried by the HTTP layer; the two POSTs are not (a repeated response or
loop would be a duplicate), except when Loop demonstrably did not process them (429/503).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from rasa_service_desk.clients.compat import parse_model
from rasa_service_desk.clients.errors import ConfigurationError, MalformedReply, RejectedInput
from rasa_service_desk.clients.http import HttpClient, RetryPolicy
from rasa_service_desk.clients.loop.models import (
    BOOL,
    TEXT,
    CreatedLoop,
    CustomField,
    InviteLink,
    Location,
    LoopSummary,
    LoopType,
    ResponseReceipt,
    Survey,
    UserAccount,
)
from rasa_service_desk.clients.loop.settings import LoopSettings

logger = logging.getLogger(__name__)

VENDOR = "loop"
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")

M = TypeVar("M", bound=BaseModel)
Answer = bool | str
LocationRef = Location | str | None
#: Default of `LOOP_LOCATIONS_CACHE_SECONDS` (read with getattr until the setting exists).
DEFAULT_LOCATIONS_CACHE_SECONDS = 3600.0


def error_message(body: Any) -> str:
    """Loop's own explanation from an error body (shape undocumented, so be lenient)."""
    if isinstance(body, dict):
        for key in ("error", "message", "errors", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
            if isinstance(value, list) and value:
                return "; ".join(str(item) for item in value)
    return ""


def iso_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds, as in Loop's example: `2015-04-14T22:33:36.164Z`."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class LoopUser:
    """The customer as Loop's `user` object; every part is optional."""

    name: str | None = None
    email: str | None = None
    sms: str | None = None

    def as_json(self) -> dict[str, str]:
        return {key: value for key, value in
                (("name", self.name), ("email", self.email), ("sms", self.sms)) if value}


class LoopClient:
    """One per process (see `actions.runtime.client`); caches account configuration."""

    def __init__(
        self, settings: LoopSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not settings.base_url or not settings.auth_token.get_secret_value():
            raise ConfigurationError(VENDOR, "LOOP_BASE_URL and LOOP_AUTH_TOKEN must be set")
        self.settings = settings
        self._clock = clock
        self._http = HttpClient(
            VENDOR,
            timeout=settings.timeout_seconds,
            retry=RetryPolicy(attempts=settings.retry_attempts),
            error_message=error_message,
        )
        self._locations: dict[str, Location] = {}
        self._location_list: tuple[float, list[Location]] | None = None
        #: Its own lock: `location()` reads the listing while holding `_lock`.
        self._listing_lock = asyncio.Lock()
        self._loop_types: list[LoopType] | None = None
        self._custom_fields: dict[str, CustomField] = {}
        self._surveys: dict[str, tuple[float, Survey]] = {}
        #: Serialises cache misses, so customers arriving together cause one lookup.
        self._lock = asyncio.Lock()

    # -- transport ----------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    def _params(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**(extra or {}), "authToken": self.settings.auth_token.get_secret_value()}

    # `operation` names each call in metrics and traces (never the path: it carries ids).
    async def _get(self, operation: str, path: str,
                   params: Mapping[str, str] | None = None) -> Any:
        return await self._http.request_json("GET", self._url(path), params=self._params(params),
                                             operation=operation)

    async def _post(self, operation: str, path: str, body: dict[str, Any]) -> Any:
        return await self._http.request_json(
            "POST", self._url(path), json_body=body, params=self._params(), operation=operation
        )

    async def _lookup(self, operation: str, path: str, setting: str, what: str) -> Any:
        """GET a single configured object; a 404 means the setting names nothing."""
        try:
            return await self._get(operation, path)
        except RejectedInput as exc:
            if exc.status == 404:
                raise ConfigurationError(VENDOR, f"{setting}: Loop knows no such {what}") from None
            raise

    @staticmethod
    def _items(body: Any, *keys: str) -> list[Any]:
        if isinstance(body, list):
            return body
        if isinstance(body, dict):
            for key in keys:
                if isinstance(body.get(key), list):
                    return list(body[key])
        raise MalformedReply(VENDOR, f"expected a list under {keys[0]!r}")

    @classmethod
    def _single(cls, body: Any, singular: str, plural: str) -> Any:
        if isinstance(body, dict) and isinstance(body.get(singular), dict):
            return body[singular]
        if isinstance(body, dict) and isinstance(body.get(plural), list):
            items = body[plural]
            if not items:
                raise MalformedReply(VENDOR, f"empty {plural!r} list")
            return items[0]
        return body

    @staticmethod
    def _parse_all(model: type[M], items: list[Any]) -> list[M]:
        return [parse_model(model, item, VENDOR) for item in items]

    # -- account configuration (cached) --------------------------------------------
    async def locations(self) -> list[Location]:
        """Every location of the account, reused for `LOOP_LOCATIONS_CACHE_SECONDS`."""
        ttl = float(getattr(self.settings, "locations_cache_seconds",
                            DEFAULT_LOCATIONS_CACHE_SECONDS))
        async with self._listing_lock:
            now = self._clock()
            if self._location_list is not None and now - self._location_list[0] < ttl:
                return list(self._location_list[1])
            body = await self._get("list_locations", "/locations")
            listing = self._parse_all(Location, self._items(body, "locations"))
            self._location_list = (now, listing)
            return list(listing)

    async def _resolve(self, location: LocationRef) -> Location:
        """A location given as a model, an id or shortcode, or None for `LOOP_LOCATION`."""
        if isinstance(location, Location):
            return location
        return await self.location(location)

    async def location(self, id_or_shortcode: str | None = None) -> Location:
        """The location by id or shortcode (default `LOOP_LOCATION`), cached for good."""
        key = (id_or_shortcode or self.settings.location).strip()
        if not key:
            raise ConfigurationError(VENDOR, "LOOP_LOCATION is not set")
        cached = self._locations.get(key)
        if cached is not None:
            return cached
        async with self._lock:
            if key not in self._locations:
                self._locations[key] = await self._fetch_location(key)
        return self._locations[key]

    async def _fetch_location(self, key: str) -> Location:
        if OBJECT_ID.match(key):
            found = next((loc for loc in await self.locations() if loc.id == key), None)
            if found is None:
                raise ConfigurationError(VENDOR, "LOOP_LOCATION: Loop knows no such location")
        else:
            body = await self._lookup(
                "get_location", f"/locations/{quote(key, safe='')}", "LOOP_LOCATION", "location"
            )
            found = parse_model(Location, self._single(body, "location", "locations"), VENDOR)
        return found

    async def loop_types(self) -> list[LoopType]:
        """The account's loop types, fetched once (they are account configuration)."""
        async with self._lock:
            if self._loop_types is None:
                body = await self._get("list_loop_types", "/looptypes")
                self._loop_types = self._parse_all(
                    LoopType, self._items(body, "loopTypes", "looptypes", "loop_types", "types")
                )
            return self._loop_types

    async def loop_type_id(self, name: str | None = None) -> str:
        """The id of loop type `name` (default `LOOP_LOOP_TYPE`): its id, shortcode or title."""
        wanted = (name or self.settings.loop_type).strip()
        if not wanted:
            raise ConfigurationError(VENDOR, "LOOP_LOOP_TYPE is not set")
        for loop_type in await self.loop_types():
            if any(candidate.casefold() == wanted.casefold() for candidate in loop_type.names()):
                return loop_type.id
        raise ConfigurationError(VENDOR, "LOOP_LOOP_TYPE: Loop knows no such loop type")

    async def custom_field(self, shortcode: str) -> CustomField:
        """The custom field by shortcode, cached for good."""
        cached = self._custom_fields.get(shortcode)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._custom_fields.get(shortcode)
            if cached is not None:
                return cached
            body = await self._lookup(
                "get_custom_field", f"/customfields/{quote(shortcode, safe='')}",
                "LOOP_CUSTOM_FIELDS",
                f"custom field {shortcode!r}",
            )
            cached = parse_model(
                CustomField, self._single(body, "customfield", "customfields"), VENDOR
            )
            self._custom_fields[shortcode] = cached
        return cached

    async def custom_fields(self) -> list[CustomField]:
        """Every custom field of the account (not cached: for setup and diagnostics)."""
        body = await self._get("list_custom_fields", "/customfields")
        return self._parse_all(CustomField, self._items(body, "customfields", "customFields"))

    # -- surveys ---------------------------------------------------------------------
    async def survey(self, location: LocationRef = None) -> Survey:
        """The survey to run: `LOOP_SURVEY` by shortcode, else the survey of `location`
        (default `LOOP_LOCATION`). Reused for `LOOP_SURVEY_CACHE_SECONDS`."""
        resolved = None if self.settings.survey else await self._resolve(location)
        key = self.settings.survey or f"location:{resolved.id if resolved else ''}"
        async with self._lock:
            cached = self._surveys.get(key)
            now = self._clock()
            if cached is not None and now - cached[0] < self.settings.survey_cache_seconds:
                return cached[1]
            if self.settings.survey:
                survey = await self.survey_by_shortcode(self.settings.survey)
            else:
                survey = await self.survey_for_location(resolved)
            self._surveys[key] = (now, survey)
            return survey

    async def survey_by_shortcode(self, shortcode: str) -> Survey:
        body = await self._lookup("get_survey", f"/surveys/{quote(shortcode, safe='')}",
                                  "LOOP_SURVEY", "survey")
        return parse_model(Survey, self._single(body, "survey", "surveys"), VENDOR)

    async def survey_for_location(self, location: Location | None = None) -> Survey:
        """The survey Loop assigns to the location (`LOOP_SURVEY` unset).

        A 404 is the operator's to fix, not the customer's: the location has no survey, or
        Loop no longer knows it.
        """
        location = location or await self.location()
        try:
            body = await self._get("location_surveys", "/surveys",
                                   {"location": location.shortcode or location.id})
        except RejectedInput as exc:
            if exc.status != 404:
                raise
            error = ConfigurationError(
                VENDOR, "GET /surveys?location= answered 404: Loop knows no survey for "
                "LOOP_LOCATION; check LOOP_LOCATION, or set LOOP_SURVEY to a survey shortcode",
                status=404, vendor_message=exc.vendor_message)
            logger.error("loop: %s", error.message)
            raise error from None
        surveys = self._parse_all(Survey, self._items(body, "surveys"))
        if not surveys:
            raise ConfigurationError(VENDOR, "LOOP_LOCATION: Loop has no survey for the location")
        return surveys[0]

    async def surveys(self) -> list[Survey]:
        """Every survey of the account."""
        return self._parse_all(Survey, self._items(await self._get("list_surveys", "/surveys"),
                                                       "surveys"))

    async def submit_response(
        self,
        survey: Survey,
        answers: Mapping[str, Answer],
        *,
        when: datetime | None = None,
        location: LocationRef = None,
        reference: str | None = None,
    ) -> ResponseReceipt:
        """Send one response to `survey` at `location` (default `LOOP_LOCATION`): `answers`
        maps categoryId -> bool or text.

        Answers are checked against the survey first (unknown category, wrong value type),
        so a mistake is a `RejectedInput` before anything reaches Loop. `reference` (what
        the response is about, e.g. "Cention errand 1234") goes into the free text of the
        survey's first text question (see `with_reference`).
        """
        responses = []
        for question in survey.questions:
            if question.categoryId not in answers:
                continue
            value = answers[question.categoryId]
            if (question.type == BOOL) != isinstance(value, bool) or (
                question.type == TEXT and not isinstance(value, str)
            ):
                raise RejectedInput(VENDOR, f"answer to {question.categoryId} has the wrong type")
            responses.append({"categoryId": question.categoryId, "value": value})
        unknown = set(answers) - {q.categoryId for q in survey.questions}
        if unknown or not responses:
            raise RejectedInput(VENDOR, "answers do not match the survey's questions")
        if reference:
            responses = self.with_reference(survey, responses, reference)
        place = await self._resolve(location)
        body = {
            "source": self.settings.source,
            "location": place.id,
            "responses": responses,
            "timestamp": iso_timestamp(when),
        }
        if self.settings.device_id:
            body["deviceId"] = self.settings.device_id
        reply = await self._post("submit_survey", "/responses", body)
        receipt = parse_model(ResponseReceipt, reply, VENDOR)
        logger.info("loop: response %s stored%s", receipt.id,
                    f", loop {receipt.loopId} opened" if receipt.loopId else "")
        return receipt

    @staticmethod
    def with_reference(survey: Survey, responses: list[dict[str, Any]], reference: str
                       ) -> list[dict[str, Any]]:
        """`responses` with `[reference]` recorded in the first text question: after the
        customer's answer, or as the answer when they skipped it. Loop documents no other
        place in a response for it; a survey without a text question cannot carry it (logged,
        and the response is sent without it)."""
        question = next((q for q in survey.questions if q.type == TEXT), None)
        if question is None:
            logger.warning("loop: survey %s has no text question; the reference of the "
                           "response is not recorded", survey.id)
            return responses
        note = f"[{reference}]"
        updated = [dict(item) for item in responses]
        for item in updated:
            if item["categoryId"] == question.categoryId:
                item["value"] = f"{item['value']}\n\n{note}"
                return updated
        order = [q.categoryId for q in survey.questions]
        updated.append({"categoryId": question.categoryId, "value": note})
        return sorted(updated, key=lambda item: order.index(item["categoryId"]))

    # -- loops -----------------------------------------------------------------------
    async def create_loop(
        self,
        description: str,
        *,
        title: str | None = None,
        user: LoopUser | None = None,
        custom_fields: Mapping[str, str] | None = None,
        when: datetime | None = None,
        location: LocationRef = None,
    ) -> CreatedLoop:
        """Open a loop at `location` (default `LOOP_LOCATION`). `custom_fields` maps custom
        field shortcodes to values; they are resolved to ids (cached)."""
        if not description.strip():
            raise RejectedInput(VENDOR, "a loop needs a description")
        place = await self._resolve(location)
        body: dict[str, Any] = {
            "source": self.settings.source,
            "location": place.id,
            "loopType": await self.loop_type_id(),
            "description": description,
            "timestamp": iso_timestamp(when),
        }
        if self.settings.device_id:
            body["deviceId"] = self.settings.device_id
        if title:
            body["title"] = title
        if user is not None and user.as_json():
            body["user"] = user.as_json()
        fields = []
        for shortcode, value in (custom_fields or {}).items():
            field = await self.custom_field(shortcode)
            fields.append({field.id: value})
        if fields:
            body["customFields"] = fields
        reply = await self._post("create_loop", "/loops", body)
        if isinstance(reply, dict) and "id" not in reply and "loopId" in reply:
            reply = {"id": reply["loopId"], "url": reply.get("loopUrl")}
        created = parse_model(CreatedLoop, reply, VENDOR)
        logger.info("loop: loop %s created", created.id)
        return created

    async def loops_for_customer(self, customer_id: str) -> list[LoopSummary]:
        """Every loop created by the Loop user `customer_id`, most recent first (Loop
        documents no order)."""
        body = await self._get("customer_loops", "/loops", {"customer": customer_id})
        return recent_first(self._parse_all(LoopSummary, self._items(body, "loops")))

    # -- guests ----------------------------------------------------------------------
    async def users(self, *, email: str | None = None, sms: str | None = None
                    ) -> list[UserAccount]:
        """The accounts (guests or employees) with this email address or mobile number:
        usually one, several when they share it. Exactly one of the two must be given.

        Whoever calls this must own the address: the accounts' loops are theirs to see.
        """
        query = {key: value for key, value in (("email", email), ("sms", sms)) if value}
        if len(query) != 1:
            raise ValueError("look users up by exactly one of email or sms")
        body = await self._get("find_user", "/users/", query)
        return self._parse_all(UserAccount, self._items(body, "users"))

    async def invite_url(
        self, *, location: LocationRef = None, user: LoopUser | None = None
    ) -> InviteLink:
        """An invite URL for `location` (default `LOOP_LOCATION`): personalised for `user`
        (Loop reuses the guest with that email or sms, or creates one), or generic without.

        Loop sends nothing to the guest itself. Personalise only for an address the
        customer owns: the URL acts for that guest profile.
        """
        place = await self._resolve(location)
        body: dict[str, Any] = {"locationId": place.id}
        if user is not None:
            body.update(user.as_json())
        link = parse_model(InviteLink,
                           await self._post("create_invite_link", "/invite/url", body), VENDOR)
        logger.info("loop: %s invite URL created", "personal" if link.guestId else "generic")
        return link


def recent_first(loops: list[LoopSummary]) -> list[LoopSummary]:
    """Most recent first by `created_on`; loops without a date last, in Loop's order."""
    dated = sorted((loop for loop in loops if loop.created_on is not None),
                   key=lambda loop: loop.created_on or 0, reverse=True)
    return dated + [loop for loop in loops if loop.created_on is None]

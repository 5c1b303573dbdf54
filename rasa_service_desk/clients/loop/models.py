"""Loop's replies as pydantic models (the API subset common to pydantic 1.10 and 2).

Field names are Loop's own camelCase keys, so no aliases are needed. Where the documentation
shows two spellings of one key (`shortCode`/`shortcode`, `questionOrderRandomization`/
`questionOrderRandomized`) both are accepted and a property gives the effective value.
Texts are maps by language (`{"en": "..."}`).
"""

from typing import Any

from pydantic import BaseModel, Field

LocalizedText = dict[str, str]

BOOL = "bool"
TEXT = "text"


def localized(texts: LocalizedText, language: str | None, fallback: str) -> str:
    """The text in `language` (exact, then its base `fr` of `fr-CA`), else `fallback`,
    else any text present, else ""."""
    if not texts:
        return ""
    lowered = {key.lower(): value for key, value in texts.items() if isinstance(value, str)}
    wanted: list[str] = []
    if language:
        wanted += [language.lower(), language.lower().replace("_", "-").split("-")[0]]
    wanted += [fallback.lower(), fallback.lower().split("-")[0]]
    for key in wanted:
        if lowered.get(key):
            return lowered[key]
    return next((value for value in lowered.values() if value), "")


class Location(BaseModel):
    id: str
    shortcode: str | None = None
    title: LocalizedText = Field(default_factory=dict)


class LoopType(BaseModel):
    id: str
    #: Shape undocumented: a language map or a plain string.
    title: Any = None
    shortcode: str | None = None

    def names(self) -> list[str]:
        """Every name the operator may use for this type in `LOOP_LOOP_TYPE`."""
        names = [self.id]
        if self.shortcode:
            names.append(self.shortcode)
        if isinstance(self.title, str):
            names.append(self.title)
        elif isinstance(self.title, dict):
            names.extend(str(value) for value in self.title.values())
        return names


class CustomField(BaseModel):
    id: str
    shortcode: str
    title: LocalizedText = Field(default_factory=dict)
    required: bool = False


class Question(BaseModel):
    categoryId: str
    type: str
    text: LocalizedText = Field(default_factory=dict)
    placeholder: LocalizedText = Field(default_factory=dict)
    #: Not in the documentation; when absent, yes/no questions are required and free-text
    #: questions optional (see `is_required`).
    required: bool | None = None

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.type == BOOL


class Survey(BaseModel):
    id: str
    shortCode: str | None = None
    shortcode: str | None = None
    description: str | None = None
    questions: list[Question] = Field(default_factory=list)
    questionOrderRandomization: bool | None = None
    questionOrderRandomized: bool | None = None

    @property
    def code(self) -> str | None:
        return self.shortcode or self.shortCode

    @property
    def randomized(self) -> bool:
        return bool(self.questionOrderRandomization or self.questionOrderRandomized)

    def question(self, category_id: str) -> Question | None:
        return next((q for q in self.questions if q.categoryId == category_id), None)


class ResponseReceipt(BaseModel):
    """Reply to `POST /responses`; `loopId`/`loopUrl` when Loop opened a loop from it."""

    id: str
    loopId: str | None = None
    loopUrl: str | None = None


class CreatedLoop(BaseModel):
    """Reply to `POST /loops`: the loop's id and the URL to view it in a browser."""

    id: str
    url: str | None = None


class LoopSummary(BaseModel):
    """One loop of `GET /loops?customer=`: the fields the bot may show or act on."""

    id: str
    description: str = ""
    summary: str | None = None
    #: `open` in the documentation's example; other values are undocumented.
    state: str | None = None
    creatorId: str | None = None
    #: Milliseconds since the epoch, as in the documentation's example.
    created_on: int | None = None
    updated_on: int | None = None
    #: `{"id", "title", "timezone", ...}` in the documentation's example (title a plain
    #: string here, unlike `GET /locations`); kept loose.
    location: Any = None

    @property
    def location_title(self) -> str:
        """The location's title as a plain string ("" when unknown)."""
        title = self.location.get("title") if isinstance(self.location, dict) else None
        if isinstance(title, dict):
            return localized(title, None, "en")
        return title if isinstance(title, str) else ""

    @property
    def location_timezone(self) -> str | None:
        zone = self.location.get("timezone") if isinstance(self.location, dict) else None
        return zone if isinstance(zone, str) and zone else None


class UserAccount(BaseModel):
    """One account of `GET /users/?email=|sms=|username=` (employee or guest)."""

    id: str
    username: str | None = None
    name: str | None = None
    email: str | None = None
    sms: str | None = None


class InviteLink(BaseModel):
    """Reply to `POST /invite/url`: the personalised (or generic) invite URL and, when a
    guest profile was used or created, its id."""

    url: str
    guestId: str | None = None

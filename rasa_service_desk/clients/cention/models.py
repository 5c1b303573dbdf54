"""JSON:API documents as Cention sends them, and the library question the bot shows.

Written with the pydantic API shared by 1.10 and 2 (see `clients.compat`), since the
callback connector parses Cention documents inside Rasa Open Source too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ResourceIdentifier(BaseModel):
    """`{"type": ..., "id": ...}`, as used in relationships."""

    type: str
    id: str | int

    @property
    def key(self) -> str:
        return str(self.id)


class Relationship(BaseModel):
    data: list[ResourceIdentifier] | ResourceIdentifier | None = None
    links: dict[str, Any] = Field(default_factory=dict)

    def identifiers(self) -> list[ResourceIdentifier]:
        if self.data is None:
            return []
        return self.data if isinstance(self.data, list) else [self.data]


class Resource(BaseModel):
    type: str
    id: str | int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    relationships: dict[str, Relationship] = Field(default_factory=dict)
    links: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return "" if self.id is None else str(self.id)

    def related(self, name: str) -> list[ResourceIdentifier]:
        relationship = self.relationships.get(name)
        return relationship.identifiers() if relationship is not None else []


class ErrorObject(BaseModel):
    status: str | int | None = None
    code: str | int | None = None
    title: str | None = None
    detail: str | None = None


class Document(BaseModel):
    """A top-level JSON:API document: primary data (one, many or none) and `included`."""

    data: list[Resource] | Resource | None = None
    included: list[Resource] = Field(default_factory=list)
    errors: list[ErrorObject] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    links: dict[str, Any] = Field(default_factory=dict)

    def resources(self) -> list[Resource]:
        if self.data is None:
            return []
        return self.data if isinstance(self.data, list) else [self.data]

    def included_of(self, type_: str) -> dict[str, Resource]:
        return {r.key: r for r in self.included if r.type == type_}


class LibraryQuestion(BaseModel):
    """A library entry as the bot shows it: plain-text title, question and answer.

    `answer_html` keeps Cention's original for channels that render HTML.
    """

    id: str
    title: str = ""
    question: str = ""
    answer: str = ""
    answer_html: str = ""


def error_text(body: Any) -> str:
    """The vendor's explanation from a JSON:API error document (or any JSON), for logs."""
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors")
    if isinstance(errors, list):
        parts = []
        for item in errors:
            if isinstance(item, dict):
                text = " - ".join(
                    str(item[k]) for k in ("status", "title", "detail") if item.get(k)
                )
                if text:
                    parts.append(text)
            elif isinstance(item, str):
                parts.append(item)
        return "; ".join(parts)
    for key in ("error", "message", "detail"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return ""

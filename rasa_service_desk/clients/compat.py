"""Pydantic 1/2 helpers for the vendor models and the settings.

The Cention connector runs inside Rasa Open Source 3.6, which pins pydantic 1.10, while the
action server runs on pydantic 2. Vendor models therefore use the API both versions share
(`BaseModel`, `Field`, defaults, aliases) and are parsed and dumped only through these helpers.
The settings use them too, so the actions also run in a Rasa 3.6 environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ValidationError

from rasa_service_desk.clients.errors import MalformedReply

M = TypeVar("M", bound=BaseModel)

#: True on pydantic 2 (the action server's usual environment), False on 1.10 (Rasa 3.6).
PYDANTIC_V2 = pydantic.VERSION.startswith("2.")


def parse_model(model: type[M], data: Any, vendor: str) -> M:
    """Validate a vendor reply into `model`, raising `MalformedReply` when it does not fit."""
    validate = getattr(model, "model_validate", None)
    try:
        if validate is not None:
            return validate(data)  # type: ignore[no-any-return,unused-ignore]
        return model.parse_obj(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise MalformedReply(
            vendor, f"unexpected {model.__name__} reply (fields: {', '.join(fields)})"
        ) from None


def dump_model(model: BaseModel, **kwargs: Any) -> dict[str, Any]:
    """Dump a model to plain data on either pydantic version."""
    dump = getattr(model, "model_dump", None)
    if dump is not None:
        return dump(**kwargs)  # type: ignore[no-any-return,unused-ignore]
    return model.dict(**kwargs)


def copy_model(model: M, **update: Any) -> M:
    """A copy of `model` with `update` applied (no validation, as on both versions)."""
    if PYDANTIC_V2:
        return model.model_copy(update=update)
    return model.copy(update=update)


def field_names(model: type[BaseModel]) -> list[str]:
    """The declared fields of a model class, in declaration order."""
    return list(_fields(model))


def field_default(model: type[BaseModel], name: str) -> Any:
    """The default value of field `name` of a model class."""
    return _fields(model)[name].default


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    source: Any = model
    return dict(source.model_fields if PYDANTIC_V2 else source.__fields__)


def field_check(*fields: str, before: bool = False) -> Callable[[Any], Any]:
    """A field validator on either pydantic version (`field_validator` / `validator`).

    Decorate a classmethod `(cls, value)`; `before=True` runs it on the raw input.
    """
    if PYDANTIC_V2:
        from pydantic import field_validator

        return field_validator(*fields, mode="before" if before else "after")
    from pydantic import validator

    return validator(*fields, pre=before, allow_reuse=True)

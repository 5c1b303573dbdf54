"""Pydantic 1/2 helpers for the vendor models.

The Cention connector runs inside Rasa Open Source 3.6, which pins pydantic 1.10, while the
action server runs on pydantic 2. Vendor models therefore use the API both versions share
(`BaseModel`, `Field`, defaults, aliases) and are parsed and dumped only through these helpers.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clients.errors import MalformedReply

M = TypeVar("M", bound=BaseModel)


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

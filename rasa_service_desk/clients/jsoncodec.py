"""JSON on the hot paths: orjson, with the standard library for what orjson refuses.

Every action call arrives as one large JSON document (Rasa sends the whole domain and
tracker), and every vendor call sends and reads JSON: with the standard library that was
the biggest single cost of the action server's CPU. orjson parses and writes the same JSON
several times faster. It is stricter than the standard library in a few corners that valid
traffic never reaches (NaN and Infinity, lone surrogates); such a document is handed to the
standard library, so what was accepted before still is. One difference stays: orjson reads
an integer beyond 64 bits as a float, where the standard library keeps it exact. Action
calls and vendor replies accept that for speed (no vendor documents such a number); stored
records, where a customer's value could be one, are read by the standard library
(`loads_stored`).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises `ValueError` (as `json.loads` does) when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """Write JSON as text (UTF-8 characters kept, no spaces)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # a type orjson does not know, an int beyond 64 bits, NaN keys, ...
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: Types the standard library refuses that orjson would write as text: refused here too, so a
#: record never comes back with a different type than it was given.
_STORED_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps_stored(value: Any) -> str:
    """JSON text for a stored record: orjson's, or the standard library's ASCII-escaped text
    for what orjson refuses (a lone surrogate in a customer's text, an integer beyond 64
    bits), which stays storable. NaN and infinities are written as null, as in vendor calls.
    Read records back with `loads_stored`."""
    try:
        return orjson.dumps(value, option=_STORED_OPTIONS).decode()
    except TypeError:
        return json.dumps(value)


def loads_stored(text: str | bytes) -> Any:
    """Parse a stored record with the standard library, which keeps integers beyond 64 bits
    exact (orjson reads them as floats). Records are small and read far less often than
    written."""
    return json.loads(text)

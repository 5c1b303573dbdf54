"""`python -m rasa_service_desk.sandbox`: the event loop it serves on."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from rasa_service_desk.sandbox.__main__ import event_loop


def test_serves_on_uvloop_where_it_is_installed() -> None:
    loop = event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    loop = event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()

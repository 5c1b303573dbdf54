"""`python -m rasa_service_desk.sandbox`: the event loop it serves on."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rasa_service_desk.sandbox import __main__ as sandbox_main

uvloop = pytest.importorskip("uvloop")  # installed with Sanic on CPython outside Windows


def test_serves_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(sandbox_main.web, "run_app",
                        lambda app, **options: served.update(app=app, **options))
    sandbox_main.main(["--port", "18999", "--latency-ms", "5"])
    try:
        assert isinstance(served["loop"], uvloop.Loop)
        assert served["port"] == 18999
    finally:
        served["loop"].close()


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    loop = sandbox_main.event_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()

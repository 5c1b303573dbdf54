"""Garbage collection of action-server workers (`rasa_service_desk.plugin`): sized for a
server that parses a large tracker per request, and left alone when an operator says so."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rasa_service_desk.clients.settings import load_global_settings
from rasa_service_desk.plugin import tune_garbage_collection


@pytest.fixture(autouse=True)
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_a_worker_freezes_its_start_up_heap_and_collects_less_often() -> None:
    older = gc.get_threshold()[1:]
    tune_garbage_collection(load_global_settings(None).action_server_gc_threshold)
    assert gc.get_threshold() == (50_000, *older)
    assert gc.get_freeze_count() > 0  # start-up objects are no longer walked


def test_zero_keeps_pythons_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTION_SERVER_GC_THRESHOLD", "0")
    before = gc.get_threshold()
    tune_garbage_collection(load_global_settings(None).action_server_gc_threshold)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

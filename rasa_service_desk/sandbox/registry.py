"""Which simulators exist. Adding a vendor means adding one line to `SIMULATORS`."""

from __future__ import annotations

import importlib

from rasa_service_desk.sandbox.core import Simulator

#: URL prefix -> "module:SimulatorClass"
SIMULATORS: dict[str, str] = {
    "benti": "rasa_service_desk.sandbox.benti:BentiSimulator",
    "cention": "rasa_service_desk.sandbox.cention:CentionSimulator",
    "imbee": "rasa_service_desk.sandbox.imbee:ImbeeSimulator",
    "loop": "rasa_service_desk.sandbox.loop:LoopSimulator",
}


def build_simulators(latency: float = 0.0) -> dict[str, Simulator]:
    """A fresh instance of every registered simulator."""
    result: dict[str, Simulator] = {}
    for prefix, target in SIMULATORS.items():
        module_name, _, class_name = target.partition(":")
        result[prefix] = getattr(importlib.import_module(module_name), class_name)(latency)
    return result

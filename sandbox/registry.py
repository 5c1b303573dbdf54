"""Which simulators exist. Adding a vendor means adding one line to `SIMULATORS`."""

from __future__ import annotations

import importlib

from sandbox.core import Simulator

#: URL prefix -> "module:SimulatorClass"
SIMULATORS: dict[str, str] = {
    "benti": "sandbox.benti:BentiSimulator",
    "cention": "sandbox.cention:CentionSimulator",
    "imbee": "sandbox.imbee:ImbeeSimulator",
    "loop": "sandbox.loop:LoopSimulator",
}


def build_simulators(latency: float = 0.0) -> dict[str, Simulator]:
    """A fresh instance of every registered simulator."""
    result: dict[str, Simulator] = {}
    for prefix, target in SIMULATORS.items():
        module_name, _, class_name = target.partition(":")
        result[prefix] = getattr(importlib.import_module(module_name), class_name)(latency)
    return result

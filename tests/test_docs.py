"""The documentation shows what ships: README.md and docs/*.md are checked against the repo.

- Every fenced `yaml` block starts with a comment naming the shipped file it shows
  (`# domain/benti.yml`, `# data/cention.yml`, `# config/credentials.yml`), and every
  key and value it shows is in that file; or it starts with `# example` (illustrative only).
- Every relative link points to a file that exists.
- Every `python -m <module>`, `--actions <module>` and `from rasa_service_desk... import X`
  resolves (found, not run: importing a vendor's module would read its settings).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: A fenced block, also indented inside a list item: (indent, tag, body).
FENCE = re.compile(r"^([ \t]*)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"#\s*((?:domain|data|config)/[\w.-]+\.yml)\s*$")
EXAMPLE = re.compile(r"#\s*example\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PYTHON_M = re.compile(r"python -m ([\w.]+)")
ACTIONS_ARG = re.compile(r"--actions ([\w.]+)")
FROM_IMPORT = re.compile(r"from (rasa_service_desk[\w.]*) import ([\w, ]+)")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def yaml_blocks() -> list[Any]:
    """(where, text) of every yaml block of the docs."""
    blocks = []
    for doc in DOCS:
        for number, match in enumerate(FENCE.finditer(doc.read_text(encoding="utf-8")), 1):
            _, tag, body = match.groups()
            if tag in ("yaml", "yml"):
                where = f"{rel(doc)} block {number}"
                blocks.append(pytest.param(where, textwrap.dedent(body), id=where))
    return blocks


def contains(shipped: Any, shown: Any, partial_list: bool = False) -> bool:
    """Whether `shown` is in `shipped`: dicts may show some of their keys; the lists under a
    file's top-level keys (rules, intents, pipeline, ...) may show some of their items, in
    order; any other list must show all of its items; scalars must be equal."""
    if isinstance(shown, dict):
        return isinstance(shipped, dict) and all(
            key in shipped and contains(shipped[key], value) for key, value in shown.items())
    if isinstance(shown, list):
        if not isinstance(shipped, list):
            return False
        if not partial_list:
            return len(shown) == len(shipped) and all(map(contains, shipped, shown))
        remaining = iter(shipped)
        return all(any(contains(candidate, item) for candidate in remaining) for item in shown)
    return type(shown) is type(shipped) and shown == shipped


def top_level_contains(shipped: Any, shown: Any) -> bool:
    if not isinstance(shown, dict) or not isinstance(shipped, dict):
        return shown == shipped
    return all(key in shipped and contains(shipped[key], value, partial_list=True)
               for key, value in shown.items())


@pytest.mark.parametrize(("where", "text"), yaml_blocks())
def test_yaml_blocks_match_the_shipped_files(where: str, text: str) -> None:
    first_line = text.splitlines()[0] if text.strip() else ""
    if EXAMPLE.fullmatch(first_line.strip()):
        yaml.safe_load(text)  # illustrative, but still valid YAML
        return
    marker = MARKER.fullmatch(first_line.strip())
    assert marker, (f"{where}: a yaml block must start with '# domain/<file>.yml' (or data/, "
                    f"config/) naming the shipped file it shows, or with '# example'")
    target = ROOT / marker.group(1)
    assert target.is_file(), f"{where}: {marker.group(1)} does not exist"
    shown = yaml.safe_load(text)
    shipped = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert top_level_contains(shipped, shown), (
        f"{where} shows something {marker.group(1)} does not contain:\n{text}")


def test_the_yaml_check_notices_a_difference() -> None:
    shipped = {"rules": [{"rule": "a", "steps": [{"intent": "x"}, {"action": "y"}]}]}
    assert top_level_contains(shipped, {"rules": [{"rule": "a"}]})
    assert not top_level_contains(shipped, {"rules": [{"rule": "b"}]})
    assert not top_level_contains(shipped, {"rules": [{"rule": "a", "steps": [{"intent": "x"}]}]})
    assert not top_level_contains({"n": 1}, {"n": "1"})


def test_relative_links_point_to_existing_files() -> None:
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or an anchor in the same page
            if not (doc.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{rel(doc)}: {target}")
    assert not broken, f"links to files that do not exist: {broken}"


def module_names() -> list[tuple[str, str]]:
    """(where, module) of every `python -m` and `--actions` module the docs mention."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for pattern in (PYTHON_M, ACTIONS_ARG):
            found += [(rel(doc), name) for name in pattern.findall(text)]
    return sorted(set(found))


def test_the_docs_name_modules() -> None:
    names = {name for _, name in module_names()}
    assert {"rasa_service_desk", "rasa_service_desk.sandbox", "rasa_sdk"} <= names


@pytest.mark.parametrize(("where", "module"), module_names())
def test_python_m_modules_exist(where: str, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # the reference bot's `actions`, and `bench`
    assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"


def imported_names() -> list[tuple[str, str, str]]:
    """(where, module, name) of every `from rasa_service_desk... import name` in the docs."""
    found = []
    for doc in DOCS:
        for module, names in FROM_IMPORT.findall(doc.read_text(encoding="utf-8")):
            found += [(rel(doc), module, name.strip())
                      for name in names.split(",") if name.strip()]
    return sorted(set(found))


def is_submodule(module: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{module}.{name}") is not None
    except ModuleNotFoundError:  # `module` is a module, not a package
        return False


@pytest.mark.parametrize(("where", "module", "name"), imported_names())
def test_imports_resolve(where: str, module: str, name: str) -> None:
    if is_submodule(module, name):
        return  # e.g. rasa_service_desk.actions.benti, found without running it
    assert hasattr(importlib.import_module(module), name), f"{where}: {module} has no {name}"

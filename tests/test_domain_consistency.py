"""The domain and the action server agree, so a designer never meets "action not found".

Runs the real action server (`python -m rasa_sdk --actions actions`) and compares what it
serves with what `domain/` declares, and checks every response an action utters exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.rasa_payloads import ROOT, load_domain
from tests.support.servers import ActionServer


def declared_actions() -> set[str]:
    """Custom actions declared under domain/ (responses are served by Rasa itself)."""
    return {a for a in load_domain()["actions"] if not a.startswith("utter_")}


def test_every_declared_action_is_served(action_server: ActionServer) -> None:
    missing = declared_actions() - set(action_server.actions())
    assert not missing, f"declared in domain/ but not served by the action server: {missing}"


def test_every_served_action_is_declared(action_server: ActionServer) -> None:
    undeclared = set(action_server.actions()) - declared_actions()
    assert not undeclared, f"served but missing from the domain's `actions:`: {undeclared}"


def test_every_form_has_a_served_validator(action_server: ActionServer) -> None:
    forms = set(load_domain()["forms"])
    assert forms, "no forms declared under domain/"
    served = set(action_server.actions())
    missing = {f"validate_{form}" for form in forms} - served
    assert not missing, f"forms without a validator on the action server: {missing}"


def uttered_responses(path: Path) -> set[str]:
    """Response names passed as `response="utter_..."` in a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "response" and isinstance(
            node.value, ast.Constant
        ) and isinstance(node.value.value, str):
            names.add(node.value.value)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
            node.value.startswith("utter_") and node.value.isidentifier()
        ):
            names.add(node.value)
    return names


def test_every_response_the_actions_utter_is_in_the_domain() -> None:
    responses = set(load_domain()["responses"])
    missing = {
        f"{path.name}: {name}"
        for path in sorted((ROOT / "rasa_service_desk" / "actions").rglob("*.py"))
        for name in uttered_responses(path)
        if name.startswith("utter_") and name not in responses
    }
    assert not missing, f"responses uttered by actions but not in domain/: {sorted(missing)}"


def test_no_slot_is_filled_from_a_message_the_customer_did_not_type() -> None:
    """A `from_text` mapping would file a Cention agent's answer (a message in Rasa's intent
    syntax, injected by the callback connector) as a ticket description or survey answer.
    Every form slot is filled by its validator from the customer's own words instead."""
    domain = load_domain()
    for slot, spec in domain["slots"].items():
        for mapping in spec.get("mappings", []):
            if mapping.get("type") == "from_text":
                excluded = mapping.get("not_intent") or []
                assert "cention_agent_answer" in excluded, (
                    f"slot {slot}: a from_text mapping takes an agent's answer as input")


def test_every_custom_form_slot_has_an_extractor() -> None:
    """The slots a form asks for with a `custom` mapping are filled by its validator."""
    import rasa_sdk

    from rasa_service_desk.actions import benti, cention, imbee, loop  # noqa: F401
    from rasa_service_desk.actions.forms import TextSlotForm

    validators = {}
    for cls in _all_subclasses(rasa_sdk.FormValidationAction):
        try:
            validators[cls().name()] = cls
        except (NotImplementedError, TypeError):
            continue
    domain = load_domain()
    for form, spec in domain["forms"].items():
        validator = validators[f"validate_{form}"]
        for slot in spec.get("required_slots", []):
            kinds = {m.get("type") for m in domain["slots"][slot].get("mappings", [])}
            if "custom" not in kinds:
                continue
            text_slots = validator.text_slots if issubclass(validator, TextSlotForm) else ()
            assert slot in text_slots or hasattr(validator, f"extract_{slot}"), (
                f"{form}: nothing fills {slot}")


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.extend([sub, *_all_subclasses(sub)])
    return found

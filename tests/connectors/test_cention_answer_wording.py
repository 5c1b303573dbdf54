"""What the customer reads for each kind of agent answer, rendered by Rasa 3.6 from the
shipped domain: never an empty message, even for an answer of attachments only."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from rasa_service_desk.connectors.cention import answer_kind

pytestmark = pytest.mark.rasa

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = Domain.load([str(ROOT / "domain" / "shared.yml"), str(ROOT / "domain" / "cention.yml")])


async def rendered(text: str, names: tuple[str, ...]) -> str:
    tracker = DialogueStateTracker.from_events("c1", [
        SlotSet("cention_answer_errand_id", "2256"),
        SlotSet("cention_answer_text", text),
        SlotSet("cention_attachment_names", ", ".join(names)),
        SlotSet("cention_answer_kind", answer_kind(text, names)),
    ], slots=DOMAIN.slots)
    nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    reply = await nlg.generate("utter_cention_agent_answer", tracker, "rest")
    assert reply is not None
    return str(reply["text"])


async def test_text_only() -> None:
    shown = await rendered("Your refund is on its way.", ())
    assert shown.endswith("(reference 2256):\n\nYour refund is on its way.")
    assert "attachments" not in shown


async def test_text_and_files() -> None:
    shown = await rendered("See the label.", ("label.pdf",))
    assert "See the label." in shown and "label.pdf" in shown


async def test_files_only_is_not_an_empty_message() -> None:
    shown = await rendered("", ("label.pdf", "invoice.pdf"))
    assert "label.pdf, invoice.pdf" in shown
    assert ":\n\n\n" not in shown and not shown.rstrip().endswith(":")


async def test_nothing_readable_still_says_an_answer_came() -> None:
    shown = await rendered("", ())
    assert "2256" in shown and "email" in shown

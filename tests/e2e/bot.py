"""Talking to the running bot: REST-channel turns, the tracker, and reply matching.

Replies are matched against the response *templates* of `domain/` rather than literal
strings, so designers can reword a response without breaking these tests, while a reply
from the wrong response (or none) still fails.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import requests

from tests.support.rasa_payloads import load_domain
from tests.support.servers import Process

TURN_TIMEOUT = 60
#: The Cention callback secret the tests configure the connector with.
CALLBACK_SECRET = "e2e-callback-secret"


@cache
def _patterns(response: str) -> tuple[re.Pattern[str], ...]:
    variations = load_domain()["responses"].get(response)
    assert variations, f"no response {response!r} in domain/"
    patterns = []
    for variation in variations:
        parts = re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", variation["text"])
        regex = "".join(".+?" if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts)
        patterns.append(re.compile(regex, re.DOTALL))
    return tuple(patterns)


def is_response(text: str, response: str) -> bool:
    """Whether `text` is one of `response`'s variations with its {variables} filled in."""
    return any(p.fullmatch(text) for p in _patterns(response))


def slot_value(text: str, response: str, variable: str) -> str:
    """The value `variable` took in `text`, an utterance of `response`."""
    for variation in load_domain()["responses"][response]:
        parts = re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", variation["text"])
        regex = "".join(
            (f"(?P<{p[1:-1]}>.+?)" if p == "{" + variable + "}" else ".+?")
            if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts)
        match = re.fullmatch(regex, text, re.DOTALL)
        if match:
            return match.group(variable)
    raise AssertionError(f"{text!r} is not an utterance of {response}")


@dataclass
class RasaServer:
    url: str
    process: Process
    #: Other processes whose log tails help explain a failed turn (the action server).
    peers: dict[str, Process] = field(default_factory=dict)

    def conversation(self) -> Conversation:
        return Conversation(self, f"e2e-{uuid.uuid4().hex[:12]}")

    def log_tails(self, lines: int = 25) -> str:
        parts = []
        for name, process in {"rasa": self.process, **self.peers}.items():
            tail = "\n".join(process.output().splitlines()[-lines:])
            parts.append(f"--- last lines of the {name} log ---\n{tail}")
        return "\n".join(parts)


@dataclass
class Conversation:
    """One customer talking to the bot through Rasa's REST channel."""

    rasa: RasaServer
    sender: str
    replies: list[list[str]] = field(default_factory=list)

    def say(self, text: str, metadata: dict[str, Any] | None = None) -> list[str]:
        """Send a message; return the texts the bot answered with."""
        body: dict[str, Any] = {"sender": self.sender, "message": text}
        if metadata:
            body["metadata"] = metadata
        resp = requests.post(f"{self.rasa.url}/webhooks/rest/webhook", json=body,
                             timeout=TURN_TIMEOUT)
        assert resp.status_code == 200, f"HTTP {resp.status_code}: {resp.text[:500]}"
        texts = [m["text"] for m in resp.json() if m.get("text")]
        self.replies.append(texts)
        return texts

    def expect(self, text: str, *responses: str,
               metadata: dict[str, Any] | None = None) -> list[str]:
        """Say `text` and check the bot answered with exactly `responses`, in order."""
        texts = self.say(text, metadata)
        assert len(texts) == len(responses) and all(
            is_response(t, r) for t, r in zip(texts, responses, strict=True)
        ), (f"after {text!r} expected {list(responses)}, the bot said {texts}\n"
            f"slots: {self.slots()}\n{self.rasa.log_tails()}")
        return texts

    def tracker(self) -> dict[str, Any]:
        resp = requests.get(f"{self.rasa.url}/conversations/{self.sender}/tracker",
                            timeout=TURN_TIMEOUT)
        resp.raise_for_status()
        return dict(resp.json())

    def slots(self) -> dict[str, Any]:
        return dict(self.tracker()["slots"])

    def bot_texts(self) -> list[str]:
        """Everything the bot said in this conversation, from the tracker."""
        return [e.get("text") or "" for e in self.tracker()["events"] if e["event"] == "bot"]

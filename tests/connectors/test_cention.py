"""The Cention callback channel inside Rasa Open Source 3.6 (run in .venv-rasa: `-m rasa`).

The channel is mounted with Rasa's own `register()` on a Sanic app served on loopback; the
agent stand-in applies what Rasa's processor does with a pre-parsed message (the user event,
slot extraction with the real domain, the rule's response rendered by Rasa's generator) and
sends the reply through the output channel the connector chose.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rasa", reason="Rasa Open Source 3.6 tests run in .venv-rasa")

import aiohttp
from aioresponses import aioresponses
from rasa.core.actions.action import ActionExtractSlots
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
    register,
)
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.training_data.story_reader.yaml_story_reader import (
    YAMLStoryReader,
)
from rasa.shared.nlu.training_data.message import Message
from sanic import Blueprint, Sanic, response

from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.errors import ConfigurationError
from rasa_service_desk.connectors.cention import CentionInput
from rasa_service_desk.state import open_store
from rasa_service_desk.state.held_messages import release
from tests.clients.test_cention_callback import (
    SECRET,
    attachment_reply,
    sample_callback,
)

pytestmark = pytest.mark.rasa

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_FILES = [str(ROOT / "domain" / "shared.yml"), str(ROOT / "domain" / "cention.yml")]
WEBHOOK = "/webhooks/cention/webhook"


class RecordingOutput(OutputChannel):
    """A channel that can push: records what the bot sends."""

    def __init__(self, sent: list[tuple[str, str]]) -> None:
        self.sent = sent

    @classmethod
    def name(cls) -> str:
        return "pushy"

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        self.sent.append((recipient_id, text))


class PushyInput(InputChannel):
    """The customer's channel in these tests; `can_push` decides `get_output_channel()`."""

    def __init__(self, can_push: bool) -> None:
        self.can_push = can_push
        self.sent: list[tuple[str, str]] = []

    @classmethod
    def name(cls) -> str:
        return "pushy"

    def blueprint(self, on_new_message: Any) -> Blueprint:
        bp = Blueprint(f"pushy_{uuid.uuid4().hex}", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_: Any) -> Any:
            return response.json({"status": "ok"})

        return bp

    def get_output_channel(self) -> OutputChannel | None:
        return RecordingOutput(self.sent) if self.can_push else None


class AgentStandIn:
    """What `Agent.handle_message` does with a message that arrives already parsed."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.tracker_store = InMemoryTrackerStore(domain)
        self.nlg = TemplatedNaturalLanguageGenerator(domain.responses)
        self.messages: list[UserMessage] = []

    async def handle_message(self, message: UserMessage) -> None:
        self.messages.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        parse_data = message.parse_data or {}
        tracker.update(UserUttered(message.text, parse_data["intent"], parse_data["entities"],
                                   parse_data, input_channel=message.input_channel,
                                   metadata=message.metadata), self.domain)
        for event in await ActionExtractSlots(None).run(
            message.output_channel, self.nlg, tracker, self.domain
        ):
            tracker.update(event, self.domain)
        # The rule of the README: intent cention_agent_answer -> utter_cention_agent_answer
        reply = await self.nlg.generate(
            "utter_cention_agent_answer", tracker, message.output_channel.name()
        )
        assert reply is not None
        await message.output_channel.send_response(message.sender_id, reply)
        await self.tracker_store.save(tracker)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite3'}"


async def record_owner(state_url: str, errand_id: str, sender_id: str, channel: str) -> None:
    """What the action server does when it creates the errand."""
    await ErrandRegistry(open_store(state_url)).record(errand_id, sender_id, channel)


def credentials(state_url: str, **extra: Any) -> dict[str, Any]:
    return {"api_secret": SECRET, "base_url": "http://localhost/s/demo",
            "attachment_token": "jwt-attach", "state_url": state_url, **extra}


@asynccontextmanager
async def rasa_app(
    channel: CentionInput, *, can_push: bool = True, customer_channel: str | None = "pushy"
) -> AsyncIterator[tuple[str, AgentStandIn, PushyInput]]:
    """The channels registered like `rasa run` does, served on a free loopback port."""
    Sanic.test_mode = True
    app = Sanic(f"rasa_{uuid.uuid4().hex}")
    agent = AgentStandIn(Domain.load(DOMAIN_FILES))
    app.ctx.agent = agent
    pushy = PushyInput(can_push)
    register([channel, pushy], app, "/webhooks/")
    if customer_channel is not None:
        tracker = await agent.tracker_store.get_or_create_tracker("conversation-42")
        tracker.update(UserUttered("I need help", {"name": "greet", "confidence": 1.0},
                                   input_channel=customer_channel))
        await agent.tracker_store.save(tracker)
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.start_serving()
    try:
        yield f"http://127.0.0.1:{port}", agent, pushy
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()


async def post(url: str, data: bytes | str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        url, data=data, headers={"Content-Type": "application/vnd.api+json"}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.fixture
def attachments() -> Iterator[aioresponses]:
    """Cention's attachment endpoint; requests to the Sanic app itself pass through."""
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        for id_, name in {788: "invoice.pdf", 789: "label.txt", 790: "photo.png"}.items():
            mock.get(f"http://localhost/capi/json/c3_response_attachments/{id_}"
                     "?without_content=true", payload=attachment_reply(id_, name),
                     repeat=True)
        yield mock


@pytest.mark.parametrize("link_form", ["href", "string"])
async def test_the_answer_reaches_the_owning_conversation_with_intent_and_entities(
    state_url: str, attachments: aioresponses, link_form: str
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    channel = CentionInput.from_credentials(credentials(state_url))
    async with rasa_app(channel) as (base, agent, _):
        status, body = await post(base + WEBHOOK,
                                  json.dumps(sample_callback(link_form=link_form)))

    assert (status, body) == (200, {"status": "accepted"})
    [message] = agent.messages
    assert message.sender_id == "conversation-42"
    assert message.input_channel == "cention"
    assert message.parse_data is not None
    assert message.parse_data["intent"] == {"name": "cention_agent_answer", "confidence": 1.0}
    entities = {e["entity"]: e["value"] for e in message.parse_data["entities"]}
    assert entities["cention_errand_id"] == "2256"
    assert entities["cention_answer_text"].startswith("sadadad\n\noptionONE (http://localhost/")
    assert entities["cention_attachment_names"] == "invoice.pdf, label.txt, photo.png"
    assert message.metadata == {"cention": {"errand_id": "2256", "callback_id": "76",
                                            "subject": "Creating test errand via API"}}


async def test_the_text_is_rasas_own_intent_syntax_for_the_same_parse(
    state_url: str, attachments: aioresponses
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, agent, _
    ):
        await post(base + WEBHOOK, json.dumps(sample_callback()))
    [message] = agent.messages
    assert message.parse_data is not None and message.text is not None

    unpacked = YAMLStoryReader.unpack_regex_message(Message({"text": message.text}),
                                                    agent.domain)

    assert unpacked.get("intent")["name"] == "cention_agent_answer"
    assert {(e["entity"], e["value"]) for e in unpacked.get("entities")} == {
        (e["entity"], e["value"]) for e in message.parse_data["entities"]}


async def test_the_reply_is_pushed_through_the_customers_channel(
    state_url: str, attachments: aioresponses
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, agent, pushy
    ):
        await post(base + WEBHOOK, json.dumps(sample_callback()))
        # A second answer: the first one (from this channel) must not hide the customer's.
        second = sample_callback()
        second["data"]["id"] = "77"
        await post(base + WEBHOOK, json.dumps(second))

    assert len(pushy.sent) == 2
    recipient, text = pushy.sent[0]
    assert recipient == "conversation-42"
    assert text.startswith("Our support team has answered your message (reference 2256):\n\n"
                           "sadadad")
    assert text.endswith("sent to you by email: invoice.pdf, label.txt, photo.png")
    tracker = await agent.tracker_store.retrieve("conversation-42")
    assert tracker is not None
    assert tracker.get_slot("cention_answer_errand_id") == "2256"
    assert tracker.get_slot("cention_attachment_names") == "invoice.pdf, label.txt, photo.png"


async def test_without_a_push_channel_the_reply_is_held_for_the_next_message(
    state_url: str, attachments: aioresponses
) -> None:
    attachments.clear()  # no attachments this time: the answer's other wording
    document = sample_callback()
    document["included"][3]["relationships"]["attachments"]["data"] = []
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    channel = CentionInput.from_credentials(credentials(state_url))
    async with rasa_app(channel, can_push=False) as (base, agent, pushy):
        status, _ = await post(base + WEBHOOK, json.dumps(document))

    assert status == 200
    assert pushy.sent == []
    [message] = agent.messages
    assert isinstance(message.output_channel, CollectingOutputChannel)
    replies = await release(open_store(state_url), "conversation-42")
    assert replies == message.output_channel.messages  # held in the shared state, in order
    # Rasa splits a text at blank lines
    assert {reply["recipient_id"] for reply in replies} == {"conversation-42"}
    texts = [reply["text"] for reply in replies]
    assert texts[:2] == ["Our support team has answered your message (reference 2256):",
                         "sadadad"]
    assert texts[2].startswith("optionONE (http://localhost/errands/satisfaction/meter/")
    assert not any("attachments" in text for text in texts)


async def test_the_channel_recorded_with_the_errand_is_used_when_the_tracker_has_none(
    state_url: str, attachments: aioresponses
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    channel = CentionInput.from_credentials(credentials(state_url))
    async with rasa_app(channel, customer_channel=None) as (base, _, pushy):
        await post(base + WEBHOOK, json.dumps(sample_callback()))
    assert [recipient for recipient, _ in pushy.sent] == ["conversation-42"]


async def test_a_repeated_callback_reaches_the_conversation_once(
    state_url: str, attachments: aioresponses
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, agent, pushy
    ):
        first = await post(base + WEBHOOK, json.dumps(sample_callback()))
        again = await post(base + WEBHOOK, json.dumps(sample_callback(link_form="string")))
    assert (first, again) == ((200, {"status": "accepted"}), (200, {"status": "duplicate"}))
    assert len(agent.messages) == 1 and len(pushy.sent) == 1


async def test_a_failed_delivery_is_reported_and_can_be_retried(
    state_url: str, attachments: aioresponses
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, agent, pushy
    ):
        working = agent.handle_message

        async def broken(message: UserMessage) -> None:
            raise RuntimeError("tracker store down")

        agent.handle_message = broken  # type: ignore[method-assign]
        failed = await post(base + WEBHOOK, json.dumps(sample_callback()))
        agent.handle_message = working  # type: ignore[method-assign]
        retried = await post(base + WEBHOOK, json.dumps(sample_callback()))
    assert failed == (500, {"status": "delivery_failed"})
    assert retried == (200, {"status": "accepted"})
    assert [recipient for recipient, _ in pushy.sent] == ["conversation-42"]


@pytest.mark.parametrize(("payload", "status"), [
    (json.dumps(sample_callback(secret="654321")), 401),
    (json.dumps(sample_callback(secret=None)), 401),
    ("{not json", 401),
    (json.dumps({"data": {"type": "c3_callback_answer_errands"},
                 "meta": {"api_secret": SECRET}}), 400),
    (json.dumps({**sample_callback(), "data": None}), 400),
])
async def test_refused_callbacks_never_reach_a_conversation(
    state_url: str, attachments: aioresponses, payload: str, status: int
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, agent, _
    ):
        got, body = await post(base + WEBHOOK, payload)
    assert got == status
    assert body["status"] in ("unauthorized", "malformed")
    assert agent.messages == []


async def test_an_oversized_body_is_refused(state_url: str) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    channel = CentionInput.from_credentials(credentials(state_url, max_body_bytes=2000))
    async with rasa_app(channel) as (base, agent, _):
        status, body = await post(base + WEBHOOK, json.dumps(sample_callback()))
    assert (status, body) == (413, {"status": "too_large"})
    assert agent.messages == []


async def test_an_unknown_errand_is_acknowledged(state_url: str) -> None:
    async with rasa_app(CentionInput.from_credentials(credentials(state_url))) as (
        base, agent, _
    ):
        status, body = await post(base + WEBHOOK, json.dumps(sample_callback()))
    assert (status, body) == (200, {"status": "unknown_errand"})
    assert agent.messages == []


async def test_a_foreign_attachment_host_is_refused_and_the_answer_still_arrives(
    state_url: str,
) -> None:
    await record_owner(state_url, "2256", "conversation-42", "pushy")
    channel = CentionInput.from_credentials(credentials(state_url))
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        async with rasa_app(channel) as (base, agent, _):
            status, _ = await post(base + WEBHOOK, json.dumps(
                sample_callback(base="http://attacker.example.net")))
        assert not [key for key in mock.requests if key[1].host != "127.0.0.1"]
    assert status == 200
    [message] = agent.messages
    assert message.parse_data is not None
    entities = {e["entity"]: e["value"] for e in message.parse_data["entities"]}
    assert entities["cention_attachment_names"] == ""


def test_the_secret_is_required(state_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CENTION_CALLBACK_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="api_secret"):
        CentionInput.from_credentials({"state_url": state_url})
    with pytest.raises(ConfigurationError, match="api_secret"):
        CentionInput.from_credentials(None)


def test_settings_fall_back_to_the_environment(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CENTION_CALLBACK_SECRET", "from-env-secret")
    monkeypatch.setenv("CENTION_BASE_URL", "https://cention.example.com/s/demo")
    monkeypatch.setenv("CENTION_TOKEN", "env-jwt")
    monkeypatch.setenv("STATE_URL", state_url)
    channel = CentionInput.from_credentials({})
    assert channel.handler.api_secret == "from-env-secret"
    assert channel.handler.fetcher.token == "env-jwt"
    assert channel.handler.fetcher.allowed("https://cention.example.com/capi/json/x/1")
    assert state_url.removeprefix("sqlite:///") in channel.handler.registry.store.description


def test_a_bad_body_limit_is_a_configuration_error(state_url: str) -> None:
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        CentionInput.from_credentials(credentials(state_url, max_body_bytes="lots"))


def test_rasa_loads_the_channel_from_credentials_by_class_path(
    state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rasa.core.run import create_http_input_channels

    monkeypatch.setenv("TEST_CENTION_SECRET", "yaml-secret")
    path = tmp_path / "credentials.yml"
    path.write_text("rasa_service_desk.connectors.cention.CentionInput:\n"
                    "  api_secret: ${TEST_CENTION_SECRET}\n"
                    f"  state_url: {state_url}\n")
    [channel] = create_http_input_channels(None, str(path))
    assert isinstance(channel, CentionInput)
    assert channel.name() == "cention"
    assert channel.handler.api_secret == "yaml-secret"


def test_the_whole_domain_folder_loads_with_the_connectors_part() -> None:
    if not os.path.isdir(ROOT / "domain"):
        pytest.fail("domain folder missing")
    domain = Domain.load(str(ROOT / "domain"))
    assert "cention_agent_answer" in domain.intents
    assert {"cention_errand_id", "cention_answer_text",
            "cention_attachment_names"} <= set(domain.entities)
    assert "utter_cention_agent_answer" in domain.responses


# -- against the Cention simulator ------------------------------------------------------

SANDBOX_ERRAND_TOKEN = "sandbox-cention-errand-jwt"  # the simulator's demo JWT (not secret)


@pytest.fixture(scope="module")
def cention_sandbox() -> Iterator[str]:
    """The simulators in the project's main environment (they need pydantic 2)."""
    from tests.support.servers import MAIN_PYTHON, running_sandbox

    if not MAIN_PYTHON.exists():
        pytest.fail(f"{MAIN_PYTHON} is missing: build the main environment first (make unit)")
    with running_sandbox(python=str(MAIN_PYTHON)) as sandbox:
        yield sandbox.vendor_url("cention")


async def test_an_errand_answered_in_the_simulator_arrives_in_its_conversation(
    cention_sandbox: str, state_url: str
) -> None:
    workspace = f"{cention_sandbox}/s/demo"
    async with aiohttp.ClientSession() as session, session.post(
        f"{workspace}/capi/json/c3_new_errands",
        data=json.dumps({"data": {"type": "c3_new_errands", "attributes": {"msg": {
            "message_id": f"conversation-42-{uuid.uuid4().hex}", "name": "Ada",
            "from": "ada@example.com", "subject": "Where is my order?",
            "body": "Customer: where is my order?", "html_body": "",
            "attachments": []}}}}),
        headers={"Content-Type": "application/vnd.api+json",
                 "Accept": "application/vnd.api+json",
                 "Authorization": f"Bearer {SANDBOX_ERRAND_TOKEN}"},
    ) as resp:
        assert resp.status == 201, await resp.text()
        errand_id = (await resp.json(content_type=None))["data"]["id"]
    # What the errand action records; a second errand of another conversation too.
    await record_owner(state_url, errand_id, "conversation-42", "pushy")
    await record_owner(state_url, "1", "someone-else", "pushy")

    channel = CentionInput.from_credentials({
        "api_secret": SECRET, "base_url": workspace,
        "attachment_token": SANDBOX_ERRAND_TOKEN, "state_url": state_url,
    })
    answer = {
        "errand_id": errand_id, "api_secret": SECRET,
        "html_body": "<p>Your order left today. <a href='https://track.example.com/1'>"
                     "Track it</a></p>",
        "attachments": [
            {"name": "label.txt", "content_type": "text/plain", "content": "eA=="},
            {"name": "invoice.txt", "content_type": "text/plain", "content": "eQ=="},
        ],
    }
    async with (
        rasa_app(channel) as (base, agent, pushy),
        aiohttp.ClientSession() as session,
        session.post(f"{cention_sandbox}/_sandbox/answer",
                     json={**answer, "callback_url": base + WEBHOOK}) as resp,
    ):
        result = await resp.json()

    assert result["status"] == 200, result
    [message] = agent.messages
    assert message.sender_id == "conversation-42"
    assert message.parse_data is not None
    entities = {e["entity"]: e["value"] for e in message.parse_data["entities"]}
    assert entities == {
        "cention_errand_id": errand_id,
        "cention_answer_text": "Your order left today. Track it (https://track.example.com/1)",
        "cention_attachment_names": "label.txt, invoice.txt",
        "cention_answer_kind": "text_and_files",
    }
    [(recipient, text)] = pushy.sent
    assert recipient == "conversation-42"
    assert "Track it (https://track.example.com/1)" in text
    assert text.endswith("label.txt, invoice.txt")

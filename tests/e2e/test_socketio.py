"""Web chat over socket.io (issue 19), on real Rasa 3.6.21 through a real python-socketio
client (the one `.venv-rasa` ships, 5.9.0).

Three Rasa instances, started side by side once for this module:

- `persistent`: the drop-in `rasa_service_desk.connectors.socketio.SocketIOInput` with
  `session_persistence: true` in the namespace `/chat` (Rasa's own channel sends bot
  messages to `/` whatever the namespace; the default namespace is covered by
  test_topology.py), the Cention connector and the drop-in REST channel;
- `stateless`: the drop-in with `session_persistence: false`;
- `stock`: Rasa's own `socketio:` channel with `session_persistence: true` next to the Cention
  connector: with the pinned python-socketio the fail-loud check must not fire.

All share the session's action server and its SQLite state file (one host).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.bot import Conversation, RasaServer, is_response
from tests.e2e.deploy import (
    RasaDeployment,
    answers_in,
    channel_credentials,
    create_errand,
    endpoints_for,
    expect_rest,
    fire_answer,
    start_all,
    stop_all,
)
from tests.e2e.socket_customer import SocketCustomer
from tests.support.servers import ActionServer, Sandbox

pytestmark = pytest.mark.e2e

ANSWER = "utter_cention_agent_answer"
NAMESPACE = "/chat"


@pytest.fixture(scope="module")
def deployments(rasa_bin: Path, rasa_model: Path, bot_action_server: ActionServer,
                sandbox: Sandbox, errand_registry: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RasaServer]]:
    state = {"STATE_URL": f"sqlite:///{errand_registry}"}
    configs = {
        "persistent": channel_credentials(
            sandbox, socketio={"session_persistence": True, "namespace": NAMESPACE}),
        "stateless": channel_credentials(sandbox, socketio={"session_persistence": False}),
        "stock": channel_credentials(sandbox, stock_socketio={"session_persistence": True}),
    }
    rasas = {name: RasaDeployment(
        rasa_bin, rasa_model, tmp_path_factory.mktemp(f"rasa-{name}"), credentials,
        endpoints_for(bot_action_server.url), state,
        peers={"action server": bot_action_server.process})
        for name, credentials in configs.items()}
    servers = start_all(list(rasas.values()))
    try:
        yield dict(zip(rasas, servers, strict=True))
    finally:
        stop_all(list(rasas.values()))


@pytest.fixture
def persistent(deployments: dict[str, RasaServer]) -> RasaServer:
    return deployments["persistent"]


@pytest.fixture
def customers(persistent: RasaServer) -> Iterator[list[SocketCustomer]]:
    """Open sockets on the persistent instance, closed after the test: `customers.append`."""
    opened: list[SocketCustomer] = []
    yield opened
    for customer in opened:
        customer.close()


def open_socket(rasa: RasaServer, opened: list[SocketCustomer],
                transports: str = "") -> SocketCustomer:
    """A socket on the persistent instance's namespace (long-polling upgraded to a
    websocket, or only `transports`)."""
    customer = SocketCustomer(rasa.url, namespace=NAMESPACE, transports=transports,
                              log_tails=rasa.log_tails)
    opened.append(customer)
    return customer


def test_ordinary_replies_arrive(persistent: RasaServer,
                                 customers: list[SocketCustomer]) -> None:
    web = open_socket(persistent, customers)
    session = web.connect(uuid.uuid4().hex)
    web.expect("hi", "utter_greet")
    web.expect("thanks", "utter_you_are_welcome")
    web.quiet(0.5)
    events = Conversation(persistent, session).tracker()["events"]
    assert [e["input_channel"] for e in events if e["event"] == "user"] == ["socketio"] * 2


def test_two_answers_back_to_back_reach_every_socket_of_the_session_once_in_order(
    persistent: RasaServer, sandbox: Sandbox, customers: list[SocketCustomer]
) -> None:
    web = open_socket(persistent, customers)
    session = web.connect(uuid.uuid4().hex)
    errand_id = create_errand(web.expect)
    # A second tab of the same session, on a websocket from the start.
    tab = open_socket(persistent, customers, transports="websocket")
    assert tab.connect(session) == session
    tab.quiet(0.3)

    first, second = "Your refund was approved.", "It reaches your account within 3 days."
    for body in (first, second):
        fired = fire_answer(sandbox, persistent.url, errand_id, body)
        assert fired["status"] == 200 and "accepted" in fired["body"], fired

    for socket in (web, tab):
        texts = socket.receive(ANSWER, ANSWER)
        assert answers_in(texts, first) == 1 and answers_in(texts, second) == 1, texts
        assert texts.index(next(t for t in texts if first in t)) < texts.index(
            next(t for t in texts if second in t)), texts
    # Nothing more, and nothing held for later: the next reply is just the reply.
    tab.quiet(0.5)
    web.expect("thanks", "utter_you_are_welcome")
    tab.receive("utter_you_are_welcome")
    web.quiet(0.5)
    delivered = [t for t in Conversation(persistent, session).bot_texts()
                 if is_response(t, ANSWER)]
    assert len(delivered) == 2


def test_reconnect_with_the_same_session_keeps_the_conversation(
    persistent: RasaServer, customers: list[SocketCustomer]
) -> None:
    web = open_socket(persistent, customers)
    session = web.connect(uuid.uuid4().hex)
    web.expect("I want to talk to support", "utter_ask_cention_errand_form_customer_name")
    web.expect("Ada Lovelace", "utter_ask_cention_errand_form_customer_email")
    web.disconnect()

    # A page reload: a new socket asks for the same session.
    web.connect(session)
    assert web.session_id == session
    web.expect("ada@example.com", "utter_ask_cention_errand_subject")
    slots = Conversation(persistent, session).slots()
    assert slots["customer_name"] == "Ada Lovelace", slots
    assert slots["customer_email"] == "ada@example.com", slots


def test_answer_while_no_socket_is_connected_comes_at_reconnect_once(
    persistent: RasaServer, sandbox: Sandbox, customers: list[SocketCustomer]
) -> None:
    web = open_socket(persistent, customers)
    session = web.connect(uuid.uuid4().hex)
    errand_id = create_errand(web.expect)
    web.disconnect()

    body = "Your replacement card is on its way."
    fired = fire_answer(sandbox, persistent.url, errand_id, body)
    assert fired["status"] == 200 and "accepted" in fired["body"], fired

    web.connect(session)  # session_request: the held answer follows session_confirm
    texts = web.receive(ANSWER)
    assert answers_in(texts, body) == 1, texts
    web.expect("thank you", "utter_you_are_welcome")
    web.quiet(0.5)
    # A second reconnect finds nothing held any more.
    web.disconnect()
    web.connect(session)
    web.quiet(0.5)


def test_answer_held_for_a_rest_conversation_comes_with_the_next_socket_message(
    persistent: RasaServer, sandbox: Sandbox, customers: list[SocketCustomer]
) -> None:
    """The customer's latest channel was REST (it cannot push), so the answer is held; when
    the conversation goes on over socket.io, it comes first with the next reply, once."""
    chat = persistent.conversation()
    errand_id = create_errand(lambda text, *rs: expect_rest(chat, text, *rs))
    web = open_socket(persistent, customers)
    web.connect(chat.sender)
    web.quiet(0.3)

    body = "We have sent you a new invoice."
    fired = fire_answer(sandbox, persistent.url, errand_id, body)
    assert fired["status"] == 200 and "accepted" in fired["body"], fired
    web.quiet(0.5)  # REST was the latest channel: held, not pushed

    texts = web.expect("thanks", ANSWER, "utter_you_are_welcome")
    assert answers_in(texts, body) == 1, texts
    web.quiet(0.5)
    assert not answers_in(chat.say("thanks a lot"), body)


def test_ordinary_replies_without_session_persistence(
    deployments: dict[str, RasaServer]
) -> None:
    rasa = deployments["stateless"]
    with SocketCustomer(rasa.url, session_persistence=False, log_tails=rasa.log_tails) as web:
        sender = web.connect()
        web.expect("hi", "utter_greet")
        web.expect("thanks", "utter_you_are_welcome")
        web.quiet(0.5)
    # Without persistence the conversation is the socket's.
    assert Conversation(rasa, sender).bot_texts()


def test_stock_socketio_channel_next_to_the_cention_connector_starts_and_replies(
    deployments: dict[str, RasaServer]
) -> None:
    """python-socketio 5.9.0 (the pinned one) works with Rasa's own channel: the fail-loud
    check must not stop Rasa, and replies reach the socket."""
    rasa = deployments["stock"]
    assert "cannot deliver any bot message" not in rasa.process.output()
    with SocketCustomer(rasa.url, log_tails=rasa.log_tails) as web:
        session = web.connect(uuid.uuid4().hex)
        web.expect("hi", "utter_greet")
        web.quiet(0.5)
    assert Conversation(rasa, session).bot_texts()

"""A ticket filed while Benti is down, on real Rasa 3.6.21: the customer hears that it is
saved, and when Benti is back the outbox files it and the customer gets its reference in
the conversation, without asking. The simulator holds one ticket.

- socket.io: Rasa pushes the reference to the customer's socket (the outbox triggers
  `benti_submission_update` with `output_channel=latest`), nothing typed; a customer who
  closed the tab gets it when the session is opened again;
- REST: Rasa cannot push; the reference is held and comes first in the reply to the
  customer's next message;
- a form in progress: the reference arrives while the errand form waits for its subject;
  the form asks again, and the customer's next answer fills it.

One deployment for the module: its own simulators (Benti's outage is switched off by
resetting it), the action server with the outbox pointed at Rasa (`OUTBOX_RASA_URL`), short
delivery waits (`OUTBOX_POLL_SECONDS=0.5`, `OUTBOX_MAX_BACKOFF_SECONDS=2`), and `rasa run
--enable-api` with the drop-in REST and socket.io channels; the two share the state (one
SQLite file, `STATE_URL`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.bot import Conversation, RasaServer, is_response, slot_value
from tests.e2e.deploy import (
    RasaDeployment,
    channel_credentials,
    endpoints_for,
    expect_rest,
    matches_responses,
)
from tests.e2e.socket_customer import SocketCustomer
from tests.support.servers import (
    ActionServer,
    Sandbox,
    free_port,
    running_action_server,
    running_sandbox,
)

pytestmark = pytest.mark.e2e

CREATED = "utter_benti_ticket_created"
QUEUED = "utter_benti_ticket_queued"
OUTAGE_SECONDS = 10.0
#: Benti back: the worker's next attempt is at most OUTBOX_MAX_BACKOFF_SECONDS (2 s) away,
#: then Rasa runs the update; generous for a busy machine.
ANNOUNCE_TIMEOUT = 60.0
BENTI_DOWN = {"status": 503, "path": "/tickets", "method": "POST", "times": 100_000}

Say = Callable[..., list[str]]


@dataclass
class OutboxBot:
    rasa: RasaServer
    sandbox: Sandbox
    action_server: ActionServer


@pytest.fixture(scope="module")
def bot(rasa_bin: Path, rasa_model: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboxBot]:
    host = tmp_path_factory.mktemp("outbox")
    state = {"STATE_URL": f"sqlite:///{host / 'state.sqlite3'}"}
    rasa_port = free_port()
    (host / "action-server").mkdir()
    with running_sandbox() as sandbox, running_action_server({
        "SANDBOX": "1", "SANDBOX_URL": sandbox.url, **state,
        "OUTBOX_RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "OUTBOX_POLL_SECONDS": "0.5", "OUTBOX_MAX_BACKOFF_SECONDS": "2",
    }, cwd=host / "action-server") as server:
        deployment = RasaDeployment(
            rasa_bin, rasa_model, host / "rasa",
            channel_credentials(sandbox, socketio={"session_persistence": True}),
            endpoints_for(server.url), state, port=rasa_port,
            peers={"action server": server.process})
        deployment.start()
        try:
            yield OutboxBot(deployment.wait_ready(), sandbox, server)
        finally:
            deployment.stop()


@pytest.fixture
def web(bot: OutboxBot) -> Iterator[SocketCustomer]:
    """A web-chat customer on socket.io with a session of their own."""
    with SocketCustomer(bot.rasa.url, log_tails=bot.rasa.log_tails) as customer:
        customer.connect(uuid.uuid4().hex)
        yield customer


def ticket_posts(sandbox: Sandbox) -> int:
    """How many times the simulator was asked to create a ticket."""
    return sum(n for route, n in sandbox.calls("benti").items()
               if route.startswith("POST") and route.endswith("/ticketing/v1/tickets"))


def tickets_titled(sandbox: Sandbox, title: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.state("benti")["tickets"] if t.get("title") == title]


def queue_ticket(say: Say, title: str) -> None:
    """Fill the ticket form while Benti is down: the ticket is saved, not failed."""
    say("I'd like to open a support ticket", "utter_ask_benti_ticket_form_customer_name")
    say("Ada Lovelace", "utter_ask_benti_ticket_form_customer_email")
    say("ada@example.com", "utter_ask_benti_ticket_title")
    say(title, "utter_ask_benti_ticket_description")
    say("The router blinks red and nothing loads.", QUEUED)


def benti_back_after_outage(sandbox: Sandbox, down_since: float) -> None:
    """End the outage OUTAGE_SECONDS after it began; meanwhile the worker kept trying."""
    time.sleep(max(0.0, down_since + OUTAGE_SECONDS - time.monotonic()))
    tried = ticket_posts(sandbox)
    assert tried >= 2, f"Benti was asked {tried} time(s) during the outage: no retry"
    sandbox.reset("benti")  # the faults go, and so do the counters


def check_filed_once(bot: OutboxBot, sender: str, title: str, announced: str) -> None:
    """The announced reference is the one ticket of that title, and Rasa holds its id."""
    [ticket] = tickets_titled(bot.sandbox, title)
    assert slot_value(announced, CREATED, "reference") == str(ticket["id"])
    assert ticket_posts(bot.sandbox) == 1  # since Benti came back: sent once
    slots = Conversation(bot.rasa, sender).slots()
    assert slots["benti_ticket_id"] == ticket["full_uuid"], slots
    assert slots["benti_ticket_title"] is None


def test_socketio_customer_gets_the_reference_pushed_when_benti_is_back(
        bot: OutboxBot, web: SocketCustomer) -> None:
    title = f"Router down {uuid.uuid4().hex[:6]}"
    web.expect("hello", "utter_greet")
    bot.sandbox.inject("benti", BENTI_DOWN)
    down_since = time.monotonic()
    queue_ticket(web.expect, title)
    assert tickets_titled(bot.sandbox, title) == []

    benti_back_after_outage(bot.sandbox, down_since)
    # Nothing typed: Rasa pushes the announcement to the socket.
    [announced] = web.receive(CREATED, timeout=ANNOUNCE_TIMEOUT)
    check_filed_once(bot, web.sender_id, title, announced)
    web.quiet(1.0)
    web.expect("thanks", "utter_you_are_welcome")  # nothing was held for later


def wait_announced(bot: OutboxBot, sender: str) -> None:
    """Until Rasa ran the update in the conversation (its reply is in the tracker)."""
    deadline = time.monotonic() + ANNOUNCE_TIMEOUT
    while not any(is_response(t, CREATED) for t in Conversation(bot.rasa, sender).bot_texts()):
        assert time.monotonic() < deadline, f"no announcement\n{bot.rasa.log_tails()}"
        time.sleep(0.5)


def test_socketio_customer_who_left_gets_the_reference_on_coming_back(
        bot: OutboxBot, web: SocketCustomer) -> None:
    """The customer closed the tab after hearing the ticket is saved: the announcement
    reaches no socket, so it is held, and comes when the session is opened again, once."""
    title = f"Modem reboots {uuid.uuid4().hex[:6]}"
    web.expect("hello", "utter_greet")
    bot.sandbox.inject("benti", BENTI_DOWN)
    queue_ticket(web.expect, title)
    web.disconnect()
    bot.sandbox.reset("benti")
    wait_announced(bot, web.sender_id)
    web.quiet(0.5)  # nothing reached the closed socket

    web.connect(web.sender_id)
    [announced] = web.receive(CREATED)
    check_filed_once(bot, web.sender_id, title, announced)
    web.quiet(1.0)
    web.expect("thanks", "utter_you_are_welcome")


def test_rest_customer_gets_the_reference_first_in_the_next_reply(bot: OutboxBot) -> None:
    chat = bot.rasa.conversation()
    title = f"No dial tone {uuid.uuid4().hex[:6]}"
    chat.expect("hello", "utter_greet")
    bot.sandbox.inject("benti", BENTI_DOWN)
    down_since = time.monotonic()
    queue_ticket(lambda text, *rs: expect_rest(chat, text, *rs), title)
    assert tickets_titled(bot.sandbox, title) == []

    benti_back_after_outage(bot.sandbox, down_since)
    # Rasa ran the update (its reply is in the tracker) but REST cannot push: it is held.
    wait_announced(bot, chat.sender)
    texts = chat.say("thanks")
    assert matches_responses(texts, [CREATED, "utter_you_are_welcome"]), texts
    check_filed_once(bot, chat.sender, title, texts[0])
    chat.expect("thanks again", "utter_you_are_welcome")  # held once, shown once


def test_announcement_during_another_form_is_shown_and_the_form_goes_on(
        bot: OutboxBot, web: SocketCustomer) -> None:
    title = f"Slow wifi {uuid.uuid4().hex[:6]}"
    web.expect("hello", "utter_greet")
    bot.sandbox.inject("benti", BENTI_DOWN)
    queue_ticket(web.expect, title)
    # The customer goes on to ask the support team something: the errand form knows their
    # name and email from the ticket and asks for the subject.
    web.expect("I want to talk to support", "utter_ask_cention_errand_subject")
    bot.sandbox.reset("benti")

    [announced, _] = web.receive(CREATED, "utter_ask_cention_errand_subject",
                                 timeout=ANNOUNCE_TIMEOUT)
    check_filed_once(bot, web.sender_id, title, announced)
    tracker = Conversation(bot.rasa, web.sender_id).tracker()
    assert (tracker.get("active_loop") or {}).get("name") == "cention_errand_form", tracker
    assert tracker["slots"]["cention_errand_subject"] is None  # the intent was no answer

    subject = "Can I move my contract to my new address?"
    [created] = web.expect(subject, "utter_cention_errand_created")
    errand_id = slot_value(created, "utter_cention_errand_created", "errand_id")
    errands = [e for e in bot.sandbox.state("cention")["errands"]
               if str(e.get("id")) == errand_id]
    assert len(errands) == 1 and subject in str(errands[0]), errands
    web.quiet(0.5)

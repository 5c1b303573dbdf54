"""Deployment topologies (issue 11): what the action server writes, Rasa's connectors read,
through the shared state only, on real Rasa 3.6.21, real action servers and the simulators.

- `redis`: Rasa and two action-server replicas, each in its own empty working directory,
  all with `STATE_URL=redis://...` (a real redis-server). Rasa reaches the replicas through
  a load balancer (`ActionProxy`) the test switches from replica 1 to replica 2.
- `sqlite`: the default on one host: Rasa and one action server share
  `STATE_URL=sqlite:///<one file>`.

Both Rasa instances have the Cention connector, the drop-in REST channel and the drop-in
socket.io channel (`session_persistence: true`), and the shipped SQL tracker store (a SQLite
file in Rasa's own working directory). They are started side by side once for the module.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rasa_service_desk.clients.cention.errand_registry import ErrandOwner, ErrandRegistry
from rasa_service_desk.state import open_store
from tests.e2e.bot import Conversation, RasaServer
from tests.e2e.deploy import (
    ActionProxy,
    RasaDeployment,
    answers_in,
    channel_credentials,
    create_errand,
    endpoints_for,
    expect_rest,
    fire_answer,
    repost,
    start_all,
    stop_all,
)
from tests.e2e.socket_customer import SocketCustomer
from tests.support.redis import RedisServer, running_redis
from tests.support.servers import ActionServer, Sandbox, running_action_server

pytestmark = pytest.mark.e2e

ANSWER = "utter_cention_agent_answer"
WELCOME = "utter_you_are_welcome"
#: The Rasa working directory holds its own files and the SQL tracker store, nothing else.
RASA_FILES = {"credentials.yml", "endpoints.yml", "rasa_trackers.sqlite3"}


@dataclass
class Stack:
    """One deployment: Rasa, its action server(s), where the shared state lives."""

    rasa: RasaServer
    deployment: RasaDeployment
    state_url: str
    replicas: list[ActionServer]
    replica_dirs: list[Path]
    proxy: ActionProxy | None = None
    redis: RedisServer | None = None
    sockets: list[SocketCustomer] = field(default_factory=list)

    def socket(self) -> SocketCustomer:
        customer = SocketCustomer(self.rasa.url, log_tails=self.rasa.log_tails)
        self.sockets.append(customer)
        return customer


@pytest.fixture(scope="module")
def stacks(rasa_bin: Path, rasa_model: Path, sandbox: Sandbox,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    with ExitStack() as stack:
        redis = stack.enter_context(running_redis())
        base = {"SANDBOX": "1", "SANDBOX_URL": sandbox.url}

        # Redis: two replicas, nothing shared on disk.
        redis_dirs = [tmp_path_factory.mktemp(f"replica-{n}") for n in (1, 2)]
        replicas = [stack.enter_context(running_action_server(
            {**base, "STATE_URL": redis.url}, cwd=directory)) for directory in redis_dirs]
        proxy = ActionProxy(replicas[0].url)
        stack.callback(proxy.close)
        redis_rasa = RasaDeployment(
            rasa_bin, rasa_model, tmp_path_factory.mktemp("rasa-redis"),
            channel_credentials(sandbox, socketio={"session_persistence": True}),
            endpoints_for(proxy.url), {"STATE_URL": redis.url},
            peers={f"replica {n}": r.process for n, r in enumerate(replicas, 1)})

        # SQLite: one host, one state file for Rasa and the action server.
        host = tmp_path_factory.mktemp("one-host")
        sqlite_url = f"sqlite:///{host / 'state.sqlite3'}"
        sqlite_dir = host / "action-server"
        sqlite_dir.mkdir()
        action_server = stack.enter_context(running_action_server(
            {**base, "STATE_URL": sqlite_url}, cwd=sqlite_dir))
        sqlite_rasa = RasaDeployment(
            rasa_bin, rasa_model, host / "rasa",
            channel_credentials(sandbox, socketio={"session_persistence": True}),
            endpoints_for(action_server.url), {"STATE_URL": sqlite_url},
            peers={"action server": action_server.process})

        deployments = [redis_rasa, sqlite_rasa]
        redis_server, sqlite_server = start_all(deployments)
        stack.callback(stop_all, deployments)
        stacks = {
            "redis": Stack(redis_server, redis_rasa, redis.url, replicas, redis_dirs,
                           proxy, redis),
            "sqlite": Stack(sqlite_server, sqlite_rasa, sqlite_url, [action_server],
                            [sqlite_dir]),
        }
        yield stacks
        for each in stacks.values():
            for customer in each.sockets:
                customer.close()


# -- the flow both topologies share ------------------------------------------------------


def rest_errand(rasa: RasaServer) -> tuple[Conversation, str]:
    chat = rasa.conversation()
    return chat, create_errand(lambda text, *responses: expect_rest(chat, text, *responses))


def socket_errand(stack: Stack) -> tuple[SocketCustomer, str]:
    web = stack.socket()
    web.connect(uuid.uuid4().hex)
    return web, create_errand(web.expect)


def owners(state_url: str, *errand_ids: str) -> list[ErrandOwner | None]:
    """Read the errand owners straight from the shared state, as the package does."""
    async def read() -> list[ErrandOwner | None]:
        store = open_store(state_url)
        try:
            registry = ErrandRegistry(store)
            return [await registry.owner(errand_id) for errand_id in errand_ids]
        finally:
            await store.close()

    return asyncio.run(read())


def answer_rest_customer_twice(stack: Stack, sandbox: Sandbox, chat: Conversation,
                               errand_id: str, body: str) -> None:
    """Cention calls twice with the same callback: the REST customer sees the answer once,
    first in the reply to their next message."""
    fired = fire_answer(sandbox, stack.rasa.url, errand_id, body)
    assert fired["status"] == 200 and '"accepted"' in fired["body"], fired
    again = repost(stack.rasa.url, fired["payload"])
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}, again.text

    texts = expect_rest(chat, "thank you", ANSWER, WELCOME)
    assert answers_in(texts, body) == 1 and body in texts[-2], texts
    texts = expect_rest(chat, "thanks a lot", WELCOME)
    assert answers_in(chat.bot_texts(), body) == 1


def answer_socket_customer_twice(stack: Stack, sandbox: Sandbox, web: SocketCustomer,
                                 errand_id: str, body: str) -> None:
    """Cention calls twice with the same callback: the web-chat customer sees the answer at
    once (pushed), and never again."""
    fired = fire_answer(sandbox, stack.rasa.url, errand_id, body)
    assert fired["status"] == 200 and '"accepted"' in fired["body"], fired
    texts = web.receive(ANSWER)
    assert answers_in(texts, body) == 1, texts
    again = repost(stack.rasa.url, fired["payload"])
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}, again.text
    web.quiet(0.5)
    web.expect("thanks", WELCOME)
    web.quiet(0.5)
    assert answers_in(Conversation(stack.rasa, web.sender_id).bot_texts(), body) == 1


# -- the tests ---------------------------------------------------------------------------


def test_replicas_share_errand_owners_through_redis_and_a_repeated_callback_counts_once(
    stacks: dict[str, Stack], sandbox: Sandbox
) -> None:
    stack = stacks["redis"]
    assert stack.proxy is not None
    first, second = stack.replicas

    # Replica 1 creates two errands: one for a REST customer, one for a web-chat customer.
    chat, rest_errand_id = rest_errand(stack.rasa)
    web, web_errand_id = socket_errand(stack)
    assert set(stack.proxy.hits) == {first.url}

    # Replica 1 goes away; the load balancer sends everything to replica 2, which creates
    # a third customer's errand.
    first.process.stop()
    stack.proxy.route_to(second.url)
    other, other_errand_id = rest_errand(stack.rasa)
    assert stack.proxy.hits.get(second.url), stack.proxy.hits

    # Both replicas wrote the owners to Redis; nothing went through a file.
    found = owners(stack.state_url, rest_errand_id, web_errand_id, other_errand_id)
    assert [(o.sender_id, o.channel) if o else None for o in found] == [
        (chat.sender, "rest"), (web.sender_id, "socketio"), (other.sender, "rest")]
    for directory in stack.replica_dirs:
        assert not list(directory.iterdir()), f"{directory}: {list(directory.iterdir())}"
    assert {p.name for p in stack.deployment.workdir.iterdir()} <= RASA_FILES

    # Rasa's connector, in another process with no shared disk, finds each conversation.
    answer_rest_customer_twice(stack, sandbox, chat, rest_errand_id,
                               "We have corrected the VAT number on your invoice.")
    answer_socket_customer_twice(stack, sandbox, web, web_errand_id,
                                 "Your refund was approved today.")
    answer_rest_customer_twice(stack, sandbox, other, other_errand_id,
                               "Replica two's errand is answered too.")


def test_one_host_on_the_sqlite_default(stacks: dict[str, Stack], sandbox: Sandbox) -> None:
    stack = stacks["sqlite"]
    chat, rest_errand_id = rest_errand(stack.rasa)
    web, web_errand_id = socket_errand(stack)
    found = owners(stack.state_url, rest_errand_id, web_errand_id)
    assert [(o.sender_id, o.channel) if o else None for o in found] == [
        (chat.sender, "rest"), (web.sender_id, "socketio")]

    answer_rest_customer_twice(stack, sandbox, chat, rest_errand_id,
                               "Your invoice was sent again.")
    answer_socket_customer_twice(stack, sandbox, web, web_errand_id,
                                 "Your parcel left our warehouse.")

    # The web-chat customer closes the page; the next answer waits for them and comes when
    # the page asks for the session again, once.
    web.disconnect()
    later = "It arrives on Tuesday."
    fired = fire_answer(sandbox, stack.rasa.url, web_errand_id, later)
    assert fired["status"] == 200 and '"accepted"' in fired["body"], fired
    web.connect(web.sender_id)
    assert answers_in(web.receive(ANSWER), later) == 1
    web.expect("thanks", WELCOME)
    web.quiet(0.5)


def test_redis_down_at_callback_time_is_retried_and_delivered_once(
    stacks: dict[str, Stack], sandbox: Sandbox
) -> None:
    stack = stacks["redis"]
    assert stack.redis is not None
    chat, errand_id = rest_errand(stack.rasa)
    body = "The delivery address is updated."

    stack.redis.stop()
    try:
        fired = fire_answer(sandbox, stack.rasa.url, errand_id, body)
        # Not acknowledged, so Cention keeps the answer and calls again.
        assert fired["status"] == 503, fired
        retry = repost(stack.rasa.url, fired["payload"])
        assert retry.status_code == 503, retry.text
        assert retry.headers.get("Retry-After"), retry.headers
        # The customer still gets replies meanwhile (nothing held can be read).
        expect_rest(chat, "thanks", WELCOME)
    finally:
        stack.redis.start()  # same port, same data

    retry = repost(stack.rasa.url, fired["payload"])
    assert retry.status_code == 200 and retry.json() == {"status": "accepted"}, retry.text
    texts = expect_rest(chat, "thank you", ANSWER, WELCOME)
    assert answers_in(texts, body) == 1, texts
    again = repost(stack.rasa.url, fired["payload"])
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}, again.text
    expect_rest(chat, "thanks a lot", WELCOME)
    assert answers_in(chat.bot_texts(), body) == 1


def test_conversations_survive_a_restart_of_rasa(stacks: dict[str, Stack],
                                                 sandbox: Sandbox) -> None:
    stack = stacks["sqlite"]
    chat, errand_id = rest_errand(stack.rasa)
    before = "Your first question is answered."
    fired = fire_answer(sandbox, stack.rasa.url, errand_id, before)  # held for the customer
    assert fired["status"] == 200, fired

    stack.deployment.restart()  # same working dir (tracker store), same STATE_URL

    after = "And so is your second one."
    fired = fire_answer(sandbox, stack.rasa.url, errand_id, after)
    assert fired["status"] == 200 and '"accepted"' in fired["body"], fired
    texts = expect_rest(chat, "thank you", ANSWER, ANSWER, WELCOME)
    assert answers_in(texts, before) == 1 and answers_in(texts, after) == 1, texts
    assert texts.index(next(t for t in texts if before in t)) < texts.index(
        next(t for t in texts if after in t)), texts

    slots = chat.slots()
    assert slots["cention_errand_id"] == errand_id, slots
    assert slots["customer_email"] == "grace@example.com", slots
    assert slots["cention_answer_errand_id"] == errand_id, slots
    users = [e.get("text") for e in chat.tracker()["events"] if e["event"] == "user"]
    assert users[0] == "I want to talk to support", users

"""A ticket whose confirmation never reached Rasa, on real Rasa 3.6.21: the customer saw
nothing, says "try again", and gets the reference of the ticket that was filed; Benti holds
one ticket.

Rasa reaches the action server through a proxy that, once, lets the ticket action run and
then loses its reply (HTTP 502 to Rasa, as a load balancer whose upstream connection dropped
answers): Rasa logs the failure and drops the action's events, exactly as after a network
cut between the two.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.bot import RasaServer, is_response, slot_value
from tests.e2e.deploy import RasaDeployment, channel_credentials, endpoints_for
from tests.e2e.test_benti_ticket import fill_ticket_form, ticket_posts
from tests.support.servers import Sandbox, free_port, running_action_server

pytestmark = pytest.mark.e2e

CREATE = "action_benti_create_ticket"


class LossyProxy:
    """Forwards Rasa's action calls; for the next `lose` calls of `action`, the action runs
    but its reply is replaced by a 502."""

    def __init__(self, backend: str, action: str) -> None:
        self.backend, self.action, self.lose, self.lost = backend, action, 0, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                resp = requests.post(proxy.backend + self.path, data=body, timeout=60,
                                     headers={"Content-Type": "application/json"})
                status, content = resp.status_code, resp.content
                if proxy.lose and json.loads(body).get("next_action") == proxy.action:
                    proxy.lose -= 1
                    proxy.lost += 1
                    status, content = 502, b"upstream connection lost"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def lossy(sandbox: Sandbox, rasa_bin: Path, rasa_model: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RasaServer, LossyProxy]]:
    host = tmp_path_factory.mktemp("exactly-once")
    state_url = f"sqlite:///{host / 'state.sqlite3'}"
    (host / "action-server").mkdir()
    with running_action_server({"SANDBOX": "1", "SANDBOX_URL": sandbox.url,
                                "STATE_URL": state_url},
                               cwd=host / "action-server") as server:
        proxy = LossyProxy(server.url, CREATE)
        deployment = RasaDeployment(rasa_bin, rasa_model, host / "rasa",
                                    channel_credentials(sandbox), endpoints_for(proxy.url),
                                    {"STATE_URL": state_url},
                                    peers={"action server": server.process})
        deployment.start()
        try:
            yield deployment.wait_ready(), proxy
        finally:
            deployment.stop()
            proxy.close()


def benti_tickets(sandbox: Sandbox, title: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.state("benti")["tickets"] if t["title"] == title]


def test_try_again_after_a_lost_confirmation_gives_the_filed_ticket(
        lossy: tuple[RasaServer, LossyProxy], sandbox: Sandbox) -> None:
    rasa, proxy = lossy
    chat = rasa.conversation()
    title = f"Router blinking {chat.sender[-6:]}"
    chat.expect("hello", "utter_greet")
    proxy.lose = 1
    replies = fill_ticket_form(chat, title, "The router blinks red and nothing loads.")
    assert proxy.lost == 1
    # The ticket was filed, but its confirmation was lost on the way to Rasa: the customer
    # saw no reference and Rasa kept no ticket id.
    assert not any(is_response(r, "utter_benti_ticket_created") for r in replies), replies
    [filed] = benti_tickets(sandbox, title)
    assert chat.slots()["benti_ticket_id"] is None
    posts = ticket_posts(sandbox)

    _, created = chat.expect("try again", "utter_retrying", "utter_benti_ticket_created")
    assert slot_value(created, "utter_benti_ticket_created", "reference") == str(filed["id"])
    assert ticket_posts(sandbox) == posts  # answered from the record: nothing sent again
    assert len(benti_tickets(sandbox, title)) == 1
    slots = chat.slots()
    assert slots["benti_ticket_id"]  # Rasa now holds the ticket: nothing is left to recover
    assert slots["benti_ticket_title"] is None
    chat.expect("try again", "utter_nothing_to_retry")


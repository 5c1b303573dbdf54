"""The Benti client against the simulator (in-process, on loopback) and against canned replies.

What a user would notice: tickets get created with one authentication for many tickets and
none per request, tokens are renewed before Benti refuses them, an expired token costs no
failed ticket, twenty customers arriving at once cause one authentication, and files that
Benti would refuse are refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from pydantic import SecretStr
from yarl import URL

from rasa_service_desk.clients.benti import Attachment, BentiClient, BentiSettings, NewTicket
from rasa_service_desk.clients.benti.client import error_message
from rasa_service_desk.clients.benti.settings import MIB, SANDBOX_API_KEY
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import close_shared_sessions
from rasa_service_desk.sandbox.benti import BentiSimulator
from rasa_service_desk.sandbox.core import Fault

BIG = 8 * MIB


class Clock:
    """A clock the test moves forward, so token expiry needs no waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Benti:
    sim: BentiSimulator
    url: str
    clock: Clock

    def settings(self, **changes: object) -> BentiSettings:
        return BentiSettings().for_sandbox(self.url).model_copy(update=changes)

    def client(self, **changes: object) -> BentiClient:
        return BentiClient(self.settings(**changes), clock=self.clock)

    def count(self, method: str, path: str) -> int:
        return sum(n for key, n in self.sim.calls.items()
                   if key.startswith(f"{method} ") and key.endswith(path))


async def shared_file(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["size"])
    if request.query.get("chunked"):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(size // MIB):
            await resp.write(b"x" * MIB)
        await resp.write_eof()
        return resp
    return web.Response(body=b"y" * size, content_type="application/pdf")


@pytest.fixture
async def benti() -> AsyncIterator[Benti]:
    sim = BentiSimulator()
    root = web.Application(client_max_size=32 * MIB)
    root.add_subapp("/benti", sim.app())
    root.router.add_get("/files/{size}", shared_file)
    async with TestServer(root, host="127.0.0.1") as server:
        yield Benti(sim, str(server.make_url("")).rstrip("/"), Clock())
        await close_shared_sessions()


def ticket(email: str = "ada@example.com", *files: Attachment) -> NewTicket:
    return NewTicket(title="Printer on fire", message="It smokes when I print.",
                     customer_name="Ada Lovelace", customer_email=email,
                     attachments=list(files))


async def test_ticket_carries_title_message_creator_and_attachments(benti: Benti) -> None:
    created = await benti.client().create_ticket(
        ticket("ada@example.com", Attachment("transcript.txt", b"Customer: hello")))

    [stored] = benti.sim.state()["tickets"]
    [user] = benti.sim.state()["users"]
    [media] = benti.sim.state()["media"]
    assert (created.id, created.reference) == (stored["full_uuid"], str(stored["id"]))
    assert stored["title"] == "Printer on fire"
    assert stored["message"] == "It smokes when I print."
    assert stored["creator"] == user["id"] and user["address"] == "ada@example.com"
    assert stored["attachments"] == [media["id"]]
    assert media["name"] == "transcript.txt" and media["preview"] == "Customer: hello"
    assert stored["queue"] is None and stored["source"] is None


async def test_configured_queue_and_source_go_with_every_ticket(benti: Benti) -> None:
    await benti.client(queue=3, source=7).create_ticket(ticket())
    [stored] = benti.sim.state()["tickets"]
    assert (stored["queue"], stored["source"]) == (3, 7)


async def test_many_tickets_share_one_authentication_and_no_discovery_per_call(
    benti: Benti,
) -> None:
    client = benti.client()
    for n in range(5):
        await client.create_ticket(ticket(f"customer{n}@example.com"))

    assert len(benti.sim.tickets) == 5
    assert benti.count("POST", "/v1/auth") == 1
    # the auth reply's `apis` map gave the ticketing URL: no extra discovery call
    assert benti.count("GET", "/v1/apis") == 0
    assert benti.count("POST", "/v1/refreshToken") == 0


async def test_returning_customer_reuses_their_benti_user(benti: Benti) -> None:
    client = benti.client()
    await client.create_ticket(ticket("ada@example.com"))
    await client.create_ticket(ticket("ada@example.com"))

    assert benti.count("POST", "/ticketing/v1/users") == 1
    assert benti.count("GET", "/ticketing/v1/users") == 2
    assert len({t["creator"] for t in benti.sim.tickets}) == 1


async def test_twenty_concurrent_tickets_from_cold_start_authenticate_once(
    benti: Benti,
) -> None:
    benti.sim.latency = 0.05  # every request in flight long enough to overlap
    client = benti.client()
    created = await asyncio.gather(
        *(client.create_ticket(ticket(f"c{n}@example.com")) for n in range(20)))

    assert len({t.id for t in created}) == 20
    assert benti.count("POST", "/v1/auth") == 1


async def test_token_is_refreshed_shortly_before_it_expires(benti: Benti) -> None:
    benti.sim.token_lifetime = 600
    client = benti.client()
    await client.create_ticket(ticket())
    benti.clock.advance(600 - 180 - 5)  # still more than 180 s to go: keep it
    await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/refreshToken") == 0

    benti.clock.advance(10)  # within 180 s of expiry: refresh, then rediscover the URL
    await client.create_ticket(ticket())
    await client.create_ticket(ticket())

    assert benti.count("POST", "/v1/refreshToken") == 1
    assert benti.count("GET", "/v1/apis") == 1
    assert benti.count("POST", "/v1/auth") == 1
    assert len(benti.sim.tickets) == 4


async def test_short_lived_tokens_are_not_refreshed_on_every_call(benti: Benti) -> None:
    benti.sim.token_lifetime = 100  # shorter than the 180 s margin
    client = benti.client()
    await client.create_ticket(ticket())
    benti.clock.advance(40)
    await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/refreshToken") == 0


async def test_token_expired_in_our_clock_means_new_authentication(benti: Benti) -> None:
    benti.sim.token_lifetime = 600
    client = benti.client()
    await client.create_ticket(ticket())
    benti.clock.advance(601)
    await client.create_ticket(ticket())

    assert benti.count("POST", "/v1/auth") == 2
    assert benti.count("POST", "/v1/refreshToken") == 0


async def test_failed_refresh_falls_back_to_authentication(benti: Benti) -> None:
    benti.sim.token_lifetime = 600
    client = benti.client()
    await client.create_ticket(ticket())
    benti.sim.inject(Fault(status=500, path="/v1/refreshToken"))
    benti.clock.advance(500)
    await client.create_ticket(ticket())

    assert benti.count("POST", "/v1/refreshToken") == 1
    assert benti.count("POST", "/v1/auth") == 2
    assert len(benti.sim.tickets) == 2


async def test_token_benti_expired_is_renewed_once_and_the_ticket_still_created(
    benti: Benti,
) -> None:
    client = benti.client()
    await client.create_ticket(ticket())
    benti.sim.expire_tokens()
    # user lookup and upload run concurrently and both hit the expired token
    await client.create_ticket(ticket("ada@example.com", Attachment("a.txt", b"a")))

    assert len(benti.sim.tickets) == 2
    assert benti.count("POST", "/v1/auth") == 2


async def test_token_refused_again_after_renewal_is_an_authentication_error(
    benti: Benti,
) -> None:
    client = benti.client()
    await client.create_ticket(ticket())
    expired = {"Message": "Unauthorized: the access token has expired"}
    benti.sim.inject(Fault(status=401, path="/ticketing/v1/users", body=expired, times=2))

    with pytest.raises(AuthenticationError):
        await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/auth") == 2  # one renewal, no loop
    assert benti.sim.tickets[1:] == []


async def test_wrong_api_key_is_not_retried(benti: Benti) -> None:
    client = BentiClient(benti.settings(api_key=SecretStr("wrong-key")))
    with pytest.raises(AuthenticationError) as caught:
        await client.create_ticket(ticket())
    assert caught.value.status == 403
    assert caught.value.vendor_message == "Invalid API key"
    assert benti.count("POST", "/v1/auth") == 1


async def test_vendor_refusal_keeps_benti_own_message(benti: Benti) -> None:
    body = {"error": {"code": 422, "message": "creator does not exist"}}
    benti.sim.inject(Fault(status=422, path="/ticketing/v1/tickets", body=body))
    with pytest.raises(RejectedInput) as caught:
        await benti.client().create_ticket(ticket())
    assert caught.value.status == 422
    assert caught.value.vendor_message == "creator does not exist"


async def test_malformed_ticket_reply_is_reported_as_such(benti: Benti) -> None:
    benti.sim.inject(Fault(malformed=True, path="/ticketing/v1/tickets"))
    with pytest.raises(MalformedReply):
        await benti.client().create_ticket(ticket())


async def test_ticket_creation_is_not_repeated_after_a_server_error(benti: Benti) -> None:
    benti.sim.inject(Fault(status=502, path="/ticketing/v1/tickets"))
    with pytest.raises(VendorUnavailable):
        await benti.client().create_ticket(ticket())
    assert benti.count("POST", "/ticketing/v1/tickets") == 1


async def test_attachment_over_7_mib_is_refused_before_anything_is_sent(benti: Benti) -> None:
    too_big = Attachment("video.mp4", b"0" * (7 * MIB + 1))
    with pytest.raises(RejectedInput, match="7 MiB"):
        await benti.client().create_ticket(ticket("ada@example.com", too_big))
    assert sum(benti.sim.calls.values()) == 0


async def test_attachment_of_exactly_7_mib_fits_benti_payload_limit(benti: Benti) -> None:
    await benti.client().create_ticket(
        ticket("ada@example.com", Attachment("scan.pdf", b"1" * (7 * MIB))))
    [media] = benti.sim.state()["media"]
    assert media["size"] == 7 * MIB


async def test_uploads_run_concurrently(benti: Benti) -> None:
    benti.sim.latency = 0.3
    files = [Attachment(f"f{n}.txt", b"data") for n in range(4)]
    started = time.perf_counter()
    await benti.client().create_ticket(ticket("ada@example.com", *files))
    elapsed = time.perf_counter() - started

    assert len(benti.sim.state()["media"]) == 4
    # one after the other: auth, lookup, create user, 4 uploads, ticket = 8 x 0.3 s
    assert elapsed < 2.0


async def test_shared_file_is_downloaded(benti: Benti) -> None:
    data = await benti.client().fetch_file(f"{benti.url}/files/1000")
    assert data == b"y" * 1000


@pytest.mark.parametrize("path", ["/files/{big}", "/files/{big}?chunked=1"])
async def test_shared_file_over_the_limit_is_refused(benti: Benti, path: str) -> None:
    with pytest.raises(RejectedInput, match="exceeds"):
        await benti.client().fetch_file(benti.url + path.format(big=BIG))


async def test_shared_file_errors_are_typed(benti: Benti) -> None:
    client = benti.client()
    with pytest.raises(RejectedInput):
        await client.fetch_file(f"{benti.url}/nothing-here")
    with pytest.raises(RejectedInput):
        await client.fetch_file("file:///etc/passwd")
    with pytest.raises(VendorUnavailable):
        await client.fetch_file("http://127.0.0.1:9/unreachable")


# -- canned replies (aioresponses): shapes the simulator does not produce ------------
AUTH = "https://auth.benti.test/v1/auth"
APIS = "https://auth.benti.test/v1/apis"
TICKETING = "https://eu.benti.test/prod/ticketing/v1"


def canned_client() -> BentiClient:
    settings = BentiSettings(api_key="k", api_secret="s",
                             auth_url="https://auth.benti.test", retry_attempts=1)
    return BentiClient(settings)


async def test_without_apis_in_auth_reply_the_url_is_discovered_once() -> None:
    with aioresponses() as mocked:
        mocked.post(AUTH, payload={"accessToken": "t1", "expiration": time.time() + 1200,
                                   "expires_in": 1200})
        mocked.get(APIS, payload={"apis": {"ticketing": TICKETING.removesuffix("/v1")}})
        users = re.compile(re.escape(f"{TICKETING}/users") + r"\?address=.*")
        mocked.get(users, payload={"data": [{"id": 77}]}, repeat=True)
        mocked.post(f"{TICKETING}/tickets", payload={"id": 5, "full_uuid": "u-5"}, repeat=True)
        client = canned_client()
        for _ in range(3):
            created = await client.create_ticket(ticket())

        assert (created.id, created.reference) == ("u-5", "5")
        calls = {(m, str(u)): len(c) for (m, u), c in mocked.requests.items()}
        assert calls[("POST", AUTH)] == 1
        assert calls[("GET", APIS)] == 1
        ticket_call = mocked.requests[("POST", URL(f"{TICKETING}/tickets"))][0]
        assert ticket_call.kwargs["json"]["creator"] == 77
        assert ticket_call.kwargs["headers"]["x-inbenta-key"] == "k"
        assert ticket_call.kwargs["headers"]["Authorization"].startswith("Bearer t1")
        await close_shared_sessions()


async def test_ticket_reply_without_any_id_is_malformed() -> None:
    with aioresponses() as mocked:
        mocked.post(AUTH, payload={"accessToken": "t", "expiration": time.time() + 1200,
                                   "apis": {"ticketing": TICKETING.removesuffix("/v1")}})
        mocked.get(re.compile(re.escape(f"{TICKETING}/users") + r"\?.*"),
                   payload={"data": [{"id": "u"}]})
        mocked.post(f"{TICKETING}/tickets", payload={"status": "ok"})
        with pytest.raises(MalformedReply):
            await canned_client().create_ticket(ticket())
        await close_shared_sessions()


async def test_auth_reply_without_token_is_malformed() -> None:
    with aioresponses() as mocked:
        mocked.post(AUTH, payload={"token": "x"})
        with pytest.raises(MalformedReply):
            await canned_client().create_ticket(ticket())
        await close_shared_sessions()


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": {"code": 400, "message": "title too long"}}, "title too long"),
    ({"Message": "Unauthorized: the access token has expired"},
     "Unauthorized: the access token has expired"),
    ({"message": "Internal server error"}, "Internal server error"),
    ({"error": "bad request"}, "bad request"),
    (["not", "an", "object"], ""),
    ({"unexpected": True}, ""),
])
def test_error_message_reads_both_error_shapes(body: object, expected: str) -> None:
    assert error_message(body) == expected


def test_sandbox_settings_point_at_the_simulator_with_its_demo_key() -> None:
    settings = BentiSettings().for_sandbox("http://127.0.0.1:8765")
    assert settings.auth_url == "http://127.0.0.1:8765/benti"
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == SANDBOX_API_KEY
    assert settings.missing_credentials() == []


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTI_API_KEY", "key-123")
    monkeypatch.setenv("BENTI_API_SECRET", "secret-456")
    monkeypatch.setenv("BENTI_QUEUE", "4")
    monkeypatch.setenv("BENTI_SOURCE", "")
    settings = BentiSettings.load(env_file=None)
    assert settings.queue == 4 and settings.source is None
    assert settings.auth_url == "https://api.inbenta.io"
    assert settings.token_refresh_margin_seconds == 180
    assert "secret-456" not in repr(settings)
    assert set(settings.secret_values()) == {"key-123", "secret-456"}


def test_attachment_limit_cannot_exceed_what_benti_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BENTI_MAX_ATTACHMENT_BYTES", str(8 * MIB))
    with pytest.raises(ConfigurationError, match="BENTI_MAX_ATTACHMENT_BYTES"):
        BentiSettings.load(env_file=None)

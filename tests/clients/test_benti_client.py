"""The Benti client against the simulator (in-process, on loopback) and against canned replies.

What a user would notice: tickets get created with one authentication for many tickets and
none per request, tokens are renewed before Benti refuses them, an expired or revoked token
costs no failed ticket, twenty customers arriving at once cause one authentication (also
when it fails), a wrong secret is reported as the configuration problem it is, a failed
part of a ticket stops the rest, two first tickets of one customer share one Benti user,
and files that Benti would refuse are refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from pydantic import SecretStr
from yarl import URL

from rasa_service_desk.clients.benti import Attachment, BentiClient, BentiSettings, NewTicket
from rasa_service_desk.clients.benti.auth import AUTH_FAILURE_HOLD_SECONDS
from rasa_service_desk.clients.benti.client import error_message
from rasa_service_desk.clients.benti.settings import MIB, SANDBOX_API_KEY
from rasa_service_desk.clients.compat import copy_model
from rasa_service_desk.clients.errors import (
    AuthenticationError,
    ConfigurationError,
    MalformedReply,
    RejectedInput,
    VendorUnavailable,
)
from rasa_service_desk.clients.http import close_shared_sessions
from rasa_service_desk.sandbox.benti import BentiSimulator
from rasa_service_desk.sandbox.core import Fault, serve_together

#: Inbenta's documented answers ("Gateway Errors" and "API Errors" pages).
EXPLICIT_DENY = {"Message": "User is not authorized to access this resource with an explicit deny"}
UNAUTHORIZED = {"Message": "Unauthorized"}
SECRET_NOT_VALID = {"error": {"code": 400, "message": "Secret token not valid"}}


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
        return copy_model(BentiSettings().for_sandbox(self.url), **changes)

    def client(self, **changes: object) -> BentiClient:
        return BentiClient(self.settings(**changes), clock=self.clock)

    def count(self, method: str, path: str) -> int:
        return sum(n for key, n in self.sim.calls.items()
                   if key.startswith(f"{method} ") and key.endswith(path))


@pytest.fixture
async def benti() -> AsyncIterator[Benti]:
    sim = BentiSimulator()
    root = serve_together({"benti": sim})
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


async def test_token_benti_revoked_is_renewed_once_and_the_ticket_still_created(
    benti: Benti,
) -> None:
    client = benti.client()
    await client.create_ticket(ticket())
    benti.sim.tokens.clear()  # revoked: the gateway answers 403 "explicit deny"

    await client.create_ticket(ticket())

    assert len(benti.sim.tickets) == 2
    assert benti.count("POST", "/v1/auth") == 2


@pytest.mark.parametrize(("status", "body"), [(403, EXPLICIT_DENY), (401, UNAUTHORIZED)],
                         ids=["403-explicit-deny", "401-unauthorized"])
@pytest.mark.parametrize("path", ["/ticketing/v1/users", "/ticketing/v1/tickets"])
async def test_any_documented_refusal_of_the_token_is_renewed_once(
    benti: Benti, status: int, body: dict[str, str], path: str,
) -> None:
    client = benti.client()
    await client.create_ticket(ticket())
    method = "POST" if path.endswith("tickets") else "GET"
    benti.sim.inject(Fault(status=status, body=body, path=path, method=method))

    created = await client.create_ticket(ticket())

    assert created.reference == str(benti.sim.tickets[-1]["id"])
    assert len(benti.sim.tickets) == 2
    assert benti.count("POST", "/v1/auth") == 2  # the token was dropped, not refreshed
    assert benti.count("POST", "/v1/refreshToken") == 0


async def test_token_refused_again_after_renewal_is_an_authentication_error(
    benti: Benti,
) -> None:
    client = benti.client()
    await client.create_ticket(ticket())
    benti.sim.inject(Fault(status=403, path="/ticketing/v1/users", body=EXPLICIT_DENY, times=2))

    with pytest.raises(AuthenticationError, match="BENTI_API_KEY"):
        await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/auth") == 2  # one renewal, no loop
    assert benti.sim.tickets[1:] == []


async def test_wrong_api_key_is_an_authentication_error_naming_the_setting(
    benti: Benti, caplog: pytest.LogCaptureFixture,
) -> None:
    client = BentiClient(benti.settings(api_key=SecretStr("wrong-key")))
    with pytest.raises(AuthenticationError) as caught:
        await client.create_ticket(ticket())
    assert caught.value.status == 403
    assert caught.value.vendor_message == EXPLICIT_DENY["Message"]
    assert "BENTI_API_KEY" in caught.value.message
    assert benti.count("POST", "/v1/auth") == 1
    assert "wrong-key" not in caplog.text


async def test_wrong_secret_is_a_configuration_problem_not_a_rejected_ticket(
    benti: Benti, caplog: pytest.LogCaptureFixture,
) -> None:
    client = BentiClient(benti.settings(api_secret=SecretStr("not-the-secret")))
    with pytest.raises(AuthenticationError) as caught:  # not RejectedInput
        await client.create_ticket(ticket())

    assert not isinstance(caught.value, RejectedInput)
    assert (caught.value.status, caught.value.vendor_message) == (400, "Secret token not valid")
    assert "check BENTI_API_KEY and BENTI_API_SECRET" in caught.value.message
    assert "check BENTI_API_KEY and BENTI_API_SECRET" in caplog.text
    assert "not-the-secret" not in caplog.text
    assert benti.count("POST", "/v1/auth") == 1
    assert benti.sim.tickets == []


async def test_auth_url_without_the_auth_api_names_its_setting() -> None:
    with aioresponses() as mocked:
        mocked.post(AUTH, status=404, payload={"error": {"code": 404, "message": "Not Found"}})
        with pytest.raises(ConfigurationError, match="BENTI_AUTH_URL"):
            await canned_client().create_ticket(ticket())
        await close_shared_sessions()


async def test_twenty_tickets_while_auth_is_refused_make_one_auth_call(benti: Benti) -> None:
    benti.sim.latency = 0.05  # the failing authentication is still running when all arrive
    client = BentiClient(benti.settings(api_secret=SecretStr("rotated-away")), clock=benti.clock)
    files = [Attachment("a.txt", b"a"), Attachment("b.txt", b"b")]

    results = await asyncio.gather(
        *(client.create_ticket(ticket(f"c{n}@example.com", *files)) for n in range(20)),
        return_exceptions=True)

    assert all(isinstance(r, AuthenticationError) for r in results)
    assert len({id(r) for r in results}) == 20  # each customer gets an error of its own
    assert benti.count("POST", "/v1/auth") == 1
    assert benti.count("GET", "/ticketing/v1/users") == 0

    benti.clock.advance(AUTH_FAILURE_HOLD_SECONDS - 0.1)  # still within the hold: no call
    with pytest.raises(AuthenticationError):
        await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/auth") == 1
    benti.clock.advance(0.2)  # the hold is over: the next ticket tries again
    with pytest.raises(AuthenticationError):
        await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/auth") == 2


async def test_authentication_works_again_once_the_secret_is_fixed_and_the_hold_over(
    benti: Benti,
) -> None:
    client = benti.client()
    benti.sim.inject(Fault(status=503, path="/v1/auth", times=3))  # an outage, all retries
    with pytest.raises(VendorUnavailable):
        await client.create_ticket(ticket())
    with pytest.raises(VendorUnavailable):  # shared: no new attempt during the hold
        await client.create_ticket(ticket())
    assert benti.count("POST", "/v1/auth") == 3

    benti.clock.advance(AUTH_FAILURE_HOLD_SECONDS)
    await client.create_ticket(ticket())
    assert len(benti.sim.tickets) == 1


async def test_a_failed_upload_cancels_the_rest_of_the_ticket(benti: Benti) -> None:
    client = benti.client()
    await client.create_ticket(ticket("first@example.com"))  # authenticated already
    # the user lookup and the second upload are slow; the first upload is refused at once
    benti.sim.inject(
        Fault(delay=0.5, path="/ticketing/v1/users", method="GET"),
        Fault(status=400, path="/ticketing/v1/media",
              body={"error": {"code": 400, "message": "content is not valid base64"}}),
        Fault(delay=0.5, path="/ticketing/v1/media"),
    )

    with pytest.raises(RejectedInput):
        await client.create_ticket(
            ticket("ada@example.com", Attachment("a.txt", b"a"), Attachment("b.txt", b"b")))
    await asyncio.sleep(0.8)  # long enough for a sibling left running to go on

    # the lookup was cancelled: no user created after it, no ticket
    assert benti.count("POST", "/ticketing/v1/users") == 1
    assert [u["address"] for u in benti.sim.state()["users"]] == ["first@example.com"]
    assert len(benti.sim.tickets) == 1


async def test_two_first_tickets_of_one_customer_share_one_benti_user(benti: Benti) -> None:
    benti.sim.latency = 0.05  # both lookups find nobody before either creation lands
    client = benti.client()

    first, second = await asyncio.gather(client.create_ticket(ticket("new@example.com")),
                                         client.create_ticket(ticket("new@example.com")))

    assert first.id != second.id
    [user] = benti.sim.state()["users"]
    assert {t["creator"] for t in benti.sim.tickets} == {user["id"]}
    assert benti.count("POST", "/ticketing/v1/users") == 2  # the second one was refused


async def test_user_refused_and_still_not_found_is_the_refusal() -> None:
    with aioresponses() as mocked:
        mocked.post(AUTH, payload={"accessToken": "t", "expiration": time.time() + 1200,
                                   "apis": {"ticketing": TICKETING.removesuffix("/v1")}})
        mocked.get(re.compile(re.escape(f"{TICKETING}/users") + r"\?.*"),
                   payload={"data": []}, repeat=True)
        mocked.post(f"{TICKETING}/users", status=400,
                    payload={"error": {"code": 400, "message": "name and address required"}})
        with pytest.raises(RejectedInput) as caught:
            await canned_client().create_ticket(ticket())
        assert caught.value.vendor_message == "name and address required"
        await close_shared_sessions()


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
    (EXPLICIT_DENY, EXPLICIT_DENY["Message"]),
    (SECRET_NOT_VALID, "Secret token not valid"),
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

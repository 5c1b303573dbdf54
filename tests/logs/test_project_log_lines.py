"""The project's own log lines name no customer: a vendor's refusal is logged by status,
code and a summary; a vendor call by its path, never its query (a search phrase is what the
customer typed); the fields of the JSON lines ride along (aioresponses, no network)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses

from rasa_service_desk.clients.errors import AuthenticationError, RejectedInput
from rasa_service_desk.clients.http import HttpClient, RetryPolicy, close_shared_sessions
from rasa_service_desk.clients.imbee.client import ImbeeClient
from rasa_service_desk.clients.imbee.settings import ImbeeSettings
from rasa_service_desk.logs import error_text, safe_url

URL = "https://vendor.example/api/tickets"
FAST = RetryPolicy(attempts=1, initial_wait=0.001, max_wait=0.01, jitter=0)
NAME, EMAIL = "Zoe Quillfeather", "zoe.quillfeather@example.org"


@pytest.fixture(autouse=True)
async def _close_session() -> AsyncIterator[None]:
    yield
    await close_shared_sessions()


def client() -> HttpClient:
    return HttpClient("acme", retry=FAST,
                      error_message=lambda body: body["error"]["message"])


async def test_a_refusal_echoing_the_customer_is_logged_by_status_code_and_summary(
        caplog: pytest.LogCaptureFixture) -> None:
    echo = f"creator {EMAIL} ({NAME}, +34 612 345 678) rejected"
    with aioresponses() as mocked, caplog.at_level(logging.DEBUG, "rasa_service_desk"):
        mocked.post(URL, status=422, payload={"error": {"code": "E_CREATOR", "message": echo}})
        with pytest.raises(RejectedInput) as refused:
            await client().request("POST", URL, json_body={"title": "x"})
    assert refused.value.vendor_message == echo  # kept on the error for the code
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == \
        "acme HTTP 422 (code E_CREATOR): creator <email> (* *, <phone>) rejected"
    assert (warning.vendor, warning.status, warning.operation) == (  # type: ignore[attr-defined]
        "acme", 422, "/api/tickets")
    for leak in ("Zoe", "Quillfeather", "612 345 678", EMAIL):
        assert leak not in caplog.text


async def test_a_vendor_call_is_logged_without_its_query(
        caplog: pytest.LogCaptureFixture) -> None:
    search = "https://lib.example/s/demo/questions?q=why+did+Zoe+Quillfeather+get+billed&page=2"
    with aioresponses() as mocked, caplog.at_level(logging.DEBUG, "rasa_service_desk"):
        mocked.get(search, payload={"data": []})
        await client().request_json("GET", search)
    [line] = [r for r in caplog.records if r.name == "rasa_service_desk.clients.http"]
    assert line.getMessage().startswith(  # aiohttp sorts the query
        "acme GET https://lib.example/s/demo/questions?page=2&q=* -> 200 in ")
    assert line.operation == "GET /s/demo/questions"  # type: ignore[attr-defined]
    assert isinstance(line.duration_ms, int)  # type: ignore[attr-defined]
    assert "Quillfeather" not in caplog.text


async def test_imbee_refusal_in_an_envelope_is_summarised(
        caplog: pytest.LogCaptureFixture) -> None:
    host = "https://imbee.example/api"
    settings = ImbeeSettings(host=host, auth_token="auth-token-9f8e7d",
                             corporate_token="corporate-token-1a2b3c", bot_id="bot-1",
                             agent_ids="agent-a", user_id_salt="salt-for-tests-5d6e7f",
                             retry_attempts=1)
    body: dict[str, Any] = {"virtualUser": "u", "pass": "p", "apikey": "k",
                            "previously_registered": False}
    with aioresponses() as mocked, caplog.at_level(logging.WARNING):
        mocked.post(f"{host}/third_parties/user/new",
                    payload={"code": 0, "message": "Ok", "body": body})
        mocked.post(f"{host}/chat/create", payload={"code": 0, "message": "Ok", "body": {
            "contacts": [], "conversationId": "c1", "previously_created": False}})
        mocked.post(f"{host}/token/new", payload={
            "code": 1, "message": f"celullar +34 612 345 678 of {NAME} is not valid"})
        with pytest.raises(RejectedInput):
            await ImbeeClient(settings).open_chat("conv", phone="+34612345678")
    assert "imbee /token/new refused the request (code 1): celullar <phone> of * * is not " \
        "valid" in caplog.text
    assert "Quillfeather" not in caplog.text


def test_error_text_summarises_the_vendor_message_an_error_quotes() -> None:
    error = AuthenticationError("benti", f"authentication refused (HTTP 401: no user {NAME}); "
                                "check BENTI_API_KEY", status=401,
                                vendor_message=f"no user {NAME}")
    assert error_text(error) == \
        "benti: authentication refused (HTTP 401: no user * *); check BENTI_API_KEY"
    assert error_text(ValueError("plain")) == "plain"


def test_safe_url() -> None:
    assert safe_url("https://h.example/v1/users?address=zoe%40example.org&limit=10&x=true") == \
        "https://h.example/v1/users?address=*&limit=10&x=true"
    assert safe_url("https://u:pw@h.example/web/access/t0k3nt0k3nt0k3n") == \
        "https://***@h.example/web/access/***"

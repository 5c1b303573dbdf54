"""The Cention simulator behaves like the documented API: JSON:API negotiation, claims per
token, library search and top list, errands, and an answer callback shaped like the sample."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rasa_service_desk.clients.cention.settings import SANDBOX_ERRAND_TOKEN, SANDBOX_LIBRARY_TOKEN
from rasa_service_desk.sandbox.cention import (
    JSONAPI,
    SANDBOX_CONTACT_TOKEN,
    SANDBOX_REPORT_TOKEN,
    CentionSimulator,
)
from rasa_service_desk.sandbox.core import serve_together


@dataclass
class Running:
    sim: CentionSimulator
    url: str
    session: aiohttp.ClientSession
    received: list[dict[str, Any]]
    receiver_url: str

    def api(self, path: str) -> str:
        return f"{self.url}/cention/s/demo/capi/json/{path}"

    async def get(self, path: str, token: str = SANDBOX_LIBRARY_TOKEN,
                  **params: str) -> tuple[int, Any]:
        async with self.session.get(self.api(path), params=params, headers={
            "Authorization": f"Bearer {token}", "Accept": JSONAPI}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def new_errand(self, body: Any, token: str = SANDBOX_ERRAND_TOKEN,
                         content_type: str = JSONAPI) -> tuple[int, Any]:
        async with self.session.post(self.api("c3_new_errands"), data=json.dumps(body),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": content_type}) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def cention() -> AsyncIterator[Running]:
    sim = CentionSimulator()
    root = serve_together({"cention": sim})
    received: list[dict[str, Any]] = []

    async def callback(request: web.Request) -> web.Response:
        received.append({"content_type": request.headers.get("Content-Type"),
                         "body": await request.json()})
        return web.json_response({"ok": True}, status=202)

    receiver = web.Application()
    receiver.router.add_post("/webhooks/cention/webhook", callback)
    async with TestServer(root, host="127.0.0.1") as server, \
            TestServer(receiver, host="127.0.0.1") as receiving, aiohttp.ClientSession() as s:
        yield Running(sim, str(server.make_url("")).rstrip("/"), s, received,
                      str(receiving.make_url("/webhooks/cention/webhook")))


def errand_body(message_id: str = "msg-1") -> dict[str, Any]:
    return {"data": {"type": "c3_new_errands", "attributes": {
        "msg": {"message_id": message_id, "name": "David Liew", "from": "david@test.se",
                "subject": "Creating test errand via API", "body": "Test message body"},
        "extradata": {"conversation_id": "conv-9"}}}}


# -- negotiation and claims ------------------------------------------------------------
async def test_media_type_parameters_are_refused(cention: Running) -> None:
    status, body = await cention.new_errand(errand_body(),
                                            content_type=f"{JSONAPI}; charset=utf-8")
    assert status == 415 and body["errors"][0]["status"] == "415"
    async with cention.session.get(cention.api("c3_libraries"), headers={
        "Authorization": f"Bearer {SANDBOX_LIBRARY_TOKEN}",
        "Accept": f"{JSONAPI}; ext=bulk"}) as resp:
        assert resp.status == 406


async def test_tokens_are_checked_per_claim(cention: Running) -> None:
    assert (await cention.get("c3_libraries", token="wrong"))[0] == 401
    assert (await cention.get("c3_libraries", token=SANDBOX_ERRAND_TOKEN))[0] == 403
    assert (await cention.new_errand(errand_body(), token=SANDBOX_LIBRARY_TOKEN))[0] == 403
    cention.sim.expire_tokens()
    assert (await cention.get("c3_libraries"))[0] == 401


# -- library ---------------------------------------------------------------------------
async def test_external_libraries_list_only_external_ones(cention: Running) -> None:
    status, body = await cention.get("c3_external_libraries")
    assert status == 200
    assert {r["id"] for r in body["data"]} == {"3", "9"}
    assert all(r["type"] == "c3_external_libraries" for r in body["data"])
    assert all("external" not in r["attributes"] for r in body["data"])
    _, libraries = await cention.get("c3_libraries")
    assert {r["id"]: r["attributes"]["external"] for r in libraries["data"]} == {
        "3": True, "4": False, "9": True}


async def test_search_options_and_toplist(cention: Running) -> None:
    _, found = await cention.get("c3_library_questions", **{
        "q_filter[phrase]": "password", "q_filter[option]": "question"})
    assert [q["id"] for q in found["data"]] == ["1", "2", "7"]
    _, in_answers = await cention.get("c3_library_questions", **{
        "q_filter[phrase]": "master key", "q_filter[option]": "answer"})
    assert [q["id"] for q in in_answers["data"]] == ["1"]
    _, top = await cention.get("c3_library_questions", **{"filter[toplist]": "true"})
    assert [q["id"] for q in top["data"]] == ["1", "2", "6"]
    status, _ = await cention.get("c3_library_questions", **{
        "q_filter[phrase]": "x", "q_filter[option]": "everything"})
    assert status == 400


async def test_single_question_and_its_attachment(cention: Running) -> None:
    status, body = await cention.get("c3_library_questions/10")
    assert status == 200 and body["data"]["attributes"]["subject"] == "How do I return an item?"
    [link] = body["data"]["relationships"]["attachments"]["data"]
    _, attachment = await cention.get(f"c3_library_attachments/{link['id']}")
    content = attachment["data"]["attributes"]["attachment"]["content"]
    assert base64.b64decode(content).startswith(b"Return label")
    assert (await cention.get("c3_library_questions/999"))[0] == 404


# -- errands ---------------------------------------------------------------------------
async def test_new_errand_is_stored_and_a_repeated_message_id_is_not_duplicated(
    cention: Running,
) -> None:
    status, body = await cention.new_errand(errand_body())
    assert status == 201
    assert body == {"data": {"type": "c3_new_errands", "id": "511055"}}
    assert (await cention.new_errand(errand_body()))[1]["data"]["id"] == "511055"
    assert (await cention.new_errand(errand_body("msg-2")))[1]["data"]["id"] == "511056"
    [first, _] = cention.sim.state()["errands"]
    assert first["extradata"] == {"conversation_id": "conv-9"}
    bad = errand_body()
    bad["data"]["type"] = "c3_errands"
    assert (await cention.new_errand(bad))[0] == 409
    del bad["data"]["attributes"]["msg"]
    bad["data"]["type"] = "c3_new_errands"
    assert (await cention.new_errand(bad))[0] == 400


# -- answer callback -------------------------------------------------------------------
async def test_agent_answer_is_posted_like_the_documented_sample(cention: Running) -> None:
    _, created = await cention.new_errand(errand_body())
    errand_id = created["data"]["id"]
    async with cention.session.post(f"{cention.url}/cention/_sandbox/callback", json={
            "url": cention.receiver_url, "api_secret": "123456"}) as resp:
        assert resp.status == 200
    files = [{"name": "a.txt", "content_type": "text/plain",
              "content": base64.b64encode(b"first file").decode()},
             {"name": "b.txt", "content_type": "text/plain",
              "content": base64.b64encode(b"second file").decode()}]
    async with cention.session.post(f"{cention.url}/cention/_sandbox/answer", json={
            "errand_id": errand_id, "body": "Your parcel ships today.",
            "attachments": files}) as resp:
        result = await resp.json()
    assert result["status"] == 202  # the callback's own status

    [delivery] = cention.received
    assert delivery["content_type"] == JSONAPI
    payload = delivery["body"]
    assert payload["meta"] == {"api_secret": "123456"}
    data = payload["data"]
    assert data["type"] == "c3_callback_answer_errands" and data["attributes"] == {"event": 1}
    assert data["relationships"]["errand"]["data"] == {"type": "c3_answer_errands",
                                                       "id": errand_id}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for node in payload["included"]:
        by_type.setdefault(node["type"], []).append(node)
    [errand] = by_type["c3_answer_errands"]
    response = errand["attributes"]["answer"]["response"]
    assert set(response) == {"body", "c3_id", "html_body", "subject", "to"}
    assert response["body"] == "Your parcel ships today."
    assert response["subject"] == "Creating test errand via API"
    assert response["to"][0]["email_address"] == "david@test.se"
    assert errand["attributes"]["service"] == {"c3_id": 16, "name": "Form", "type": 19}
    assert [a["id"] for a in errand["relationships"]["attachments"]["data"]] == \
        [a["id"] for a in sorted(by_type["c3_response_attachments"], key=lambda a: a["id"])]
    assert len(by_type["c3_area_archives"]) == 1
    links = [a["links"]["self"] for a in by_type["c3_response_attachments"]]
    assert any(isinstance(link, dict) and "href" in link for link in links)
    assert any(isinstance(link, str) for link in links)

    # Each link serves the attachment document, to a caller with a token only.
    contents = set()
    for link in links:
        href = link["href"] if isinstance(link, dict) else link
        async with cention.session.get(href) as resp:
            assert resp.status == 401
        async with cention.session.get(href, headers={
                "Authorization": f"Bearer {SANDBOX_ERRAND_TOKEN}", "Accept": JSONAPI}) as resp:
            attachment = (await resp.json(content_type=None))["data"]
        assert attachment["type"] == "c3_response_attachments"
        contents.add(base64.b64decode(attachment["attributes"]["attachment"]["content"]))
    assert contents == {b"first file", b"second file"}
    assert cention.sim.state()["last_callback"]["status"] == 202


async def test_answer_without_a_callback_url_is_refused(cention: Running) -> None:
    async with cention.session.post(f"{cention.url}/cention/_sandbox/answer",
                                    json={"errand_id": "1", "body": "x"}) as resp:
        assert resp.status == 400


# -- errand report, closing, dirty list, contact cards ------------------------------------
async def post(cention: Running, path: str, body: Any,
               token: str = SANDBOX_ERRAND_TOKEN) -> tuple[int, Any]:
    async with cention.session.post(cention.api(path), data=json.dumps(body), headers={
            "Authorization": f"Bearer {token}", "Content-Type": JSONAPI}) as resp:
        return resp.status, await resp.json(content_type=None)


async def control(cention: Running, path: str, body: Any) -> Any:
    async with cention.session.post(f"{cention.url}/cention/_sandbox/{path}", json=body) as resp:
        return await resp.json()


def end_body(errand_id: Any, **answer: Any) -> dict[str, Any]:
    return {"data": {"type": "c3_end_errands", "attributes": {"errand_id": errand_id, "answer": {
        "user_type": "cention", "user_id": "1", "subject": "Answer subject", "body": "",
        "html_body": "", **answer}}}}


async def test_errand_report_follows_the_errand_like_the_documented_sample(
    cention: Running,
) -> None:
    _, created = await cention.new_errand(errand_body())
    errand_id = created["data"]["id"]
    status, report = await cention.get(f"c3_errand_reports/{errand_id}",
                                       token=SANDBOX_REPORT_TOKEN)
    assert status == 200
    data = report["data"]
    assert (data["type"], data["id"]) == ("c3_errand_reports", errand_id)
    attributes = data["attributes"]
    assert set(attributes) == {"actions", "basic", "c3_id", "changed", "extended", "sla"}
    basic = attributes["basic"]
    assert basic["acquired"] is False and attributes["actions"] == []
    assert {"id", "displayId", "status", "agent", "subject", "closed", "answered", "deleted",
            "date", "answeredDate", "fromAddress"} <= set(basic["data"])
    assert basic["data"]["status"].startswith("<img")  # an icon, as in the sample

    await control(cention, "open", {"errand_id": errand_id, "agent": "Grace Agent"})
    _, opened = await cention.get(f"c3_errand_reports/{errand_id}", token=SANDBOX_REPORT_TOKEN,
                                  **{"fields[c3_errand_reports]": "basic,actions"})
    assert set(opened["data"]["attributes"]) == {"basic", "actions"}  # sparse fieldset
    assert opened["data"]["attributes"]["basic"]["acquired"] is True
    assert opened["data"]["attributes"]["basic"]["data"]["agent"] == "Grace Agent"
    [action] = opened["data"]["attributes"]["actions"]
    assert action["note"].startswith(f"Errand {errand_id} was opened by agent Grace Agent at ")
    assert isinstance(action["timeStamp"], int) and action["origin"] == "Grace Agent"

    assert (await cention.get("c3_errand_reports/999", token=SANDBOX_REPORT_TOKEN))[0] == 404
    assert (await cention.get("c3_errand_reports/abc", token=SANDBOX_REPORT_TOKEN))[0] == 404
    assert (await cention.get(f"c3_errand_reports/{errand_id}"))[0] == 403  # library token


async def test_reading_a_report_clears_the_dirty_flag_and_posting_sets_it(
    cention: Running,
) -> None:
    _, created = await cention.new_errand(errand_body())
    errand_id = int(created["data"]["id"])
    _, dirty = await cention.get("c3_dirty_errand_list", token=SANDBOX_REPORT_TOKEN)
    assert dirty["data"]["attributes"]["errands"] == [errand_id]
    _, first = await cention.get(f"c3_errand_reports/{errand_id}", token=SANDBOX_REPORT_TOKEN)
    _, again = await cention.get(f"c3_errand_reports/{errand_id}", token=SANDBOX_REPORT_TOKEN)
    assert (first["data"]["attributes"]["changed"], again["data"]["attributes"]["changed"]) == (
        True, False)
    _, dirty = await cention.get("c3_dirty_errand_list", token=SANDBOX_REPORT_TOKEN)
    assert dirty["data"]["attributes"]["errands"] == []
    status, _ = await post(cention, "c3_dirty_errand_list", {"data": {
        "type": "c3_dirty_errand_list", "attributes": {"errands": [errand_id]}}},
        token=SANDBOX_REPORT_TOKEN)
    assert status == 200
    _, dirty = await cention.get("c3_dirty_errand_list", token=SANDBOX_REPORT_TOKEN)
    assert dirty["data"]["attributes"]["errands"] == [errand_id]


async def test_end_errand_closes_it_once(cention: Running) -> None:
    _, created = await cention.new_errand(errand_body())
    errand_id = int(created["data"]["id"])
    assert (await post(cention, "c3_end_errands", end_body(errand_id),
                       token=SANDBOX_LIBRARY_TOKEN))[0] == 403
    assert (await post(cention, "c3_end_errands", end_body(errand_id, user_type="bot")))[0] == 400
    assert (await post(cention, "c3_end_errands", end_body(errand_id, user_id="")))[0] == 400
    assert (await post(cention, "c3_end_errands", end_body("x1")))[0] == 400
    assert (await post(cention, "c3_end_errands", end_body(4321)))[0] == 404
    status, body = await post(cention, "c3_end_errands", end_body(errand_id))
    assert status == 200 and body == {"data": {"type": "c3_end_errands", "id": str(errand_id)}}
    assert (await post(cention, "c3_end_errands", end_body(errand_id)))[0] == 409
    _, report = await cention.get(f"c3_errand_reports/{errand_id}", token=SANDBOX_ERRAND_TOKEN)
    data = report["data"]["attributes"]["basic"]["data"]
    assert (data["closed"], data["answered"]) == (True, False)  # closed without a body
    assert "closed by Service Bot" in report["data"]["attributes"]["actions"][-1]["note"]


async def test_errand_created_closed_with_an_answer_and_a_cuid(cention: Running) -> None:
    body = errand_body("msg-closed")
    body["data"]["attributes"]["cuid"] = "5462-13-6485"
    body["data"]["attributes"]["answer"] = {"user_type": "cention", "user_id": "1",
                                            "subject": "Re", "body": "Solved by the bot"}
    status, created = await cention.new_errand(body)
    assert status == 201
    _, report = await cention.get(f"c3_errand_reports/{created['data']['id']}",
                                  token=SANDBOX_ERRAND_TOKEN)
    data = report["data"]["attributes"]["basic"]["data"]
    assert (data["closed"], data["answered"]) == (True, True)
    assert cention.sim.errands[created["data"]["id"]]["cuid"] == "5462-13-6485"
    body["data"]["attributes"]["answer"] = {"user_type": "cention"}
    body["data"]["attributes"]["msg"]["message_id"] = "msg-closed-2"
    assert (await cention.new_errand(body))[0] == 400


async def test_agent_answer_closes_the_errand(cention: Running) -> None:
    _, created = await cention.new_errand(errand_body())
    errand_id = created["data"]["id"]
    await control(cention, "answer", {"errand_id": errand_id, "body": "Done",
                                      "callback_url": cention.receiver_url})
    _, report = await cention.get(f"c3_errand_reports/{errand_id}", token=SANDBOX_ERRAND_TOKEN)
    attributes = report["data"]["attributes"]
    assert attributes["basic"]["data"]["answered"] is True
    assert "answered and closed by agent" in attributes["actions"][-1]["note"]
    assert attributes["extended"]["answer_body"] == "Done"


async def test_contact_cards_append_instead_of_duplicating(cention: Running) -> None:
    def card(**contacts: Any) -> dict[str, Any]:
        return {"data": {"type": "c3_contact_cards", "attributes": {"contacts": contacts}}}

    status, created = await post(cention, "c3_contact_cards", card(
        email=["tester.c3@cention.se", "tester.c3.2@cention.se"],
        facebook=["12345@facebook.com"], name="Tester Cention"), token=SANDBOX_CONTACT_TOKEN)
    assert status == 201
    assert created["data"]["id"] == "13" and created["data"]["attributes"]["c3_id"] == 13
    status, updated = await post(cention, "c3_contact_cards", card(
        email=["tester.c3@cention.se"], voice=["+46701234567"]), token=SANDBOX_CONTACT_TOKEN)
    assert status == 200 and updated["data"]["id"] == "13"
    assert updated["data"]["attributes"]["contacts"] == {
        "name": "Tester Cention", "email": ["tester.c3@cention.se", "tester.c3.2@cention.se"],
        "facebook": ["12345@facebook.com"], "voice": ["+46701234567"]}
    status, other = await post(cention, "c3_contact_cards", card(email=["x@example.com"]))
    assert status == 201 and other["data"]["id"] == "14"  # the errand token has the claim too
    assert (await post(cention, "c3_contact_cards", card(voice=["0701234567"])))[0] == 400
    assert (await post(cention, "c3_contact_cards", card(fax=["1"])))[0] == 400
    assert (await post(cention, "c3_contact_cards", card(name="Nobody")))[0] == 400
    assert (await post(cention, "c3_contact_cards", card(email=["a@b.c"]),
                       token=SANDBOX_LIBRARY_TOKEN))[0] == 403

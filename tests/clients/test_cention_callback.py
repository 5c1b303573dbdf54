"""Cention's answer callback, checked and parsed without any web framework."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from rasa_service_desk.clients.cention.callback import (
    AttachmentFetcher,
    AttachmentLink,
    CallbackHandler,
    answer_text,
    parse_callback,
    read_limited,
    secret_matches,
)
from rasa_service_desk.clients.cention.errand_registry import ErrandRegistry
from rasa_service_desk.clients.errors import MalformedReply
from rasa_service_desk.state import open_store

SECRET = "123456"
SAMPLE_BASE = "http://localhost"

# The answer of the vendor's sample, with its markup intact: an inline image, the
# satisfaction-meter links and the quoted original message Cention appends.
SAMPLE_HTML = (
    '<div><p><span style="font-size:;font-family:;">sadadad<img src="cid:12" /></span>'
    '<img src="cid:attachment_788" /></p></div>\n\n<div><br />\n<br />\n</div>\n'
    "<div>&nbsp;\u00a0</div>\r\n"
    '<a href="http://localhost/errands/satisfaction/meter/-/answer/4d6a49314e673d3d/'
    '1b7f046991d401785264fc4d35ca3db6" style="font-family:Verdana; font-size:10pt;">optionONE</a>'
    '<br /><a href="http://localhost/errands/satisfaction/meter/-/answer/4d6a4931AAA73d3d/'
    '73d05e8f6ec0ca1AAAa6608b78debd9" style="font-family:Verdana; font-size:10pt;">optionTWO</a>'
    "<br /><br />\n--------- Cention Contact Center - Original message ---------<br />\n"
    "Errand: #2256-1<br />\nFrom: Sany Liew (david.liew@test.se)<br />\n"
    "Sent: 2017/01/22 16:53<br />\nTo: test-services-area<br />\n"
    "Subject: Creating test errand via API<br />\nQuestion: <br />\n<br />\n"
    "Test message body at Sun, 22 Jan 2017 16:53:04 +0800<br />\n<br />"
    "--------- Cention Contact Center - Original message - End ---------</div>"
)


def _link(base: str, kind: str, id_: int, form: str) -> dict[str, Any]:
    href = f"{base}/capi/json/{kind}/{id_}"
    return {"self": {"href": href} if form == "href" else href}


def sample_callback(
    secret: str | None = SECRET, link_form: str = "href", base: str = SAMPLE_BASE
) -> dict[str, Any]:
    """The callback payload of the vendor documentation, field for field.

    `link_form` "href" keeps the sample's `{"href": ...}` links; "string" uses the other
    documented form, a plain string.
    """
    def attachment(id_: int) -> dict[str, Any]:
        return {"type": "c3_response_attachments", "id": str(id_), "attributes": {"c3_id": id_},
                "links": _link(base, "c3_response_attachments", id_, link_form)}

    document: dict[str, Any] = {
        "data": {
            "type": "c3_callback_answer_errands",
            "id": "76",
            "attributes": {"event": 1},
            "relationships": {"errand": {"data": {"type": "c3_answer_errands", "id": "2256"}}},
        },
        "included": [
            attachment(789),
            attachment(790),
            {"type": "c3_area_archives", "id": "12", "attributes": {"c3_id": 12},
             "links": _link(base, "c3_area_archives", 12, link_form)},
            {
                "type": "c3_answer_errands",
                "id": "2256",
                "attributes": {
                    "answer": {
                        "c3_id": 1189,
                        "response": {
                            "body": "text",
                            "c3_id": 3304,
                            "html_body": SAMPLE_HTML,
                            "subject": "Creating test errand via API",
                            "to": [{"c3_id": 279, "email_address": "david.liew@test.se",
                                    "name": "David Liew"}],
                        },
                    },
                    "c3_id": 2256,
                    "service": {"c3_id": 16, "name": "Form", "type": 19},
                },
                "relationships": {
                    "attachments": {"data": [
                        {"type": "c3_response_attachments", "id": "788"},
                        {"type": "c3_response_attachments", "id": "789"},
                        {"type": "c3_response_attachments", "id": "790"},
                    ]},
                    "embedded_archives": {"data": [{"type": "c3_area_archives", "id": "12"}]},
                },
            },
            attachment(788),
        ],
    }
    if secret is not None:
        document["meta"] = {"api_secret": secret}
    return document


def attachment_reply(id_: int, name: str) -> dict[str, Any]:
    return {"data": {"id": str(id_), "type": "c3_response_attachments", "attributes": {
        "attachment": {"c3_id": id_, "content_type": "text/plain", "name": name}}}}


ATTACHMENT_URL = re.compile(r"^http://localhost/capi/json/c3_response_attachments/(\d+)")


def mock_attachments(mock: aioresponses, names: dict[int, str]) -> None:
    for id_, name in names.items():
        mock.get(re.compile(rf"^http://localhost/capi/json/c3_response_attachments/{id_}\b"),
                 payload=attachment_reply(id_, name))


def make_handler(tmp_path: Path, base_url: str = SAMPLE_BASE, token: str = "jwt-attach",
                 max_body_bytes: int = 1024 * 1024) -> CallbackHandler:
    registry = ErrandRegistry(open_store(f"sqlite:///{tmp_path / 'errands.sqlite3'}"))
    return CallbackHandler(api_secret=SECRET, registry=registry,
                           fetcher=AttachmentFetcher(base_url, token, timeout=5),
                           max_body_bytes=max_body_bytes)


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize("link_form", ["href", "string"])
def test_the_documented_sample_parses_with_either_link_form(link_form: str) -> None:
    answer = parse_callback(sample_callback(link_form=link_form))

    assert (answer.callback_id, answer.errand_id, answer.event) == ("76", "2256", 1)
    assert answer.subject == "Creating test errand via API"
    assert answer.attachments == tuple(
        AttachmentLink(str(i), f"http://localhost/capi/json/c3_response_attachments/{i}")
        for i in (788, 789, 790)
    )


def test_the_answer_text_keeps_links_and_drops_markup_and_the_quoted_question() -> None:
    text = parse_callback(sample_callback()).text

    assert text.startswith("sadadad")
    assert ("optionONE (http://localhost/errands/satisfaction/meter/-/answer/4d6a49314e673d3d/"
            "1b7f046991d401785264fc4d35ca3db6)") in text
    assert "optionTWO (http://localhost/" in text
    assert "<" not in text and "cid:" not in text and "font-family" not in text
    assert "Original message" not in text
    assert "david.liew" not in text and "Test message body" not in text


def test_the_plain_body_is_used_when_there_is_no_html() -> None:
    assert answer_text("Hello,\r\nyour order ships today.", "") == (
        "Hello,\nyour order ships today.")
    assert answer_text("Hi\n--------- Cention Contact Center - Original message ---------\n"
                       "Question: secret", None) == "Hi"


def _broken(change: Any) -> dict[str, Any]:
    document = sample_callback()
    change(document)
    return document


MALFORMED = {
    "no data": lambda d: d.pop("data"),
    "data is a list": lambda d: d.update(data=[d["data"]]),
    "event is not a number": lambda d: d["data"]["attributes"].update(event="answer"),
    "no attributes": lambda d: d["data"].pop("attributes"),
    "wrong type": lambda d: d["data"].update(type="c3_new_errands"),
    "no errand relationship": lambda d: d["data"].pop("relationships"),
    "errand not included": lambda d: d.update(included=d["included"][:3]),
    "answer without response": lambda d: d["included"][3]["attributes"]["answer"].pop(
        "response"),
    "included is not a list": lambda d: d.update(included={"type": "x"}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_documents_are_refused(case: str) -> None:
    with pytest.raises(MalformedReply):
        parse_callback(_broken(MALFORMED[case]))


def test_secret_is_compared_exactly() -> None:
    assert secret_matches(sample_callback(), SECRET)
    assert not secret_matches(sample_callback(secret="1234567"), SECRET)
    assert not secret_matches(sample_callback(secret=None), SECRET)
    assert not secret_matches({"meta": {"api_secret": 123456}}, SECRET)
    assert not secret_matches({"meta": "123456"}, SECRET)
    assert not secret_matches(["123456"], SECRET)
    assert not secret_matches({"meta": {"api_secret": ""}}, "")  # an empty secret never opens


# -- attachments -------------------------------------------------------------------------


async def test_attachment_names_are_fetched_with_the_token_from_the_cention_host() -> None:
    fetcher = AttachmentFetcher("http://localhost/s/demo", "jwt-attach")
    links = parse_callback(sample_callback(link_form="string")).attachments
    with aioresponses() as mock:
        mock_attachments(mock, {788: "invoice.pdf", 789: "label.txt", 790: "photo.png"})
        names = await fetcher.names(links)
        requests = {str(url): call[0].kwargs for url, call in
                    ((key[1], value) for key, value in mock.requests.items())}

    assert names == ["invoice.pdf", "label.txt", "photo.png"]
    assert len(requests) == 3
    for kwargs in requests.values():
        assert kwargs["headers"]["Authorization"] == "Bearer jwt-attach"
        assert kwargs["allow_redirects"] is False


@pytest.mark.parametrize("url", [
    "http://evil.example.com/capi/json/c3_response_attachments/788",
    "http://localhost.evil.example.com/capi/json/c3_response_attachments/788",
    "http://localhost@evil.example.com/capi/json/c3_response_attachments/788",
    "http://user@localhost/capi/json/c3_response_attachments/788",
    "https://localhost/capi/json/c3_response_attachments/788",
    "http://localhost:8080/capi/json/c3_response_attachments/788",
    "file:///etc/passwd",
    "//localhost/capi/json/c3_response_attachments/788",
    "not a url",
])
async def test_links_off_the_cention_host_are_refused_and_never_fetched(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = AttachmentFetcher("http://localhost/s/demo", "jwt-attach")
    caplog.set_level(logging.WARNING)
    with aioresponses() as mock:
        names = await fetcher.names([AttachmentLink("788", url)])
        assert not mock.requests
    assert names == []
    assert "refused attachment 788" in caplog.text


async def test_a_foreign_link_does_not_stop_the_others() -> None:
    fetcher = AttachmentFetcher("http://localhost", "jwt-attach")
    links = [AttachmentLink("1", "http://evil.example.com/capi/json/c3_response_attachments/1"),
             AttachmentLink("788", "http://localhost/capi/json/c3_response_attachments/788")]
    with aioresponses() as mock:
        mock_attachments(mock, {788: "invoice.pdf"})
        assert await fetcher.names(links) == ["invoice.pdf"]
        assert [str(key[1].host) for key in mock.requests] == ["localhost"]


async def test_failed_or_redirected_attachments_are_skipped() -> None:
    fetcher = AttachmentFetcher("http://localhost", "jwt-attach")
    links = parse_callback(sample_callback()).attachments
    with aioresponses() as mock:
        mock.get(re.compile(r".*/788\b"), status=302,
                 headers={"Location": "http://evil.example.com/steal"})
        mock.get(re.compile(r".*/789\b"), status=500)
        mock.get(re.compile(r".*/790\b"), payload=attachment_reply(790, "photo\n.png"))
        assert await fetcher.names(links) == ["photo .png"]
        assert all(key[1].host == "localhost" for key in mock.requests)


async def test_without_a_base_url_or_token_nothing_is_fetched() -> None:
    links = parse_callback(sample_callback()).attachments
    with aioresponses() as mock:
        assert await AttachmentFetcher("", "jwt-attach").names(links) == []
        assert await AttachmentFetcher("http://localhost", "").names(links) == []
        assert not mock.requests


# -- the whole request -------------------------------------------------------------------


async def test_a_known_errand_is_accepted_with_its_owner_and_attachment_names(
    tmp_path: Path,
) -> None:
    handler = make_handler(tmp_path)
    await handler.registry.record("2256", "conversation-42", "socketio")
    with aioresponses() as mock:
        mock_attachments(mock, {788: "a.txt", 789: "b.txt", 790: "c.txt"})
        outcome = await handler.handle(body(sample_callback()))

    assert (outcome.status, outcome.result, outcome.deliver) == (200, "accepted", True)
    assert outcome.owner is not None and outcome.owner.sender_id == "conversation-42"
    assert outcome.answer is not None and outcome.answer.errand_id == "2256"
    assert outcome.attachment_names == ("a.txt", "b.txt", "c.txt")


async def test_a_repeated_callback_is_delivered_once(tmp_path: Path) -> None:
    handler = make_handler(tmp_path)
    await handler.registry.record("2256", "conversation-42", None)
    with aioresponses() as mock:
        mock_attachments(mock, {788: "a.txt", 789: "b.txt", 790: "c.txt"})
        first = await handler.handle(body(sample_callback()))
        during = await handler.handle(body(sample_callback()))
        assert len(mock.requests) == 3  # names fetched for the first delivery only
    assert (first.result, first.deliver) == ("accepted", True)
    # While the first delivery runs, a repeat is told to come back (it may yet fail).
    assert (during.status, during.result, during.deliver) == (503, "in_progress", False)

    await handler.delivery_failed(first)  # Rasa could not process it: the claim is released
    with aioresponses() as mock:
        mock_attachments(mock, {788: "a.txt", 789: "b.txt", 790: "c.txt"})
        retried = await handler.handle(body(sample_callback()))
    assert (retried.result, retried.deliver) == ("accepted", True)

    await handler.delivery_done(retried)  # processed by Rasa: now a repeat is a duplicate
    after = await handler.handle(body(sample_callback()))
    assert (after.status, after.result, after.deliver) == (200, "duplicate", False)


async def test_callbacks_without_an_id_are_never_taken_for_duplicates(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, token="")
    await handler.registry.record("2256", "conversation-42", None)
    document = sample_callback()
    document["data"].pop("id")
    results = [(await handler.handle(body(document))).result for _ in range(2)]
    assert results == ["accepted", "accepted"]


@pytest.mark.parametrize("document", [
    sample_callback(secret="654321"),
    sample_callback(secret=None),
    sample_callback(secret=""),
    {**sample_callback(), "meta": {"api_secret": ["123456"]}},
])
async def test_a_wrong_or_missing_secret_is_unauthorized(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    handler = make_handler(tmp_path)
    await handler.registry.record("2256", "conversation-42", None)
    with aioresponses() as mock:
        outcome = await handler.handle(body(document))
        assert not mock.requests
    assert (outcome.status, outcome.result, outcome.deliver) == (401, "unauthorized", False)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'{"meta": null}'])
async def test_a_body_without_a_readable_secret_is_unauthorized(tmp_path: Path,
                                                                raw: bytes) -> None:
    outcome = await make_handler(tmp_path).handle(raw)
    assert (outcome.status, outcome.result) == (401, "unauthorized")


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_document_with_the_right_secret_is_a_bad_request(
    tmp_path: Path, case: str
) -> None:
    handler = make_handler(tmp_path)
    await handler.registry.record("2256", "conversation-42", None)
    outcome = await handler.handle(body(_broken(MALFORMED[case])))
    assert (outcome.status, outcome.result, outcome.deliver) == (400, "malformed", False)


async def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, max_body_bytes=1000)
    document = sample_callback()
    assert (await handler.handle(body(document))).status == 413
    assert (await handler.handle(None)).status == 413


async def test_an_unknown_errand_is_acknowledged_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with aioresponses() as mock:
        outcome = await make_handler(tmp_path).handle(body(sample_callback()))
        assert not mock.requests
    assert (outcome.status, outcome.result, outcome.deliver) == (200, "unknown_errand", False)
    assert "errand 2256 is not one of this bot's errands" in caplog.text


async def test_other_events_are_acknowledged_and_ignored(tmp_path: Path) -> None:
    handler = make_handler(tmp_path)
    await handler.registry.record("2256", "conversation-42", None)
    document = copy.deepcopy(sample_callback())
    document["data"]["attributes"]["event"] = 2
    document["data"].pop("relationships")
    outcome = await handler.handle(body(document))
    assert (outcome.status, outcome.result, outcome.deliver) == (200, "ignored", False)


async def test_the_secret_never_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = make_handler(tmp_path)
    await handler.registry.record("2256", "conversation-42", None)
    for document in (sample_callback(), sample_callback(secret="654321"),
                     _broken(MALFORMED["no data"])):
        with aioresponses() as mock:
            mock_attachments(mock, {788: "a.txt", 789: "b.txt", 790: "c.txt"})
            await handler.handle(body(document))
    assert SECRET not in caplog.text and "654321" not in caplog.text
    assert "jwt-attach" not in caplog.text


def test_a_handler_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CallbackHandler(api_secret="", registry=ErrandRegistry(str(tmp_path / "r.sqlite3")),
                        fetcher=AttachmentFetcher("", ""))


async def test_read_limited_stops_as_soon_as_the_limit_is_passed() -> None:
    pulled: list[int] = []

    async def chunks(count: int) -> Any:
        for index in range(count):
            pulled.append(index)
            yield b"x" * 100

    assert await read_limited(chunks(3), 300) == b"x" * 300
    pulled.clear()
    assert await read_limited(chunks(1000), 300) is None
    assert pulled == [0, 1, 2, 3]


# -- body and html_body as the field table types them (objects) --------------------------
def _with_response(**response: Any) -> dict[str, Any]:
    document = sample_callback()
    document["included"][3]["attributes"]["answer"]["response"].update(response)
    return document


@pytest.mark.parametrize("body, html_body, expected", [
    ("Plain answer", "", "Plain answer"),
    ({"text": "Plain answer"}, {"html": ""}, "Plain answer"),
    ({"content": "Plain answer"}, None, "Plain answer"),
    ("ignored", {"value": "<p>Rich <b>answer</b></p>"}, "Rich answer"),
    (["Line one", {"text": "line two"}], None, "Line one\nline two"),
    ({"a": "x", "b": "y"}, None, ""),  # two candidates and no known key: no guessing
    (42, None, ""),
])
def test_a_body_given_as_an_object_or_a_string_is_read(
    body: Any, html_body: Any, expected: str
) -> None:
    answer = parse_callback(_with_response(body=body, html_body=html_body))
    assert answer.text == expected


def test_an_answer_of_attachments_only_has_no_text_to_show() -> None:
    answer = parse_callback(_with_response(body="", html_body={"html": " "}))
    assert answer.text == ""
    assert len(answer.attachments) == 3

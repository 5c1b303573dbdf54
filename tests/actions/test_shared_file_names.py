"""The names agents see for the files a customer shared: taken from the URL's path only
(never its query, where a signed URL keeps its signature), decoded and made safe."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker

from rasa_service_desk.actions.transcript import file_name_from_url, shared_files
from tests.support.rasa_payloads import user_event, webhook_payload


def tracker_with(attachments: list[Any]) -> Tracker:
    events = [user_event("here is my receipt", metadata={"attachments": attachments})]
    return Tracker.from_dict(webhook_payload("action_benti_create_ticket", events=events)
                             ["tracker"])


def test_signed_url_names_the_file_without_its_signature() -> None:
    signed = ("https://bucket.s3.eu-west-1.amazonaws.com/uploads/Receipt%20March.pdf"
              "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101"
              "&X-Amz-Signature=5ec2e7a0b1c2d3#page=2")

    [item] = shared_files(tracker_with([signed]))

    assert item == {"url": signed, "name": "Receipt March.pdf"}


@pytest.mark.parametrize(("url", "name"), [
    ("https://files.example.com/a/b/report.pdf", "report.pdf"),
    ("https://files.example.com/download/?file=report.pdf", "download"),
    ("https://files.example.com/", "attachment"),
    ("https://files.example.com/..%2F..%2Fetc%2Fpasswd", "passwd"),
    ("https://files.example.com/x/%2E%2E", "attachment"),
    ("https://files.example.com/evil%00name%0A.txt", "evilname.txt"),
    ("https://files.example.com/a%3Cb%3E%3A%22c%22.txt", "a_b___c_.txt"),
    ("https://files.example.com/%E2%82%AC%20invoice.pdf", "€ invoice.pdf"),
    ("https://files.example.com/" + "n" * 300 + ".pdf", "n" * 116 + ".pdf"),
])
def test_name_is_the_decoded_and_sanitised_last_path_segment(url: str, name: str) -> None:
    assert file_name_from_url(url) == name


def test_a_name_the_channel_gives_is_kept_but_made_safe() -> None:
    files = shared_files(tracker_with([
        {"url": "https://files.example.com/1?sig=abc", "name": "Scan 1.png"},
        {"url": "https://files.example.com/2?sig=abc", "name": "../../etc/shadow"},
        {"url": "https://files.example.com/3.pdf?sig=abc", "name": " .. "},
        {"url": 42},
    ]))
    assert [f["name"] for f in files] == ["Scan 1.png", "shadow", "3.pdf"]

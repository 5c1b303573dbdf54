"""Library answers are HTML; customers must get readable text with working links and nothing
of the markup, scripts or styles."""

from __future__ import annotations

from rasa_service_desk.clients.cention.html import html_to_text


def test_markup_scripts_and_styles_are_removed_and_links_kept() -> None:
    html = (
        "<html><head><title>Page</title><style>p { color: red; }</style></head><body>"
        "<h2>Reset</h2><p>Open <a href=\"https://example.com/reset?a=1&amp;b=2\">the reset "
        "page</a> &amp; follow the <b>steps</b>.</p><script>track('reset')</script>"
        "<ul><li>One</li><li>Two</li></ul></body></html>"
    )
    text = html_to_text(html)
    assert text == (
        "Reset\n\nOpen the reset page (https://example.com/reset?a=1&b=2) & follow the steps."
        "\n\n  * One\n  * Two"
    )


def test_unsafe_links_keep_only_their_text() -> None:
    text = html_to_text(
        "<p><a href=\"javascript:alert(1)\">click me</a> <a href=\"cid:attachment_788\">logo</a>"
        " <a href=\"/relative\">help</a></p>"
    )
    assert text == "click me logo help"


def test_mail_links_and_bare_urls_read_naturally() -> None:
    text = html_to_text(
        "<p><a href=\"mailto:help@example.com\">write to us</a> or see "
        "<a href=\"https://example.com/faq\">https://example.com/faq</a></p>"
    )
    assert text == "write to us (help@example.com) or see https://example.com/faq"


def test_entities_line_breaks_and_markdown_characters_are_plain() -> None:
    text = html_to_text("<div dir=\"ltr\">11th body<br/>2nd line&nbsp;&rarr; 1. *star*</div>"
                        "<p>1. first</p><p>- dash</p>")
    assert text == "11th body\n2nd line → 1. *star*\n\n1. first\n\n- dash"


def test_cention_answer_sample_becomes_readable() -> None:
    # The shape of an agent's answer in the vendor's callback sample.
    html = (
        "<div style=\"font-size:;font-family:;\"><p>sadadad<img src=\"cid:12\" /></p></div>"
        "<a href=\"http://localhost/errands/satisfaction/meter/-/answer/4d6a/1b7f\" "
        "style=\"font-family:Verdana;\">optionONE</a><br />"
        "--------- Cention Contact Center - Original message ---------<br />\n"
        "Errand: #2256-1<br />"
    )
    text = html_to_text(html)
    assert "<" not in text and "cid:" not in text and "font-family" not in text
    assert "optionONE (http://localhost/errands/satisfaction/meter/-/answer/4d6a/1b7f)" in text
    assert "Errand: #2256-1" in text


def test_empty_input() -> None:
    assert html_to_text("") == ""
    assert html_to_text("<p> </p>") == ""

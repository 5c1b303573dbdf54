"""Library answers are HTML written for a web page; chat channels need plain text.

`html2text` does the parsing (it drops `<script>`, `<style>` and `<head>` content and turns
block markup into line breaks); this module then rewrites its Markdown into text any channel
can show: links become `text (url)`, and only web, mail and phone links survive, so a
`javascript:` or `cid:` link can never reach a customer.
"""

from __future__ import annotations

import re
from functools import lru_cache

import html2text

SAFE_SCHEMES = ("http://", "https://", "mailto:", "tel:")

_LINK = re.compile(r"\[((?:\\.|[^\]\\])*)\]\(((?:\\.|[^\s)\\])*)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")
_HEADING = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_TABLE_RULE = re.compile(r"^[\s|:-]*-{3,}[\s|:-]*$", re.MULTILINE)
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")


def _converter() -> html2text.HTML2Text:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # the channel wraps lines, not us
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    converter.inline_links = True
    converter.protect_links = False
    converter.single_line_break = False
    return converter


def _unescape(text: str) -> str:
    return _ESCAPE.sub(r"\1", text)


def _link(match: re.Match[str]) -> str:
    text = _unescape(match.group(1)).strip()
    url = _unescape(match.group(2)).strip()
    if not url.lower().startswith(SAFE_SCHEMES):
        return text
    shown = url.split(":", 1)[1] if url.lower().startswith(("mailto:", "tel:")) else url
    if not text or text in (url, shown):
        return shown
    return f"{text} ({shown})"


def html_to_text(html: str) -> str:
    """Chat-friendly plain text of an HTML fragment or document."""
    if not html or not html.strip():
        return ""
    markdown = _converter().handle(html)
    text = _AUTOLINK.sub(r"\1", markdown)
    parts: list[str] = []
    last = 0
    for match in _LINK.finditer(text):
        parts.append(_unescape(text[last:match.start()]))
        parts.append(_link(match))
        last = match.end()
    parts.append(_unescape(text[last:]))
    text = "".join(parts).replace("\u00a0", " ")
    text = _HEADING.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


#: `html_to_text` for library content, cached (bounded): the same questions and answers come
#: back in search after search, and parsing their HTML was the largest cost of a library
#: answer in the action server. Not for agents' answers (each is new, and personal).
library_text = lru_cache(maxsize=2048)(html_to_text)

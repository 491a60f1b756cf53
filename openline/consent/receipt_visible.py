"""What a receipt says to a human: the signed facts, and whether a printed receipt still shows them.

The HTML receipt carries its signed JSON in a ``<script>`` element; a reader only sees the
text around it. Anyone can edit that text (state, IP, date) and leave the JSON alone, and
the signature still verifies. So the check page shows the facts from the *signed* payload,
and for an HTML receipt it re-renders the receipt from the signed payload with the same
template and compares the visible text, line by line of its ``<dt>``/``<dd>`` pairs.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from django.template.loader import render_to_string

_HIDDEN = {"script", "style", "template", "head", "title"}


def _text(value: object, default: str = "—") -> str:
    if value is None or value == "":
        return default
    return str(value)


def _member(document: dict, key: str) -> dict:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def signed_facts(signed: dict) -> list[tuple[str, str]]:
    """Return (label, value) pairs of what the signed receipt states, for a human to read."""
    notice = _member(signed, "notice")
    event = _member(signed, "event")
    extra = _member(signed, "openline")
    ip = extra.get("ip")
    ip_text = (
        str(ip) if ip else f"none ({_text(extra.get('ip_missing_reason'), 'reason not known')})"
    )
    return [
        ("State", _text(signed.get("state"))),
        ("Date (UTC)", _text(signed.get("timestamp"))),
        ("Client (piiPrincipalId)", _text(signed.get("piiPrincipalId"))),
        ("Consent", _text(notice.get("name"))),
        ("Version", _text(notice.get("version"))),
        ("Language", _text(notice.get("language") or signed.get("language"))),
        ("IP", ip_text),
        ("Address", _text(extra.get("address"))),
        ("Method", _text(signed.get("collectionMethod"))),
        ("Origin", _text(event.get("origin"))),
    ]


class _VisibleText(HTMLParser):
    """Collect the visible text, and the text of each ``<dt>``/``<dd>``, outside hidden elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.chunks: list[str] = []
        self.pairs: list[tuple[str, str]] = []
        self._cell: str | None = None  # "dt" or "dd" while inside one
        self._cell_text: list[str] = []
        self._label = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in ("dt", "dd") and not self.hidden:
            self._close_cell()
            self._cell, self._cell_text = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in ("dt", "dd", "dl"):
            self._close_cell()

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        self.chunks.append(data)
        if self._cell is not None:
            self._cell_text.append(data)

    def _close_cell(self) -> None:
        if self._cell is None:
            return
        text = _squash("".join(self._cell_text))
        if self._cell == "dt":
            self._label = text
        else:
            self.pairs.append((self._label, text))
        self._cell = None

    def close(self) -> None:
        super().close()
        self._close_cell()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _read(html: str) -> _VisibleText:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser


def visible_differences(uploaded_html: str, signed: dict, token: str, kid: str) -> list[str]:
    """Name what the visible text of ``uploaded_html`` shows differently from the signed receipt."""
    expected_html = render_to_string(
        "consent/receipt.html", {"receipt": {**signed, "jws": token}, "css": "", "kid": kid}
    )
    expected, uploaded = _read(expected_html), _read(uploaded_html)
    want: dict[str, list[str]] = {}
    for label, value in expected.pairs:
        want.setdefault(label, []).append(value)
    got: dict[str, list[str]] = {}
    for label, value in uploaded.pairs:
        got.setdefault(label, []).append(value)
    differing = [label for label in want if want[label] != got.get(label)]
    differing += [label for label in got if label not in want]
    if differing:
        return differing
    if _squash("".join(expected.chunks)) != _squash("".join(uploaded.chunks)):
        return ["other visible text"]
    return []

"""JSON from clients, parsed so that what is accepted can also be stored and sent back.

Python's ``json`` recurses once per nesting level (9,000 nested arrays raise
RecursionError), accepts ``NaN`` and ``Infinity`` (which no database's JSON type and no
other JSON parser accepts) and decodes ``"\\ud83d"`` into a lone surrogate, which
PostgreSQL, the UTF-8 encoder and every websocket refuse later, as a 500 or a dropped
socket. ``loads`` refuses all of them up front with ``UnsafeJson``: a code and a message
fit to show the client.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
# Strings (with their escapes) are skipped, so brackets inside them do not count. The
# possessive repeats and the unterminated-string ending keep this linear on any input.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


class UnsafeJson(ValueError):
    """JSON Openline will not accept; ``code`` is machine-readable, the text is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def nesting_depth(text: str) -> int:
    """Return the deepest bracket nesting of JSON text, without parsing it."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise UnsafeJson("bad_number", f"{name} is not a JSON number; send a finite number.")


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text; raise UnsafeJson if it is invalid, too deep, non-finite or not UTF-8."""
    if isinstance(data, bytes | bytearray):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsafeJson("bad_encoding", "Send JSON encoded as UTF-8.") from exc
    else:
        text = data
    if nesting_depth(text) > max_depth:
        raise UnsafeJson("too_deep", f"JSON can be nested at most {max_depth} levels deep.")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except UnsafeJson:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and integers longer than Python converts.
        raise UnsafeJson("bad_json", "This is not valid JSON.") from exc
    check(value)
    return value


def check(value: Any) -> None:
    """Raise UnsafeJson if a parsed value holds NUL, a lone surrogate or a non-finite number."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            bad = _BAD_CHAR.search(item)
            if bad and bad.group() == "\x00":
                raise UnsafeJson("bad_text", "Text cannot contain NUL (\\u0000) characters.")
            if bad:
                raise UnsafeJson(
                    "bad_text", "Text contains an unpaired surrogate (\\ud800-\\udfff)."
                )
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise UnsafeJson("bad_number", "Numbers must be finite (no NaN or Infinity).")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)

"""One JSON object from the body of a frame another process sent: the one decoding path of the
JSON-framed sockets (the link's control messages, wrsessd's IPC).

Strict where Python's json module is lenient, so that what it returns can be used, logged and sent on
without a surprise: it refuses NaN and the infinities (not JSON, though ``json`` reads them), numbers
too long for any field (``int()`` refuses more than 4,300 digits with a ValueError of its own, and
even below that a long one costs quadratic time), and strings holding half of a surrogate pair
(JSON can escape one, ``"\\ud800"``; no UTF-8 can hold it, so encoding it again would fail).
Every refusal is a :class:`JSONBodyError` whose ``reason`` completes a sentence such as
"the body …" or "message …".
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Longest number accepted, in characters: the largest field is 64 bits (20 digits and a sign).
MAX_NUMBER_CHARS = 30


class JSONBodyError(ValueError):
    """The body is not one acceptable JSON object; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        digits = len(text.lstrip("-"))
        raise JSONBodyError(f"has a number of {digits} digits (at most {MAX_NUMBER_CHARS} are accepted)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONBodyError(f"has a number too large for a float ({text[:40]})")
    return value


def _constant(name: str) -> Any:
    raise JSONBodyError(f"has {name}, which JSON does not allow")


def _unicode(obj: Any) -> None:
    """Every string (and key) must be encodable as UTF-8: no lone surrogates."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as err:
                bad = item[err.start]
                raise JSONBodyError(
                    f"has a lone surrogate (\\u{ord(bad):04x}) in a string, which is not Unicode text"
                ) from None
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def decode_object(body: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The JSON object in ``body`` (UTF-8), or :class:`JSONBodyError`."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as err:
        raise JSONBodyError(f"is not valid UTF-8 (byte {err.start})") from None
    try:
        obj = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except JSONBodyError:
        raise
    except RecursionError:
        raise JSONBodyError("is nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError, and anything else int() or float() refuse
        raise JSONBodyError(f"is not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise JSONBodyError("is not a JSON object")
    _unicode(obj)
    return obj

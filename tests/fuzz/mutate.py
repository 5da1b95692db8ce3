"""A structure-aware mutator for the JSON-framed protocols (the link's control messages, wrsessd's IPC,
wrsrvd's admin socket): valid messages in, hostile but well-framed messages out.

Byte flips alone rarely turn ``{"link_version": 2}`` into a 5,000-digit integer, a lone surrogate or
30,000 nested lists; this puts such values in the places a decoder checks. Half the time it leaves
the bytes to libFuzzer's own mutations instead (``atheris.Mutate``), which find the framing bugs.

An input is one option byte (the target reads it) followed by a stream of frames.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: JSON text a decoder must refuse or bound, never choke on.
HOSTILE: tuple[str, ...] = (
    "9" * 5000,
    "-" + "9" * 5000,
    "1" + "0" * 4300,
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "0",
    "-1",
    "-0",
    "2147483648",
    "4294967296",
    "18446744073709551616",
    "1.5",
    "1E2",
    "true",
    "false",
    "null",
    '""',
    '"\\u0000"',
    '"\\ud800"',
    '"x\\udfffy"',
    '"\\ud83d\\ude00"',
    '"\\u202e"',
    '"../../etc/passwd"',
    '"root\\n"',
    '"' + "x" * 20000 + '"',
    "[]",
    "{}",
    '["x"]',
    '[""]',
    "[" + ",".join(['"x"'] * 300) + "]",
    '{"type":"status"}',
    "[" * 5000 + "]" * 5000,
    '{"a":' * 3000 + "1" + "}" * 3000,
)

#: The same, by the kind of value they replace: a string field mostly gets hostile strings.
_STRINGS = tuple(t for t in HOSTILE if t.startswith('"'))
_NUMBERS = tuple(t for t in HOSTILE if t[:1] in "-0123456789NI")

_PLACEHOLDER = "\x00wayray-fuzz\x00"


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def hostile_for(value: Any, rng: random.Random) -> str:
    """A hostile token, most often one of the same kind as ``value``."""
    if rng.random() < 0.7:
        if isinstance(value, str):
            return rng.choice(_STRINGS)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return rng.choice(_NUMBERS)
    return rng.choice(HOSTILE)


@dataclass(frozen=True)
class Framing:
    """How a protocol cuts its stream into frames: a struct for the header whose first field is the
    body length (the link's also carries a type number)."""

    header: struct.Struct

    def split(self, data: bytes) -> tuple[list[tuple[tuple[int, ...], bytes]], bytes]:
        frames = []
        pos = 0
        while len(data) - pos >= self.header.size:
            fields = self.header.unpack_from(data, pos)
            end = pos + self.header.size + fields[0]
            if end > len(data):
                break
            frames.append((fields[1:], data[pos + self.header.size : end]))
            pos = end
        return frames, data[pos:]

    def join(self, frames: list[tuple[tuple[int, ...], bytes]], tail: bytes = b"") -> bytes:
        out = bytearray()
        for rest, body in frames:
            out += self.header.pack(len(body), *rest) + body
        return bytes(out + tail)


LINK = Framing(struct.Struct("<IH"))
IPC = Framing(struct.Struct("=I"))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    obj[head] = _set(obj[head], rest, value)
    return obj


def _with_token(obj: Any, path: tuple[Any, ...], token: str) -> bytes:
    text = json.dumps(_set(obj, path, _PLACEHOLDER), separators=(",", ":"), ensure_ascii=False)
    return text.replace(json.dumps(_PLACEHOLDER), token, 1).encode("utf-8", "surrogatepass")


def mutate_json(body: bytes, rng: random.Random, names: tuple[str, ...]) -> bytes:
    """One structural change to a JSON body (``names``: field or type names worth trying)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return rng.choice(HOSTILE).encode()
    if not isinstance(obj, dict) or rng.random() < 0.05:
        return rng.choice(HOSTILE).encode()
    op = rng.randrange(6)
    keys = list(obj)
    if op == 0 or not keys:  # a hostile value anywhere in the tree
        path = rng.choice(_paths(obj)[1:] or [()])
        return _with_token(obj, path, hostile_for(_get(obj, path), rng))
    if op == 1:  # a field missing
        del obj[rng.choice(keys)]
    elif op == 2:  # a field nobody declared (or a known name where it does not belong)
        key = rng.choice((*names, "sneaky", "", "\u0000"))
        return _with_token({**obj, key: 0}, (key,), rng.choice(HOSTILE))
    elif op == 3:  # another message's type, or a known name as a value
        key = "type" if "type" in obj and rng.random() < 0.7 else rng.choice(keys)
        obj[key] = rng.choice(names)
    elif op == 4:  # a field twice (JSON allows it; the last one wins)
        key = rng.choice(keys)
        text = json.dumps(obj, separators=(",", ":"))
        return (text[:-1] + f",{json.dumps(key)}:{rng.choice(HOSTILE)}}}").encode()
    else:  # a value of another field's type
        a, b = rng.choice(keys), rng.choice(keys)
        obj[a] = obj[b]
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=rng.random() < 0.5).encode(
        "utf-8", "surrogatepass"
    )


def mutator(
    framing: Framing, names: tuple[str, ...], byte_mutate: Callable[[bytes, int], bytes]
) -> Callable[[bytes, int, int], bytes]:
    """An atheris custom mutator: ``(data, max_size, seed) -> data``."""

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if len(data) < 1 or rng.random() < 0.5:
            return byte_mutate(data, max_size)
        try:
            return structural(data, max_size, rng)
        except (ValueError, RecursionError):  # a body this mutator cannot take apart
            return byte_mutate(data, max_size)

    def structural(data: bytes, max_size: int, rng: random.Random) -> bytes:
        option, stream = data[:1], data[1:]
        frames, tail = framing.split(stream)
        op = rng.randrange(10)
        if not frames or op < 6:
            if frames:
                i = rng.randrange(len(frames))
                rest, body = frames[i]
                frames[i] = (rest, mutate_json(body, rng, names))
            else:
                frames = [(tuple(0 for _ in framing.header.format[2:]), rng.choice(HOSTILE).encode())]
        elif op == 6:  # a frame twice
            frames.insert(rng.randrange(len(frames) + 1), rng.choice(frames))
        elif op == 7:  # a frame dropped, or two swapped
            if len(frames) > 1:
                i, j = rng.randrange(len(frames)), rng.randrange(len(frames))
                frames[i], frames[j] = frames[j], frames[i]
            else:
                frames.pop()
        elif op == 8:  # a frame's header changed: another type number (link), a length that lies
            i = rng.randrange(len(frames))
            rest, body = frames[i]
            if rest:
                frames[i] = ((rng.randrange(0, 20),), body)
            else:
                return (option + framing.join(frames[:i]) + framing.header.pack(
                    rng.choice((0, len(body) + 1, 0xFFFFFFFF, 1 << 20))) + body)[:max_size]  # fmt: skip
        else:  # the option byte
            option = bytes([rng.randrange(256)])
        out = option + framing.join(frames, tail)
        return out[:max_size]

    return mutate

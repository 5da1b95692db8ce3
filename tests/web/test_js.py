"""The page's JavaScript (wire.js, display.js) against wayray's Python: the messages it writes decode
with wayray.wire, and frames from wayray's own encoder decode in it to the same pixels with matching
checksums (node runs the page's modules; no browser needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from wayray.codec.encoder import Encoder
from wayray.codec.settings import EncoderSettings
from wayray.wire import (
    Channel,
    Close,
    FrameAck,
    Hello,
    Key,
    KeyframeRequest,
    PointerAxis,
    PointerButton,
    PointerMotion,
    Pong,
    TokenKind,
    decode_message,
    encode_body,
)
from wayray.wire.framing import parse_header

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (tools/apt-packages.txt)")
HERE = Path(__file__).parent


def run_node(frames: list[bytes]) -> dict[str, object]:
    done = subprocess.run(
        [str(NODE), str(HERE / "parity.mjs")],
        input=json.dumps({"frames": [f.hex() for f in frames]}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


def message(channel: Channel, data: str) -> object:
    raw = bytes.fromhex(data)
    msg_type, length = parse_header(raw)
    assert len(raw) == 6 + length
    return decode_message(channel, msg_type, raw[6:])


def test_what_the_page_writes_is_the_wire_and_what_the_encoder_makes_decodes_in_it_exactly() -> None:
    rng = np.random.default_rng(7)
    w, h = 200, 150
    fb = np.zeros((h, w), dtype=np.uint32)
    fb[:, :] = 0x00336699
    enc = Encoder(w, h, EncoderSettings(video=False))
    frames = []
    first = enc.encode(fb, [(0, 0, w, h)], now=0.0, force_keyframe=True)
    assert first is not None
    frames.append(first)
    # Text-like changes (RAW/XOR tiles), a filled rectangle, a scroll (COPY).
    fb[10:30, 10:90] = rng.integers(0, 1 << 24, (20, 80), dtype=np.uint32)
    frames.append(enc.encode(fb, [(10, 10, 80, 20)], now=0.1))
    fb[60:140, 100:190] = 0x00FFCC00
    frames.append(enc.encode(fb, [(100, 60, 90, 80)], now=0.2))
    fb[20:150, :] = fb[0:130, :].copy()
    frames.append(enc.encode(fb, [(0, 0, w, h)], now=0.3))
    fb[5:7, 5:150] ^= 0x00010101
    frames.append(enc.encode(fb, [(5, 5, 145, 2)], now=0.4))
    updates = [f for f in frames if f is not None]
    out = run_node([encode_body(u) for u in updates])

    results = out["results"]
    assert isinstance(results, list)
    assert [r["seq"] for r in results] == [u.seq for u in updates]
    assert all(r["inSync"] for r in results), results  # every checksum matched in the page
    used = {e for r in results for e in r["regions"]}
    assert used >= {1, 3}, used  # zstd tiles and fills at least
    page_fb = np.frombuffer(bytes.fromhex(str(out["fb"])), dtype="<u4").reshape(h, w)
    assert (page_fb == fb).all()
    assert out["crc"] == 0xCBF43926  # CRC-32's check value

    hello = message(Channel.CONTROL, str(out["hello"]))
    assert isinstance(hello, Hello)
    assert (hello.version_major, hello.version_minor) == (1, 2)
    assert hello.token == "badge-1" and hello.token_kind is TokenKind.BADGE
    assert hello.capabilities == frozenset({"display", "input", "cursor", "clipboard"})
    assert (hello.screen_width, hello.screen_height, hello.scale_120) == (1280, 720, 180)
    assert (hello.client_name, hello.client_version) == ("wayray-web", "0123456789abcdef")
    assert hello.access_key == "k" and hello.terminal_id == "ab" * 32
    inputs = out["input"]
    assert isinstance(inputs, list)
    channels = [Channel.INPUT] * 4 + [Channel.DISPLAY, Channel.CONTROL, Channel.CONTROL, Channel.CONTROL]
    decoded = [message(ch, d) for ch, d in zip(channels, inputs, strict=True)]
    assert isinstance(decoded[0], Key) and decoded[0].code == 30 and decoded[0].time_ms == 5
    assert isinstance(decoded[1], PointerMotion) and (decoded[1].x, decoded[1].y) == (10.5, 20.25)
    assert isinstance(decoded[2], PointerButton) and decoded[2].button == 0x110
    assert isinstance(decoded[3], PointerAxis) and decoded[3].value120 == 120
    assert isinstance(decoded[4], FrameAck) and (decoded[4].seq, decoded[4].decode_us) == (7, 1234)
    assert isinstance(decoded[5], KeyframeRequest)
    assert isinstance(decoded[6], Close) and decoded[6].reason == "bye"
    assert isinstance(decoded[7], Pong) and decoded[7].nonce == 99

"""wrsrvd's browser kiosk endpoint without a browser: the page over HTTPS, and a WebTransport
session (aioquic's HTTP/3, as tests/web/wtclient.py speaks it) that is a viewer like a native one —
real wrsrvd, real foot, real QUIC on loopback (docs/web-kiosk.md)."""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest

from tests.e2e.harness import Harness, WrServer, eventually
from tests.web.wtclient import KEYS, WTClient, fetch, web_json
from wayray.codec.decoder import Decoder
from wayray.wire import (
    ErrorCode,
    FrameAck,
    FrameUpdate,
    Key,
    KeyState,
)

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def web_server(harness: Harness) -> tuple[WrServer, int]:
    srv = harness.server(FOOT, extra=["--web-port", "0"])
    m = re.search(r"browser kiosk\s+https://localhost:(\d+)/", srv.banner)
    assert m, srv.banner
    return srv, int(m[1])


def rgb(fb: np.ndarray) -> np.ndarray:
    return np.stack([(fb >> 16) & 255, (fb >> 8) & 255, fb & 255], axis=-1).astype(np.uint8)


async def _open(port: int, info: dict[str, object], **kw: object) -> WTClient:
    client = WTClient(port)
    hashes = info["hashes"]
    assert isinstance(hashes, list)
    status = await client.open(hashes, path=f"/wayray?build={info['build']}", **kw)  # type: ignore[arg-type]
    assert status == 200
    return client


def test_the_page_is_served_over_https_with_the_servers_identity(harness: Harness) -> None:
    srv, port = web_server(harness)
    status, body, headers = fetch(f"https://127.0.0.1:{port}/", srv.fingerprint)
    assert status == 200
    info = web_json(port, srv.fingerprint)
    # The page carries the build wrsrvd refuses other pages' sessions by; it is never cached.
    assert f'content="{info["build"]}"'.encode() in body
    assert headers["Cache-Control"] == "no-store"
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    # The bundled decoder is there (built from the pinned npm package), with its licence.
    assert fetch(f"https://127.0.0.1:{port}/vendor/fzstd.mjs", srv.fingerprint)[0] == 200
    assert fetch(f"https://127.0.0.1:{port}/vendor/fzstd.LICENSE.txt", srv.fingerprint)[0] == 200
    # Two hashes (the certificate presented now and the next one), neither of them the identity's.
    hashes = info["hashes"]
    assert isinstance(hashes, list) and len(hashes) == 2
    assert srv.fingerprint.removeprefix("sha256:") not in hashes
    assert fetch(f"https://127.0.0.1:{port}/../etc/passwd", srv.fingerprint)[0] == 404


def test_a_webtransport_session_is_a_viewer_of_a_real_session(harness: Harness) -> None:
    srv, port = web_server(harness)
    info = web_json(port, srv.fingerprint)
    own = srv.own_server
    assert own is not None
    out = harness.home / "typed.txt"

    async def run() -> tuple[np.ndarray, str]:
        client = await _open(port, info)
        client.hello("web-badge-0001", access_key=own.key)
        decoder = Decoder()
        # The ServerHello is the wire's (the client's WireConnection checked it).
        end = time.monotonic() + 120
        while client.wire.server_hello is None:
            assert client.closed is None, client.closed.describe()
            assert time.monotonic() < end, "no ServerHello"
            await asyncio.sleep(0.02)
        server_hello = client.wire.server_hello

        async def frames(until: float) -> None:
            while time.monotonic() < until:
                try:
                    update = await client.next_message(
                        FrameUpdate, timeout=max(0.05, until - time.monotonic())
                    )
                except AssertionError:
                    if client.closed is not None:
                        raise
                    return
                decoder.apply(update)
                assert not decoder.needs_keyframe, decoder.desync_reason
                client.send(FrameAck(seq=update.seq, decode_us=0))

        await frames(time.monotonic() + 3)
        for ch in "echo through webtransport > typed.txt\n":  # foot starts in wrsrvd's directory, home
            if ch in KEYS:
                code = KEYS[ch]
            elif ch == ">":
                code = None
            else:
                code = {"/": 53, ".": 52}[ch]
            if code is None:  # '>' is Shift+'.'
                client.send(Key(code=42, state=KeyState.PRESSED, time_ms=0))
                client.send(Key(code=52, state=KeyState.PRESSED, time_ms=0))
                client.send(Key(code=52, state=KeyState.RELEASED, time_ms=0))
                client.send(Key(code=42, state=KeyState.RELEASED, time_ms=0))
                continue
            client.send(Key(code=code, state=KeyState.PRESSED, time_ms=0))
            client.send(Key(code=code, state=KeyState.RELEASED, time_ms=0))
        end = time.monotonic() + 60
        while not (out.exists() and out.read_text()):
            assert time.monotonic() < end, "the typed command did not run"
            await frames(time.monotonic() + 0.2)
        # The picture settles; the page's copy must then be the session's, pixel for pixel.
        session = srv.session()
        end = time.monotonic() + 60
        while True:
            await frames(time.monotonic() + 0.5)
            assert decoder.framebuffer is not None
            if (rgb(decoder.framebuffer) == srv.screenshot(session["id"])).all():
                break
            assert time.monotonic() < end, "the decoded picture never matched the session's"
        fb = decoder.framebuffer
        await client.aclose()
        assert server_hello.session_id == session["id"]
        assert {"display", "input"} <= server_hello.capabilities
        return fb, session["id"]

    fb, session_id = asyncio.run(run())
    assert out.read_text() == "through webtransport\n"
    # wrsrvd saw a viewer like any other: the session detaches when the page goes.
    eventually(lambda: srv.session()["state"] == "detached", "the session detached")
    assert fb.shape == (600, 800)


def test_sessions_from_other_origins_stale_pages_and_garbage_are_refused(harness: Harness) -> None:
    srv, port = web_server(harness)
    info = web_json(port, srv.fingerprint)
    hashes = info["hashes"]
    assert isinstance(hashes, list)
    own = srv.own_server
    assert own is not None

    async def status(path: str, origin: str | None = None) -> int:
        client = WTClient(port)
        try:
            return await client.open(hashes, path=path, origin=origin)
        finally:
            await client.aclose()

    async def run() -> None:
        good = f"/wayray?build={info['build']}"
        # A page of another site (it could know our hashes): 403.
        assert await status(good, origin="https://elsewhere.example") == 403
        # A page of another build, left open across an upgrade: 409 (the page reloads itself).
        assert await status("/wayray?build=0123456789abcdef") == 409
        assert await status("/not-wayray") == 404
        # A page retrying its refused CONNECT fills no log: one line a minute per status.
        for _ in range(4):
            assert await status("/wayray?build=0123456789abcdef") == 409
        # Garbage inside an accepted session: that session is closed with the wire's reason.
        garbage = await _open(port, info)
        garbage.send_raw(bytes([0]) + b"\xff\xff\xff\x7f\x01\x00")  # a control frame of 2 GiB
        closed = await garbage.wait_closed()
        assert closed.code == ErrorCode.FRAME_TOO_LARGE, closed.describe()
        await garbage.aclose()
        unknown = await _open(port, info)
        unknown.send_raw(bytes([9]))
        closed = await unknown.wait_closed()
        assert closed.code == ErrorCode.UNKNOWN_CHANNEL, closed.describe()
        await unknown.aclose()
        # ... and the server carries on: a good page gets its session.
        client = await _open(port, info)
        client.hello("web-badge-0002", access_key=own.key)
        update = await client.next_message(FrameUpdate)
        assert update.keyframe
        await client.aclose()
        # Without the access key: refused as a native viewer is.
        nokey = await _open(port, info)
        nokey.hello("web-badge-0003")
        closed = await nokey.wait_closed()
        assert closed.code == ErrorCode.ACCESS_DENIED, closed.describe()
        await nokey.aclose()

    asyncio.run(run())
    log = srv.log_text()
    assert "WebTransport refused (403)" in log and log.count("WebTransport refused (409)") == 1
    assert "web-badge" not in log

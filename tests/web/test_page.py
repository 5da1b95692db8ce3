"""The browser kiosk's page in Debian's Chromium (headless, over its DevTools pipe), served by a real
wrsrvd: it connects over WebTransport pinned by the certificate hashes, shows the session, and what
is typed on the page reaches foot; the canvas holds the session's picture (docs/web-kiosk.md)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import Harness, WrServer, eventually, png_pixels
from tests.web.browser import CHROMIUM, Browser, Page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (tools/apt-packages.txt)"
    ),
]

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def web_server(harness: Harness, *extra: str) -> tuple[WrServer, int, str]:
    srv = harness.server(FOOT, extra=["--web-port", "0", *extra])
    m = re.search(r"browser kiosk\s+https://localhost:(\d+)/.*spki-list=(\S+)\)", srv.banner)
    assert m, srv.banner
    return srv, int(m[1]), m[2]


def web_server_on(harness: Harness, web_port: int = 0) -> tuple[WrServer, int, str]:
    """A server whose browser kiosk has port ``web_port`` (0: one wrsrvd picks, free for TCP and
    UDP; a restarted one is then given the same, so that it serves the same page origin)."""
    srv = harness.server(FOOT, extra=["--web-port", str(web_port), "--no-video"])
    m = re.search(r"browser kiosk\s+https://localhost:(\d+)/.*spki-list=(\S+)\)", srv.banner)
    assert m and web_port in (0, int(m[1])), srv.banner
    return srv, int(m[1]), m[2]


def canvas_pixels(page: Page) -> np.ndarray:
    url = page.evaluate("document.getElementById('screen').toDataURL('image/png')")
    return png_pixels(base64.b64decode(url.split(",", 1)[1]))


def shows_session(page: Page, srv: WrServer, session_id: str) -> bool:
    """Whether the page's canvas is the session's picture, pixel for pixel (a canvas not sized yet,
    as after a reconnection, is not)."""
    canvas, picture = canvas_pixels(page), srv.screenshot(session_id)
    return canvas.shape == picture.shape and bool((canvas == picture).all())


def present_badge(page: Page, badge: str) -> None:
    # As a person does once the page is up (a page that is loading itself again has no kiosk yet).
    page.wait_for("window.wayray && window.wayray.state !== undefined", what="the kiosk running on the page")
    page.evaluate(f"document.getElementById('badge').value = {badge!r}")
    page.evaluate("document.getElementById('badge-form').requestSubmit()")


def test_the_page_shows_the_session_and_types_into_foot(harness: Harness, tmp_path: Path) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        assert page.evaluate("window.wayray.state") == "idle"
        # The standalone server wants its access key: the page keeps it once typed (as here).
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-page-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        session = srv.session()
        assert page.evaluate("window.wayray.sessionId") == session["id"]
        # foot's window comes after the first picture (the desktop's background): wait for it, as a
        # person would before typing.
        eventually(
            lambda: len(np.unique(canvas_pixels(page).reshape(-1, 3), axis=0)) > 2, "foot on the page"
        )
        page.send("Page.bringToFront")
        page.evaluate("document.getElementById('screen').focus()")
        page.type("echo typed in a browser > typed.txt\n")
        out = harness.home / "typed.txt"
        eventually(lambda: out.exists() and out.read_text(), "the command typed on the page ran")
        assert out.read_text() == "typed in a browser\n"

        eventually(
            lambda: shows_session(page, srv, session["id"]),
            "the page's canvas equal to the session's picture",
        )
        assert page.evaluate("window.wayray.mismatches") == 0


@pytest.mark.parametrize("script", ["kiosk.js", "input.js", "fzstd.mjs"])
def test_a_page_whose_script_failed_to_load_loads_again_and_serves(
    harness: Harness, tmp_path: Path, script: str
) -> None:
    # One of the page's scripts fails to load (a connection the server dropped: under load its TLS
    # handshake or request can outlast the page server's deadline). The kiosk must not stay dead,
    # showing "Present your badge" to a person whose badge then does nothing.
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    failed: dict[str, list[str]] = {}
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(
            f"https://127.0.0.1:{port}/", before=lambda p: failed.update(urls=p.fail_once(f"*/{script}"))
        )
        page.wait_for("window.wayray && window.wayray.state === 'idle'", what="the page running")
        assert [u.rsplit("/", 1)[1] for u in failed["urls"]] == [script]
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-reload-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        assert page.evaluate("window.wayray.sessionId") == srv.session()["id"]


def test_a_page_whose_first_load_lost_every_script_loads_again_and_serves(
    harness: Harness, tmp_path: Path
) -> None:
    # Every request of the first load fails but the document's, as when the network changes under a
    # loading page (Chromium aborts them with ERR_NETWORK_CHANGED): the page's own watcher of its
    # scripts must be in the document, or nothing is left to load the page again.
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    failed: dict[str, list[str]] = {}
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(
            f"https://127.0.0.1:{port}/", before=lambda p: failed.update(urls=p.fail_first_load())
        )
        page.wait_for("window.wayray && window.wayray.state === 'idle'", what="the page running")
        assert any(u.endswith("/kiosk.js") for u in failed["urls"]), failed["urls"]
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-reload-badge-2")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")


#: What Chromium's Keyboard Map API (navigator.keyboard.getLayoutMap) reports on a German keyboard:
#: the character each key types unshifted (dead keys: their accent).
GERMAN_LAYOUT_MAP = {
    **{f"Key{c.upper()}": c for c in "abcdefghijklmnopqrstuvwx"},
    "KeyY": "z", "KeyZ": "y",
    **{f"Digit{d}": d for d in "0123456789"},
    "Backquote": "^", "Minus": "ß", "Equal": "´", "BracketLeft": "ü", "BracketRight": "+",
    "Backslash": "#", "Semicolon": "ö", "Quote": "ä", "Comma": ",", "Period": ".", "Slash": "-",
    "IntlBackslash": "<",
}  # fmt: skip


def type_on_layout(page: Page, layout: str, text: str) -> None:
    """Types ``text`` as a person with a ``layout`` keyboard does: the keys (KeyboardEvent.code)
    that layout types each character with, Shift held where it needs it."""
    from wayray.wayland.xkb import Keymap, Modifier
    from wayray.web.keymaps import CODES

    keymap = Keymap.from_names(layout=layout)
    dom = {evdev: code for code, evdev in CODES.items()} | {57: "Space", 28: "Enter"}
    shift = {"code": "ShiftLeft", "key": "Shift", "windowsVirtualKeyCode": 16}
    for ch in text:
        found = keymap.keys_for_char(ch)
        assert found is not None and found[1] <= {Modifier.SHIFT}, f"{layout} types {ch!r} with {found}"
        evdev, mods = found
        held = Modifier.SHIFT in mods
        if held:
            page.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", "modifiers": 8, **shift})
        key = {"code": dom[evdev], "key": "Enter" if ch == "\n" else ch, "modifiers": 8 if held else 0}
        page.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r" if ch == "\n" else ch, **key})
        page.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})
        if held:
            page.send("Input.dispatchKeyEvent", {"type": "keyUp", **shift})


def test_a_german_keyboard_types_german_in_the_session(harness: Harness, tmp_path: Path) -> None:
    # The browser says its keyboard is German (here its Keyboard Map API is given a German system's
    # answer: headless Chromium always reports a US one); the page sends the session the German
    # keymap, so the keys a German user presses type what their labels say: z and y swapped, ü, ß.
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    german = (
        "navigator.keyboard.getLayoutMap = async () => "
        f"new Map(Object.entries({json.dumps(GERMAN_LAYOUT_MAP)}));"
    )
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(
            f"https://127.0.0.1:{port}/",
            before=lambda p: p.send("Page.addScriptToEvaluateOnNewDocument", {"source": german}),
        )
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-german-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        eventually(
            lambda: len(np.unique(canvas_pixels(page).reshape(-1, 3), axis=0)) > 2, "foot on the page"
        )
        page.send("Page.bringToFront")
        page.evaluate("document.getElementById('screen').focus()")
        type_on_layout(page, "de", "echo zyüß ZY > german.txt\n")
        out = harness.home / "german.txt"
        eventually(lambda: out.exists() and out.read_text(), "the command typed on the page ran")
        assert out.read_text() == "zyüß ZY\n"
        assert page.evaluate("window.wayray.keymap") == {"layout": "de", "variant": "", "how": "matched"}


def test_touch_taps_click_long_presses_right_click_and_two_fingers_scroll(
    harness: Harness, tmp_path: Path
) -> None:
    # weston-eventdemo logs the buttons and scrolling it receives; a touch screen's gestures on the
    # page (DevTools' Input.dispatchTouchEvent, as a touch screen's events come) must reach it as the
    # clicks and finger scrolling a person means.
    events = tmp_path / "events.txt"
    demo = f"exec stdbuf -oL weston-eventdemo --width=700 --height=500 --log-button --log-axis > {events}"
    srv = harness.server(["sh", "-c", demo], extra=["--web-port", "0", "--no-video"])
    m = re.search(r"browser kiosk\s+https://localhost:(\d+)/.*spki-list=(\S+)\)", srv.banner)
    assert m, srv.banner
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=m[2]) as browser:
        page = browser.open(f"https://127.0.0.1:{m[1]}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-touch-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        eventually(
            lambda: len(np.unique(canvas_pixels(page).reshape(-1, 3), axis=0)) > 2, "eventdemo on the page"
        )
        x, y = page.evaluate("[window.innerWidth / 2, window.innerHeight / 2]")

        def touch(kind: str, *points: tuple[float, float]) -> None:
            page.send(
                "Input.dispatchTouchEvent",
                {
                    "type": kind,
                    "touchPoints": [{"x": px, "y": py, "id": i} for i, (px, py) in enumerate(points)],
                },
            )

        def log() -> str:
            return events.read_text() if events.exists() else ""

        # A tap: the left button, pressed and released.
        touch("touchStart", (x, y))
        touch("touchEnd")
        eventually(lambda: "button: 272, state: released" in log(), "the tap's click in eventdemo")
        assert "button: 273" not in log()
        # A long press: the right button.
        touch("touchStart", (x, y))
        page.wait_for("new Promise(r => setTimeout(() => r(true), 1000))", what="a long press")
        touch("touchEnd")
        eventually(lambda: "button: 273, state: released" in log(), "the long press's right click")
        # Two fingers moving up: finger scrolling down (positive), then a stop; no button at all.
        before = log()
        touch("touchStart", (x - 40, y), (x + 40, y))
        for step in range(1, 6):
            touch("touchMove", (x - 40, y - 20 * step), (x + 40, y - 20 * step))
        touch("touchEnd")
        eventually(lambda: "axis: vertical" in log()[len(before) :], "two-finger scrolling in eventdemo")
        after = log()[len(before) :]
        values = [float(v) for v in re.findall(r"axis: vertical, value: (-?[\d.]+)", after)]
        assert values and all(v > 0 for v in values), after
        assert "button:" not in after, after


VIDEO = str(Path(__file__).parent.parent / "e2e" / "clients" / "video.py")


def test_an_animation_plays_as_h264_through_webcodecs_and_the_picture_is_exact_after(
    harness: Harness, tmp_path: Path
) -> None:
    # 8 s of animation, then still: the encoder ends its video stream and resends the rectangle losslessly.
    srv = harness.server([sys.executable, VIDEO, "8", "480", "360"], extra=["--web-port", "0"])
    m = re.search(r"browser kiosk\s+https://localhost:(\d+)/.*spki-list=(\S+)\)", srv.banner)
    assert m, srv.banner
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=m[2]) as browser:
        page = browser.open(f"https://127.0.0.1:{m[1]}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-video-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        # H264 is region encoding 4: decoded by the browser's VideoDecoder, drawn into the picture.
        page.wait_for("(window.wayray.regions || {})[4] >= 10", what="ten H.264 regions decoded on the page")
        session = srv.session()

        eventually(
            lambda: shows_session(page, srv, session["id"]),
            "the page's canvas equal to the session's picture once the animation stopped",
        )
        assert page.evaluate("window.wayray.mismatches") == 0
        assert page.evaluate("window.wayray.keyframeRequests") == 0


def _web_json_with(**changes: object) -> Callable[[bytes], bytes]:
    def change(body: bytes) -> bytes:
        return json.dumps({**json.loads(body), **changes}).encode()

    return change


def test_a_wrong_certificate_hash_a_stale_page_and_garbage_are_refused(
    harness: Harness, tmp_path: Path
) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    url = f"https://127.0.0.1:{port}/"
    with Browser.start(tmp_path, spki=spki) as browser:
        # Hashes that are not the server's (a forged /web.json, or a man in the middle on UDP): the
        # browser refuses the server's certificate; wrsrvd never sees a token.
        page = browser.open(url)
        page.rewrite("*web.json*", _web_json_with(hashes=["00" * 32]))
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-refused-badge-1")
        page.wait_for("window.wayray.state === 'reconnecting'", what="the page refused the server")
        assert "failed" in page.evaluate("window.wayray.reason")
        assert srv.sessions() == []
        assert "WebTransport session" not in srv.log_text()

        # A stale page: the server serves another build now; the page reloads itself instead of
        # speaking to a server it was not made for ...
        stale = browser.open(url)
        stale.evaluate("window.stale = true")
        stale.rewrite("*web.json*", _web_json_with(build="0123456789abcdef"))
        stale.evaluate("document.getElementById('browser-token').click()")
        stale.wait_for("window.stale === undefined", what="the stale page reloaded")
        # ... and a page that does not (an old page, or a script) is refused by wrsrvd: 409.
        fresh = browser.open(url)
        refused = fresh.evaluate(
            "(async () => { const info = await (await fetch('/web.json')).json();"
            " const hashes = info.hashes.map(h => ({algorithm: 'sha-256',"
            " value: new Uint8Array(h.match(/../g).map(x => parseInt(x, 16)))}));"
            " const wt = new WebTransport(location.origin + '/wayray?build=0123456789abcdef',"
            " {serverCertificateHashes: hashes});"
            " try { await wt.ready; return 'accepted'; } catch (e) { return 'refused: ' + e; } })()"
        )
        assert refused.startswith("refused"), refused
        assert "WebTransport refused (409)" in srv.log_text()

        # Garbage inside an accepted session: that session is closed with the wire's reason ...
        garbage = fresh.evaluate(
            "(async () => { const info = await (await fetch('/web.json')).json();"
            " const hashes = info.hashes.map(h => ({algorithm: 'sha-256',"
            " value: new Uint8Array(h.match(/../g).map(x => parseInt(x, 16)))}));"
            " const wt = new WebTransport(location.origin + info.path + '?build=' + info.build,"
            " {serverCertificateHashes: hashes}); await wt.ready;"
            " const s = await wt.createUnidirectionalStream(); const w = s.getWriter();"
            " await w.write(new Uint8Array([0, 0xff, 0xff, 0xff, 0x7f, 1, 0]));"
            " try { await wt.closed; return 'closed'; } catch (e) { return 'closed: ' + e; } })()"
        )
        assert garbage.startswith("closed"), garbage
        eventually(lambda: "FRAME_TOO_LARGE" in srv.log_text(), "wrsrvd's reason for closing the garbage")
        # ... and the server carries on: the page gets its session.
        present_badge(fresh, "web-refused-badge-2")
        fresh.wait_for("window.wayray.complete", what="a session after the refusals")
        assert len(srv.sessions()) == 1


def test_a_resized_browser_window_resizes_the_session(harness: Harness, tmp_path: Path) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-resize-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        before = srv.session()["output"]
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 800, "height": 600, "deviceScaleFactor": 1, "mobile": False},
        )
        eventually(
            lambda: srv.session()["output"][:2] == [800, 600], "the session's output at the page's new size"
        )
        assert before[:2] != [800, 600]
        page.wait_for(
            "document.getElementById('screen').width === 800 && window.wayray.complete",
            what="the page showing the new size",
        )
        session = srv.session()
        eventually(
            lambda: shows_session(page, srv, session["id"]),
            "the page's canvas equal to the resized session's picture",
        )


def test_the_page_follows_a_server_restart_back_to_its_session(harness: Harness, tmp_path: Path) -> None:
    # wrsrvd picks the port: one probed here could be taken (over TCP, too) by another suite's test
    # before wrsrvd binds it (it was, once, with two suites at once).
    srv, port, spki = web_server_on(harness)
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-restart-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        session_id = page.evaluate("window.wayray.sessionId")
        # wrsrvd dies; its session does not. The page says so and tries again, with backoff ...
        srv.signal(signal.SIGKILL)
        srv.wait()
        page.wait_for("window.wayray.state === 'reconnecting'", what="the page reconnecting")
        # ... and once a wrsrvd serves again on the same ports, the page is back in the same session.
        web_server_on(harness, port)
        page.wait_for(
            f"window.wayray.state === 'session' && window.wayray.sessionId === {session_id!r}"
            " && window.wayray.complete",
            what="the page back in its session",
        )
        assert page.evaluate("window.wayray.mismatches") == 0


def test_the_browser_hears_why_the_server_closed_a_session(harness: Harness, tmp_path: Path) -> None:
    # The page's WebTransport reports the wire's code and reason (the server's close capsule), not
    # only its Close message: a page that did not read the control stream in time still knows that
    # its session moved (and must not take it back) or that its access key is wrong.
    srv, port, spki = web_server(harness, "--no-video")
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        closed = page.evaluate(
            "(async () => {"
            " const { encode } = await import('/wire.js');"
            " const info = await (await fetch('/web.json')).json();"
            " const hashes = info.hashes.map(h => ({algorithm: 'sha-256',"
            " value: new Uint8Array(h.match(/../g).map(x => parseInt(x, 16)))}));"
            " const wt = new WebTransport(location.origin + info.path + '?build=' + info.build,"
            " {serverCertificateHashes: hashes}); await wt.ready;"
            " const w = (await wt.createUnidirectionalStream()).getWriter();"
            " const hello = encode.Hello({token: 'web-capsule-badge', tokenKind: 2, width: 800, height: 600,"
            " scale120: 120, build: info.build, accessKey: 'not-the-key', terminalId: ''});"
            " const bytes = new Uint8Array(1 + hello.length); bytes[0] = 0; bytes.set(hello, 1);"
            " await w.write(bytes);"
            " const end = await wt.closed; return [end.closeCode, end.reason]; })()"
        )
    assert closed[0] == 265, closed  # ACCESS_DENIED
    assert "access key is wrong" in closed[1]


def test_the_page_says_when_its_session_does_not_respond_and_comes_back(
    harness: Harness, tmp_path: Path
) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-hung-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        session = srv.session()
        pid = session["pid"]
        os.kill(pid, signal.SIGSTOP)  # the session's compositor hangs
        try:
            page.wait_for("window.wayray.state === 'not-responding'", what="the not-responding notice")
            notice = page.evaluate("document.getElementById('notice').textContent")
            assert notice.startswith("The session is not responding"), notice
            assert page.evaluate("window.wayray.sessionId") == session["id"]  # the connection stays
        finally:
            os.kill(pid, signal.SIGCONT)
        page.wait_for("window.wayray.state === 'session'", what="the session back")
        assert page.evaluate("document.getElementById('notice').hidden")
        eventually(
            lambda: shows_session(page, srv, session["id"]),
            "the page's canvas equal to the session's picture again",
        )


def test_a_badge_presented_while_its_session_hangs_says_so_and_gets_in_when_it_answers(
    harness: Harness, tmp_path: Path
) -> None:
    """The server refuses a badge while its session does not respond; the page must say that (not
    "Reconnecting…", as if the network were at fault) and get in by itself once the session answers."""
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-hung-badge-2")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        session = srv.session()
        pid = session["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            eventually(lambda: srv.session()["responding"] is False, "the server to find the session hung")
            # The kiosk starts again, as after a power cut; the old document is told from the new one
            # by a mark only the old one has.
            page.evaluate("window.beforeReload = true; location.reload()")
            page.wait_for(
                "!window.beforeReload && document.readyState === 'complete'", what="the page again"
            )
            present_badge(page, "web-hung-badge-2")
            page.wait_for("window.wayray.state === 'not-responding'", what="the not-responding notice")
            notice = page.evaluate("document.getElementById('notice').textContent")
            assert notice.startswith("The session is not responding"), notice
            assert "refused for now" in srv.log_text()  # the page was refused, not attached
        finally:
            os.kill(pid, signal.SIGCONT)
        page.wait_for("window.wayray.state === 'session'", what="the session, once it answers")
        assert page.evaluate("window.wayray.sessionId") == session["id"]
        eventually(
            lambda: shows_session(page, srv, session["id"]),
            "the page's canvas equal to the session's picture",
        )


def test_full_screen_at_a_click_and_the_session_follows_the_screen(harness: Harness, tmp_path: Path) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        page = browser.open(f"https://127.0.0.1:{port}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-full-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        before = srv.session()["output"][:2]
        # A person's click (full screen needs a user gesture; a script's click() is not one).
        box = page.evaluate(
            "(() => { const r = document.getElementById('fullscreen').getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            page.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )
        page.wait_for("document.fullscreenElement !== null", what="the page in full screen")
        assert page.evaluate("getComputedStyle(document.getElementById('fullscreen')).display") == "none"
        size = page.evaluate("[window.innerWidth, window.innerHeight]")
        assert size != before  # the browser's own bars are gone
        eventually(lambda: srv.session()["output"][:2] == size, "the session at the full screen's size")


def test_text_copied_in_the_session_reaches_the_browsers_clipboard(harness: Harness, tmp_path: Path) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        origin = f"https://127.0.0.1:{port}"
        # What a person allows a kiosk page (Chromium asks otherwise): reading and writing the clipboard.
        browser.send(
            "Browser.grantPermissions",
            {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        page = browser.open(f"{origin}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-clip-badge-1")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        eventually(
            lambda: len(np.unique(canvas_pixels(page).reshape(-1, 3), axis=0)) > 2, "foot on the page"
        )
        page.send("Page.bringToFront")
        page.evaluate("document.getElementById('screen').focus()")
        page.type("echo copied from the session | wl-copy\n")
        page.wait_for(
            "navigator.clipboard.readText().then(t => t === 'copied from the session\\n')",
            what="the session's clipboard text in the browser's clipboard",
        )


def test_text_copied_in_the_browser_reaches_the_sessions_clipboard(harness: Harness, tmp_path: Path) -> None:
    srv, port, spki = web_server(harness, "--no-video")
    key = srv.own_server
    assert key is not None
    with Browser.start(tmp_path, spki=spki) as browser:
        origin = f"https://127.0.0.1:{port}"
        browser.send(
            "Browser.grantPermissions",
            {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        page = browser.open(f"{origin}/")
        page.evaluate(f"localStorage.setItem('wayray.access-key', {key.key!r})")
        present_badge(page, "web-clip-badge-2")
        page.wait_for("window.wayray.complete", what="the session's picture, complete")
        eventually(
            lambda: len(np.unique(canvas_pixels(page).reshape(-1, 3), axis=0)) > 2, "foot on the page"
        )
        page.send("Page.bringToFront")
        # Copied elsewhere, then back to the page (it gets the focus): the session's clipboard has it.
        page.evaluate("navigator.clipboard.writeText('copied in the browser')")
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        page.evaluate("document.getElementById('screen').focus()")
        page.type("wl-paste > pasted.txt\n")
        out = harness.home / "pasted.txt"
        eventually(lambda: out.exists() and out.read_text(), "wl-paste's output")
        assert out.read_text().rstrip("\n") == "copied in the browser"

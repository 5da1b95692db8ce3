"""The browser kiosk next to xpra's HTML5 client (issue 16 §4): the same X11 program, the same headless
Chromium, the same measurements taken the same way in both pages.

    .venv/bin/python -m bench.web_vs_xpra [--keys 40] [--gap-ms 100] [--flood 8] [--loads 5]
                                          [--only wayray,xpra]

**WayRay**: ``wrsrvd --standalone --web-port 0 -- xterm ...`` (the session's Xwayland serves xterm);
the page connects with the browser's own terminal token (``?token=browser``). **xpra**: Debian's
xpra 3.1.3 (``apt-get install xpra``; the bench says so and stops if it is missing), ``xpra start``
with its own Xvfb, the same xterm, ``--bind-tcp`` with ``--html=on``: its HTML5 client from
``/usr/share/xpra/www``, a WebSocket over TCP. Nothing of xpra's code is used here: its server and
page run unchanged; the bench only watches the page from outside.

The same instrumentation is put in both pages before their own scripts run
(``Page.addScriptToEvaluateOnNewDocument``): ``performance.now()`` of every ``keydown`` (a capture
listener on the window, before the page's own handler), and of every draw (``drawImage``,
``putImageData``) onto a canvas that is in the document and at least 200 pixels wide — where both
clients put the picture a person sees, in their animation frames (WayRay: ``Display.present``; xpra:
``XpraWindow.draw``). Keypress → pixels is a key to the first such draw after it; keys are typed
``--gap-ms`` apart (DevTools ``Input.dispatchKeyEvent``) so that one key's picture is not taken for
the next one's. Page load: navigation start (``performance.timeOrigin``) to the first draw, and to
the picture settling (the last draw before 1 s without one), in a new tab for a session that exists.

Bytes: both go through relays in this process that count what crosses loopback: a TCP relay (xpra's
WebSocket; WayRay's page over HTTPS) and, for WayRay, a UDP relay on the same port number (QUIC:
WebTransport, headers and acknowledgements included). CPU (user + system, /proc): every Chromium
process; the server side without the application (WayRay: wrsrvd, the session process, Xwayland;
xpra: the xpra server and its Xvfb; not xterm nor the shell nor ``seq``). The flood is
``timeout N seq 1000000000`` in xterm's shell (every line new; ``yes`` would give the same picture
every frame). What each page was sent while typing and during the flood is printed too (WayRay: its
regions by encoding; xpra: its draw packets by coding — xpra chooses lossy encodings for busy windows).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import xpra_peer  # noqa: E402
from bench.relays import Traffic, relay  # noqa: E402
from tests.web.browser import Browser, Page  # noqa: E402

BIN = Path(sys.executable).parent
XTERM = ["xterm", "-fa", "DejaVu Sans Mono", "-fs", "11", "-bg", "white", "-fg", "black",
         "-geometry", "100x30", "-e", "sh"]  # fmt: skip
#: Processes of the application, not of the remote-display system.
APP = {"xterm", "sh", "seq", "timeout", "Xsession", "dbus-launch", "dbus-daemon", "xmessage"}

#: Put in every page before its own scripts: when keys were pressed and when the visible picture was drawn.
WATCH = r"""
(() => {
  const m = (window.__bench = { keys: [], draws: [], pending: [], lat: [] });
  const key = () => { const t = performance.now(); m.keys.push(t); m.pending.push(t); };
  addEventListener("keydown", key, true);
  for (const name of ["drawImage", "putImageData"]) {
    const orig = CanvasRenderingContext2D.prototype[name];
    CanvasRenderingContext2D.prototype[name] = function (...args) {
      const r = orig.apply(this, args);
      const c = this.canvas;
      if (c.isConnected && c.width >= 200) {
        const t = performance.now();
        m.draws.push(t);
        if (m.pending.length) { for (const k of m.pending) m.lat.push(t - k); m.pending = []; }
      }
      return r;
    };
  }
})();
"""


# --- measuring --------------------------------------------------------------------------------------


def cpu_seconds(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def tree(pid: int, *, without: frozenset[str] | set[str] = frozenset()) -> set[int]:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return set()
    out = set()
    for c in procs:
        try:
            if c.name() not in without:
                out.add(c.pid)
        except psutil.Error:
            pass
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"median {statistics.median(values):.1f}, p95 {percentile(values, 95):.1f} "
        f"(n={len(values)}, min {min(values):.1f}, max {max(values):.1f})"
    )


# --- one side: a server that shows xterm to a page ----------------------------------------------------


@dataclass
class Side:
    name: str
    url: str  # the page, through the relays
    traffic: Traffic
    server_pids: Callable[[], set[int]]
    stop: Callable[[], None]
    ready: Callable[[Page], None]  # waits until the page shows the session
    spki: str | None = None  # the certificate Chromium is told to trust (WayRay without a site certificate)
    access_key: str | None = None  # what the page must present (WayRay's standalone server asks one)


def start_wayray(tmp: Path) -> Side:
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(xdg), "XDG_STATE_HOME": str(tmp / "state"), "HOME": str(tmp),
           "LANG": "C.UTF-8"}  # fmt: skip
    log = open(tmp / "wrsrvd.log", "wb")  # noqa: SIM115 - open for the server's life
    srv = subprocess.Popen(
        [str(BIN / "wrsrvd"), "--standalone", "--port", "0", "--web-port", "0", "--listen", "127.0.0.1",
         "--audio", "off", *(["--allow-root"] if os.geteuid() == 0 else []), "--", *XTERM],
        env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
    )  # fmt: skip
    assert srv.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        line = srv.stdout.readline()
        if not line:
            raise SystemExit(f"wrsrvd did not start: {(tmp / 'wrsrvd.log').read_text()[-3000:]}")
        banner += line
    web = re.search(r"browser kiosk\s+https://localhost:(\d+)/.*spki-list=(\S+)\)", banner)
    key = re.search(r"access key\s+(\S+)", banner)
    assert web and key, banner
    traffic = Traffic()
    port = relay(int(web[1]), traffic, udp=True)

    def stop() -> None:
        srv.send_signal(2)
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, 9)
            srv.wait(10)

    def ready(page: Page) -> None:
        page.wait_for("window.wayray.complete", what="the session's picture", timeout=120)

    side = Side("WayRay", f"https://127.0.0.1:{port}/?token=browser", traffic,
                lambda: tree(srv.pid, without=APP), stop, ready)  # fmt: skip
    side.spki, side.access_key = web[2], key[1]
    return side


def xpra_or_exit() -> str:
    xpra = shutil.which("xpra")
    if xpra is None or not Path("/usr/share/xpra/www/index.html").exists():
        raise SystemExit(
            "xpra is not installed: this comparison needs Debian's xpra (3.1.3 in Debian 12), whose package "
            "ships the HTML5 client in /usr/share/xpra/www. Install it with `apt-get install xpra`, or run "
            "with --only wayray."
        )
    return xpra


def start_xpra(tmp: Path) -> Side:
    xpra = xpra_or_exit()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    display = xpra_peer.free_display()
    xdg = tmp / "xpra-xdg"
    xdg.mkdir(mode=0o700)
    env = xpra_peer.environment(tmp, tmp, xdg)
    log = open(tmp / "xpra.log", "wb")  # noqa: SIM115 - open for the server's life
    srv = subprocess.Popen(
        [xpra, "start", f":{display}", "--daemon=no", f"--bind-tcp=127.0.0.1:{port}", "--html=on",
         f"--socket-dirs={tmp}", "--mdns=no", "--pulseaudio=no", "--speaker=off", "--microphone=off",
         "--notifications=no", "--dbus-launch=", "--dbus-proxy=no", "--dbus-control=no", "--systemd-run=no",
         "--webcam=no", "--printing=no", "--file-transfer=no", "--exit-with-children=yes",
         "--start-child=" + " ".join(f"'{a}'" if " " in a else a for a in XTERM)],
        env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    end = time.monotonic() + 120
    while b"xpra is ready" not in (tmp / "xpra.log").read_bytes():
        if srv.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"xpra did not start: {(tmp / 'xpra.log').read_text()[-3000:]}")
        time.sleep(0.1)
    traffic = Traffic()
    front = relay(port, traffic, udp=False)

    def stop() -> None:
        srv.send_signal(15)
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, 9)
            srv.wait(10)
        xpra_peer.end_xvfb(display)

    def ready(page: Page) -> None:
        # xpra's page has no "session shown" state: the window's canvas drawn once is the sign.
        page.wait_for("window.__bench.draws.length > 0", what="xterm in xpra's page", timeout=120)

    return Side("xpra", f"http://127.0.0.1:{front}/index.html?sound=false", traffic,
                lambda: tree(srv.pid, without=APP), stop, ready)  # fmt: skip


# --- the measurements -------------------------------------------------------------------------------


def open_page(browser: Browser, url: str) -> Page:
    def watch(page: Page) -> None:
        page.send("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})

    return browser.open(url, before=watch)


def close_page(browser: Browser, page: Page) -> None:
    browser.send("Target.closeTarget", {"targetId": page.target})


#: How each page says which encodings it applied: WayRay's page counts its regions by the wire's encoding
#: number; xpra's page is watched at its draw-queue method (looked up on the prototype at each packet).
CODINGS = r"""
(() => {
  if (window.wayray) {
    const names = { 1: "RAW_ZSTD", 2: "XOR_ZSTD", 3: "FILL", 4: "H264", 5: "COPY" };
    const d = window.wayray.display && window.wayray.display();
    const out = {};
    for (const [k, v] of Object.entries((d && d.regionCounts) || {})) out[names[k] || k] = v;
    return out;
  }
  const p = window.XpraClient && window.XpraClient.prototype;
  if (p && !p.__benchWatched) {
    const orig = p._process_draw_queue;
    window.__bench.codings = {};
    p._process_draw_queue = function (packet, ctx) {
      if (packet) window.__bench.codings[packet[6]] = (window.__bench.codings[packet[6]] || 0) + 1;
      return orig.apply(this, arguments);
    };
    p.__benchWatched = true;
  }
  return Object.assign({}, window.__bench.codings || {});
})()
"""


def tally(page: Page) -> dict[str, int]:
    return dict(page.evaluate(CODINGS) or {})


def delta(after: dict[str, int], before: dict[str, int]) -> str:
    d = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"


def settled(draws: list[float], quiet_ms: float = 1000) -> float:
    """The last draw before ``quiet_ms`` without one (the picture complete, as a person sees it)."""
    for a, b in zip(draws, draws[1:], strict=False):
        if b - a >= quiet_ms:
            return a
    return draws[-1]


def measure(side: Side, browser: Browser, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    page = open_page(browser, side.url)
    if side.access_key:
        page.evaluate(f"localStorage.setItem('wayray.access-key', {side.access_key!r})")
        page.navigate(side.url)  # again, now with the access key: the page presents its own token
    side.ready(page)
    time.sleep(3)  # xterm and the shell up, the first pictures settled
    page.evaluate("document.querySelector('canvas') && document.querySelector('canvas').focus()")
    tally(page)  # xpra: starts watching its draw packets
    # Idle: does the page draw while nothing happens? (Then a "first draw after a key" could lie.)
    n0 = page.evaluate("window.__bench.draws.length")
    time.sleep(2)
    out["idle_draws_per_s"] = (page.evaluate("window.__bench.draws.length") - n0) / 2
    # Typing.
    page.evaluate("window.__bench.lat = []; window.__bench.pending = []")
    k0 = tally(page)
    t0 = time.monotonic()
    for _ in range(args.keys):
        page.type("x")
        time.sleep(args.gap_ms / 1000)
    time.sleep(1)
    t1 = time.monotonic()
    out["key_to_pixels_ms"] = page.evaluate("window.__bench.lat")
    out["typing_encodings"] = delta(tally(page), k0)
    out["bytes_per_key_to_page"] = side.traffic.bytes(t0, t1, True) / args.keys
    out["bytes_per_key_from_page"] = side.traffic.bytes(t0, t1, False) / args.keys
    shot = args.tmp / f"{side.name}-typed.png"
    shot.write_bytes(page.screenshot())  # to see that the keys reached xterm
    out["screenshot"] = str(shot)
    page.type("\n")
    time.sleep(1.5)
    # The flood.
    chromium = tree(browser.proc.pid)
    server = side.server_pids()
    d0 = page.evaluate("window.__bench.draws.length")
    f0 = tally(page)
    page.type(f"timeout {int(args.flood) + 1} seq 1000000000\n")
    time.sleep(0.5)
    c0, s0, t0 = cpu_seconds(chromium), cpu_seconds(server), time.monotonic()
    time.sleep(args.flood - 0.5)
    c1, s1, t1 = cpu_seconds(chromium), cpu_seconds(server), time.monotonic()
    d1 = page.evaluate("window.__bench.draws.length")
    out["flood_encodings"] = delta(tally(page), f0)
    out["flood_chromium_cpu_percent"] = 100 * (c1 - c0) / (t1 - t0)
    out["flood_server_cpu_percent"] = 100 * (s1 - s0) / (t1 - t0)
    out["flood_draws_per_s"] = (d1 - d0) / (t1 - t0 + 0.5)
    out["flood_kB_per_s_to_page"] = side.traffic.bytes(t0, t1, True) / (t1 - t0) / 1000
    out["flood_kB_per_s_from_page"] = side.traffic.bytes(t0, t1, False) / (t1 - t0) / 1000
    out["server_processes"] = sorted({psutil.Process(p).name() for p in server if psutil.pid_exists(p)})
    time.sleep(3)  # the flood over, the last pictures drawn
    # Page load to the picture, in a new tab, for the session that exists.
    firsts, settles = [], []
    for _ in range(args.loads):
        close_page(browser, page)
        time.sleep(1)
        page = open_page(browser, side.url)
        side.ready(page)
        time.sleep(2.5)
        draws = page.evaluate("window.__bench.draws")
        firsts.append(draws[0])
        settles.append(settled(draws))
    out["load_to_first_picture_ms"] = firsts
    out["load_to_settled_picture_ms"] = settles
    if side.name == "WayRay":
        out["page_mismatches"] = page.evaluate("window.wayray.mismatches")
    close_page(browser, page)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=100)
    parser.add_argument("--flood", type=float, default=8.0)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--only", default="wayray,xpra")
    args = parser.parse_args()
    which = args.only.split(",")
    if "xpra" in which:
        xpra_or_exit()
    results: dict[str, dict[str, Any]] = {}
    for name in which:
        tmp = args.tmp = Path(tempfile.mkdtemp(prefix=f"wr-webxpra-{name}-"))
        load0 = os.getloadavg()[0]
        side = start_wayray(tmp) if name == "wayray" else start_xpra(tmp)
        try:
            with Browser.start(tmp, spki=side.spki) as browser:
                results[side.name] = measure(side, browser, args)
        finally:
            side.stop()
        results[side.name]["load_average"] = f"{load0:.1f} → {os.getloadavg()[0]:.1f}"
    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores; xterm 100x30 in Chromium 1024x768"
    )
    rows = [
        ("keypress → pixels in the page, ms", lambda r: summary(r["key_to_pixels_ms"])),
        ("bytes per key, to the page / from it", lambda r: f"{r['bytes_per_key_to_page']:.0f} / "
                                                           f"{r['bytes_per_key_from_page']:.0f} B"),
        ("page load → first picture, ms", lambda r: summary(r["load_to_first_picture_ms"])),
        ("page load → picture settled, ms", lambda r: summary(r["load_to_settled_picture_ms"])),
        ("flood: Chromium CPU, % of a core", lambda r: f"{r['flood_chromium_cpu_percent']:.0f}"),
        ("flood: server side CPU, % of a core", lambda r: f"{r['flood_server_cpu_percent']:.0f} "
                                                          f"({', '.join(r['server_processes'])})"),
        ("flood: pictures drawn per s", lambda r: f"{r['flood_draws_per_s']:.1f}"),
        ("flood: kB/s to the page / from it", lambda r: f"{r['flood_kB_per_s_to_page']:.0f} / "
                                                        f"{r['flood_kB_per_s_from_page']:.1f}"),
        ("typing: what the page was sent", lambda r: r["typing_encodings"]),
        ("flood: what the page was sent", lambda r: r["flood_encodings"]),
        ("idle: pictures drawn per s", lambda r: f"{r['idle_draws_per_s']:.1f}"),
        ("load average, start → end", lambda r: r["load_average"]),
    ]  # fmt: skip
    for label, fmt in rows:
        print(f"{label}:")
        for name, r in results.items():
            print(f"  {name:7} {fmt(r)}")
    print("the page after typing:", ", ".join(r["screenshot"] for r in results.values()))
    if "WayRay" in results:
        print(f"WayRay page checksum mismatches: {results['WayRay'].get('page_mismatches')}")


if __name__ == "__main__":
    main()

"""The browser kiosk next to the native viewer on the same session: keypress to pixels, page load to
the first complete picture, and Chromium's CPU while a terminal floods.

    .venv/bin/python -m bench.web_kiosk [--keys 40] [--flood 8]

``wrsrvd --standalone --web-port 0 -- foot`` on loopback; Debian's Chromium, headless, driven over its
DevTools pipe (tests/web/browser.py), presents a badge on the page. Keypress to pixels is measured
in the page as wrclient measures it: from a key sent (``performance.now()`` in the keydown handler)
to the first changed picture put on the canvas after it. Then a headless ``wrclient`` with the same
badge takes the same session and types the same keys (its ``--stats``). Page load: from navigation
start to the first frame whose checksum matched, with the badge submitted by the script as soon as
the page is there, for a session that exists (resumed). CPU: Chromium's processes (browser,
renderer, GPU, network) over the flood (``timeout N yes`` in foot), with the frames the page applied.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.web.browser import Browser, Page  # noqa: E402

BIN = Path(sys.executable).parent
BADGE = "bench-web-badge-1"


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def wait(page: Page, expression: str, what: str, timeout: float = 120) -> None:
    page.wait_for(expression, what=what, timeout=timeout)


def present(page: Page) -> None:
    page.evaluate(f"document.getElementById('badge').value = {BADGE!r}")
    page.evaluate("document.getElementById('badge-form').requestSubmit()")


def cpu_of(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def tree(pid: int) -> set[int]:
    try:
        p = psutil.Process(pid)
        return {pid, *(c.pid for c in p.children(recursive=True))}
    except psutil.Error:
        return set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--flood", type=float, default=8.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wr-webbench-"))
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(xdg), "XDG_STATE_HOME": str(tmp / "state"), "HOME": str(tmp)}
    srv = subprocess.Popen(
        [str(BIN / "wrsrvd"), "--standalone", "--port", "0", "--web-port", "0", "--listen", "127.0.0.1",
         *(["--allow-root"] if os.geteuid() == 0 else []), "--", "foot", "-W", "100x30", "sh"],
        env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=open(tmp / "wrsrvd.log", "wb"), text=True,
        start_new_session=True,
    )  # fmt: skip
    assert srv.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        line = srv.stdout.readline()
        if not line:
            raise SystemExit(f"wrsrvd did not start: {(tmp / 'wrsrvd.log').read_text()}")
        banner += line
    web = re.search(r"browser kiosk\s+https://localhost:(\d+)/.*spki-list=(\S+)\)", banner)
    udp = re.search(r"listening on\s+udp 127\.0\.0\.1:(\d+)", banner)
    fp = re.search(r"fingerprint\s+(sha256:[0-9a-f]{64})", banner)
    key = re.search(r"access key\s+(\S+)", banner)
    assert web and udp and fp and key, banner
    url = f"https://127.0.0.1:{web[1]}/"
    out: dict[str, object] = {}
    try:
        with Browser.start(tmp, spki=web[2]) as browser:
            page = browser.open(url)
            page.evaluate(f"localStorage.setItem('wayray.access-key', {key[1]!r})")
            present(page)
            wait(page, "window.wayray.complete", "the first picture")
            wait(page, "window.wayray.framesApplied > 2", "foot")
            time.sleep(2)
            page.evaluate("document.getElementById('screen').focus()")
            page.evaluate("window.wayray.keyToPixels = []; window.wayray.pendingKeys = []")
            for _ in range(args.keys):
                page.type("x")
                time.sleep(0.05)
            time.sleep(1)
            page_lat = page.evaluate("window.wayray.keyToPixels")
            out["page_key_to_pixels_ms"] = page_lat
            page.type("\n")
            # The flood: the page's frames and Chromium's CPU while foot scrolls as fast as it can.
            time.sleep(1)
            pids = tree(browser.proc.pid)
            frames0 = page.evaluate("window.wayray.framesApplied")
            c0, t0 = cpu_of(pids), time.monotonic()
            page.type(f"timeout {int(args.flood)} yes\n")
            time.sleep(args.flood)
            c1, t1 = cpu_of(pids), time.monotonic()
            frames1 = page.evaluate("window.wayray.framesApplied")
            out["page_flood_cpu_percent"] = 100 * (c1 - c0) / (t1 - t0)
            out["page_flood_fps"] = (frames1 - frames0) / (t1 - t0)
            out["page_mismatches"] = page.evaluate("window.wayray.mismatches")
            out["page_state_after_flood"] = page.evaluate("window.wayray.state")
            time.sleep(2)
            page.evaluate("document.getElementById('leave').click()")  # the badge out of the browser
            # The native viewer takes the same session with the same badge and types the same keys.
            script = tmp / "typing.txt"
            script.write_text("wait 2000\n" + "type x\nwait 50\n" * args.keys + "wait 1000\n")
            stats = tmp / "stats.json"
            native = subprocess.run(
                [str(BIN / "wrclient"), f"127.0.0.1:{udp[1]}", "--fingerprint", fp[1], "--headless",
                 "--token", BADGE, "--script", str(script), "--stats", str(stats), "--timeout", "120"],
                env={**env, "WAYRAY_ACCESS_KEY": key[1]}, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            if native.returncode != 0:
                raise SystemExit(f"wrclient failed: {native.stderr[-2000:]}")
            out["native_key_to_pixels_ms"] = json.loads(stats.read_text())["key_to_pixels_ms"]
            # Page load to the first complete picture of the (now detached) session.
            loads = []
            for _ in range(5):
                page = browser.open(url)
                present(page)
                wait(page, "window.wayray.complete", "the resumed session's picture")
                loads.append(page.evaluate("window.wayray.firstCompleteAt"))
                page.evaluate("document.getElementById('leave').click()")
                time.sleep(1)
            out["page_load_to_complete_ms"] = loads
    finally:
        srv.send_signal(2)
        try:
            srv.wait(20)
        except subprocess.TimeoutExpired:
            srv.kill()
    for name in ("page_key_to_pixels_ms", "native_key_to_pixels_ms", "page_load_to_complete_ms"):
        values = out[name]
        assert isinstance(values, list) and values, name
        print(
            f"{name}: n={len(values)} median {statistics.median(values):.1f} "
            f"p95 {percentile(values, 95):.1f} min {min(values):.1f} max {max(values):.1f}"
        )
    print(f"page during the flood: {out['page_flood_cpu_percent']:.0f}% CPU (Chromium, all processes), "
          f"{out['page_flood_fps']:.1f} frames/s applied, {out['page_mismatches']} checksum mismatches, "
          f"then {out['page_state_after_flood']}")  # fmt: skip


if __name__ == "__main__":
    main()

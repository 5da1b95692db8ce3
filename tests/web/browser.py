"""Debian's Chromium, headless, driven over its DevTools protocol through a pipe
(``--remote-debugging-pipe``: JSON messages ended by NUL on file descriptors 3 and 4), so no
WebSocket client, Playwright or downloaded browser build is needed.

    with Browser.start(tmp, spki=...) as browser:
        page = browser.open("https://127.0.0.1:7443/")
        page.evaluate("document.title")
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int, log: Path) -> None:
        self.proc = proc
        self._out = os.fdopen(to_browser, "wb", buffering=0)
        self._in = os.fdopen(from_browser, "rb", buffering=0)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log = log
        #: Pages' handlers of requests paused by Page.rewrite, by DevTools session.
        self.paused_handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        #: What each page said (console, uncaught exceptions, failed loads), by DevTools session.
        self.said: dict[str, list[str]] = {}
        self._urls: dict[str, str] = {}
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def start(cls, tmp: Path, *, spki: str | None = None, extra: list[str] | None = None) -> Browser:
        assert CHROMIUM is not None, "Debian's chromium is not installed (tools/apt-packages.txt)"
        profile = tmp / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        # fds 3 and 4 in the child: commands in, answers out.
        cmd_r, cmd_w = os.pipe()
        ans_r, ans_w = os.pipe()
        log = tmp / "chromium.log"
        argv = [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # as root; the tests' throwaway profile only
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--password-store=basic",
            "--use-mock-keychain",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "--window-size=1024,768",
            *([f"--ignore-certificate-errors-spki-list={spki}"] if spki else []),
            *(extra or []),
            "about:blank",
        ]

        def fds() -> None:
            os.dup2(cmd_r, 3)
            os.dup2(ans_w, 4)

        with open(log, "ab") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                preexec_fn=fds,  # noqa: PLW1509 - only dup2 between fork and exec
                pass_fds=(3, 4),  # kept open: the dup2s above put the pipes there
                start_new_session=True,
            )
        os.close(cmd_r)
        os.close(ans_w)
        return cls(proc, cmd_w, ans_r, log)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._in.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._waiting.pop(msg["id"], None)
                    if q is not None:
                        q.put(msg)
                elif (
                    msg.get("method") == "Fetch.requestPaused"
                    and msg.get("sessionId") in self.paused_handlers
                ):
                    handler = self.paused_handlers[msg["sessionId"]]
                    threading.Thread(target=handler, args=(msg,), daemon=True).start()
                else:
                    if msg.get("method") == "Network.requestWillBeSent":
                        self._urls[msg["params"]["requestId"]] = msg["params"]["request"]["url"]
                    said = _what_the_page_said(msg, self._urls)
                    if said is not None:
                        self.said.setdefault(msg.get("sessionId", ""), []).append(said)
                    self.events.put(msg)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        n = next(self._ids)
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._waiting[n] = q
        msg: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        try:
            self._out.write(json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"chromium is gone (sending {method}): {self.gone()}") from None
        try:
            answer = q.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"chromium did not answer {method} in {timeout} s; {self.gone()}") from None
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def gone(self) -> str:
        """How chromium ended, if it did, and the end of its log: for a failure's message."""
        code = self.proc.poll()
        state = "still running" if code is None else f"exit status {code}"
        try:
            tail = self.log.read_text(errors="replace")[-3000:]
        except OSError as err:
            tail = f"(no log: {err})"
        return f"chromium {state}; its log ends:\n{tail}"

    def open(self, url: str, *, before: Callable[[Page], None] | None = None) -> Page:
        """A new tab at ``url``; ``before`` runs first (to set up DevTools' Fetch rules, say)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Log.enable")
        page.send("Network.enable")
        if before is not None:
            before(page)
        page.navigate(url)
        return page

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("Browser.close", timeout=10)
            except BrowserError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        for f in (self._out, self._in):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        # The tab's old document (about:blank) is complete too until the new one commits: wait for
        # the new one, loaded.
        self.wait_for(
            f"location.href === new URL({url!r}).href && document.readyState === 'complete'",
            what=f"{url} loaded",
        )

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of ``expression`` in the page (promises awaited); a thrown error fails."""
        res = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in res:
            details = res["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression[:80]}: {text}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, *, what: str, timeout: float = 120) -> Any:
        end = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = self.evaluate(expression)
            except BrowserError as err:
                last = err
            if last and not isinstance(last, BrowserError):
                return last
            if time.monotonic() > end:
                raise BrowserError(f"waited {timeout} s for {what}; last: {last!r}{self.said()}")
            time.sleep(0.1)

    def said(self) -> str:
        """What the page said (console, uncaught exceptions, failed loads), for a failure's message."""
        lines = self.browser.said.get(self.session, [])
        return "".join(f"\n  page: {line}" for line in lines[-30:])

    def rewrite(self, pattern: str, change: Callable[[bytes], bytes]) -> None:
        """Answer the page's requests for URLs matching ``pattern`` with ``change`` of the server's
        answer (DevTools' Fetch domain): a man in the middle of the page's own HTTPS, for tests."""

        def paused(ev: dict[str, Any]) -> None:
            rid = ev["params"]["requestId"]
            try:
                got = self.send("Fetch.getResponseBody", {"requestId": rid})
                body = base64.b64decode(got["body"]) if got.get("base64Encoded") else got["body"].encode()
                headers = [
                    h
                    for h in ev["params"].get("responseHeaders", [])
                    if h["name"].lower() != "content-length"
                ]
                self.send(
                    "Fetch.fulfillRequest",
                    {
                        "requestId": rid,
                        "responseCode": ev["params"].get("responseStatusCode", 200),
                        "responseHeaders": headers,
                        "body": base64.b64encode(change(body)).decode(),
                    },
                )
            except BrowserError:
                pass  # the page went away meanwhile

        self.browser.paused_handlers[self.session] = paused
        self.send("Fetch.enable", {"patterns": [{"urlPattern": pattern, "requestStage": "Response"}]})

    def fail_once(self, pattern: str) -> list[str]:
        """The page's first request for a URL matching ``pattern`` fails as a connection the server
        closed would (DevTools' Fetch domain); later ones go through. Returns the URLs failed."""
        return self._fail_requests(pattern, lambda ev, failed: not failed)

    def fail_first_load(self) -> list[str]:
        """Every request of the page's first load but the document itself fails, as when the network
        changes under a loading page (Chromium's ERR_NETWORK_CHANGED); from the next load of the
        document on, all go through. Returns the URLs failed."""
        documents = 0

        def first_load(ev: dict[str, Any], failed: list[str]) -> bool:
            nonlocal documents
            if ev["params"].get("resourceType") == "Document":
                documents += 1
                return False
            return documents <= 1

        return self._fail_requests("*", first_load)

    def _fail_requests(self, pattern: str, fail: Callable[[dict[str, Any], list[str]], bool]) -> list[str]:
        """Requests for URLs matching ``pattern`` for which ``fail(event, failed so far)`` says so fail
        as a connection the server closed; the others go through. Returns the URLs failed."""
        failed: list[str] = []

        def paused(ev: dict[str, Any]) -> None:
            rid = ev["params"]["requestId"]
            try:
                if fail(ev, failed):
                    failed.append(ev["params"]["request"]["url"])
                    self.send("Fetch.failRequest", {"requestId": rid, "errorReason": "ConnectionClosed"})
                else:
                    self.send("Fetch.continueRequest", {"requestId": rid})
            except BrowserError:
                pass  # the page went away meanwhile

        self.browser.paused_handlers[self.session] = paused
        self.send("Fetch.enable", {"patterns": [{"urlPattern": pattern, "requestStage": "Request"}]})
        return failed

    def screenshot(self) -> bytes:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        return base64.b64decode(data)

    def key(self, code: str, key: str, text: str = "", *, key_code: int = 0) -> None:
        """A key press and release as a person's keyboard makes them (KeyboardEvent.code ``code``)."""
        base = {"code": code, "key": key, "windowsVirtualKeyCode": key_code}
        self.send(
            "Input.dispatchKeyEvent", {"type": "keyDown" if text else "rawKeyDown", "text": text, **base}
        )
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def type(self, text: str) -> None:
        """Types ``text`` key by key (US layout: letters, digits, space, a few signs; \\n is Enter)."""
        for ch in text:
            code, key, vk, shift = _KEY_OF[ch]
            if shift:
                self.send(
                    "Input.dispatchKeyEvent",
                    {
                        "type": "rawKeyDown",
                        "code": "ShiftLeft",
                        "key": "Shift",
                        "windowsVirtualKeyCode": 16,
                        "modifiers": 8,
                    },
                )
            mods = 8 if shift else 0
            text_ = "\r" if ch == "\n" else ch
            base = {"code": code, "key": key, "windowsVirtualKeyCode": vk, "modifiers": mods}
            self.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": text_, **base})
            self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})
            if shift:
                self.send(
                    "Input.dispatchKeyEvent",
                    {"type": "keyUp", "code": "ShiftLeft", "key": "Shift", "windowsVirtualKeyCode": 16},
                )


def _what_the_page_said(msg: dict[str, Any], urls: dict[str, str]) -> str | None:
    """One line for a DevTools event worth reporting when a test fails, else None."""
    method, params = msg.get("method"), msg.get("params", {})
    if method == "Runtime.exceptionThrown":
        d = params.get("exceptionDetails", {})
        return f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}"
    if method == "Runtime.consoleAPICalled":
        args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
        return f"console.{params.get('type')}: {args}"
    if method == "Log.entryAdded":
        e = params.get("entry", {})
        return f"log ({e.get('source')}, {e.get('level')}): {e.get('text')} {e.get('url', '')}".rstrip()
    if method == "Network.loadingFailed":
        url = urls.get(params.get("requestId", ""), "?")
        return f"load failed: {url} ({params.get('type')}): {params.get('errorText')}"
    if method == "Page.frameNavigated" and not params.get("frame", {}).get("parentId"):
        return f"navigated: {params['frame'].get('url')}"
    return None


def _keys() -> dict[str, tuple[str, str, int, bool]]:
    out: dict[str, tuple[str, str, int, bool]] = {}
    for c in "abcdefghijklmnopqrstuvwxyz":
        out[c] = (f"Key{c.upper()}", c, ord(c.upper()), False)
        out[c.upper()] = (f"Key{c.upper()}", c.upper(), ord(c.upper()), True)
    for d in "0123456789":
        out[d] = (f"Digit{d}", d, ord(d), False)
    out.update(
        {
            " ": ("Space", " ", 32, False),
            "\n": ("Enter", "Enter", 13, False),
            ".": ("Period", ".", 190, False),
            "-": ("Minus", "-", 189, False),
            "/": ("Slash", "/", 191, False),
            ">": ("Period", ">", 190, True),
            "_": ("Minus", "_", 189, True),
            "|": ("Backslash", "|", 220, True),
        }
    )
    return out


_KEY_OF = _keys()

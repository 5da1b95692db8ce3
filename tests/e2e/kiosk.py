"""A real ``wrclient --kiosk --headless`` for tests: badges through its token socket, what it shows
through its state file, keys and snapshots through its control socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import script
from tests.e2e.harness import DEADLINE, png_pixels, shows_window


def _line_exchange(path: Path, lines: list[str], timeout: float) -> list[str]:
    replies = []
    end = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        while True:  # a kiosk that just started may not listen on it yet
            try:
                s.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        f = s.makefile("rwb")
        for line in lines:
            f.write(line.encode() + b"\n")
            f.flush()
            reply = f.readline()
            if not reply:
                # (not the line itself: it may be "insert <badge>", and test output lands in logs)
                raise AssertionError(f"{path}: connection closed after a {line.split()[0]!r} line")
            replies.append(reply.decode().rstrip("\n"))
    return replies


class KioskProc:
    def __init__(
        self,
        workdir: Path,
        name: str,
        server: str,
        fingerprint: str,
        *,
        env: dict[str, str],
        extra: tuple[str, ...] = (),
        size: str = "1024x768",
        badge_socket: bool = True,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """``badge_socket`` False: badges come from client.toml's source (``extra`` has --root).
        ``wrapper``: what runs wrclient's arguments instead of the wrclient script (umockdev)."""
        self.name = name
        self.dir = workdir
        self.badge_socket = workdir / f"{name}-badge.sock"
        self.control_socket = workdir / f"{name}-ctl.sock"
        self.state_file = workdir / f"{name}-state.json"
        self.log = workdir / f"{name}.log"
        self.argv = [
            *(wrapper or (script("wrclient"),)),
            server,
            "--fingerprint",
            fingerprint,
            "--kiosk",
            "--headless",
            "--size",
            size,
            "--keymap-layout",
            "us",
            *(("--badge-socket", str(self.badge_socket)) if badge_socket else ()),
            "--state-file",
            str(self.state_file),
            "--control-socket",
            str(self.control_socket),
            "--timeout",
            "60",
            "-v",
            *extra,
        ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        #: With a wrapper: its stdin (the umockdev kiosk takes typing commands there).
        self.stdin = wrapper != ()

    def start(self, *, idle: bool = True) -> KioskProc:
        """Start it; wait until it shows its idle screen (``idle``), or only until it listens."""
        # What a kiosk of this name that was killed left behind must not pass for the new one's.
        for path in (self.state_file, self.control_socket, self.badge_socket):
            path.unlink(missing_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.dir,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if idle:
            self.wait(lambda s: s["state"] == "idle" and self.control_socket.exists(), "the idle screen")
        else:
            self.wait(lambda s: self.control_socket.exists(), "the kiosk to listen")
        return self

    # --- badges ------------------------------------------------------------------------------------

    def send(self, command: dict[str, Any]) -> None:
        """One command line to a wrapper's stdin (the umockdev kiosk: ``{"type": "BADGE\\n"}``)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()

    def insert(self, badge: str) -> None:
        assert _line_exchange(self.badge_socket, [f"insert {badge}"], DEADLINE) == ["ok"]

    def remove(self) -> None:
        assert _line_exchange(self.badge_socket, ["remove"], DEADLINE) == ["ok"]

    # --- what it shows -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return {"state": None}

    def wait(
        self, pred: Callable[[dict[str, Any]], Any], what: str, timeout: float = DEADLINE
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            st = self.state()
            if pred(st):
                return st
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"kiosk {self.name} exited ({self.proc.returncode}):\n{self.log_text()}"
                )
            if time.monotonic() > end:
                tail = self.log_text()[-4000:]
                raise AssertionError(
                    f"kiosk {self.name}: timed out waiting for {what}; it shows {st}\n{tail}"
                )
            time.sleep(0.05)

    def wait_screen(self, screen: str, timeout: float = DEADLINE) -> dict[str, Any]:
        return self.wait(
            lambda s: s["state"] == "session" and s["screen"] == screen, f"the {screen}", timeout
        )

    def wait_session(self, timeout: float = DEADLINE) -> dict[str, Any]:
        return self.wait(lambda s: s["state"] == "session", "a session's picture", timeout)

    def wait_idle(self, timeout: float = DEADLINE) -> dict[str, Any]:
        return self.wait(lambda s: s["state"] == "idle", "the idle screen", timeout)

    # --- driving it --------------------------------------------------------------------------------

    def run(self, *lines: str, timeout: float = DEADLINE * 2) -> list[str]:
        """Script commands against the session shown; fails on the first ``error`` reply."""
        replies = _line_exchange(self.control_socket, list(lines), timeout)
        for line, reply in zip(lines, replies, strict=True):
            if not reply.startswith("ok"):
                raise AssertionError(f"kiosk {self.name}: {line!r} → {reply}\n{self.log_text()[-3000:]}")
        return replies

    def wait_window(self, what: str = "the session's window", timeout: float = DEADLINE) -> None:
        """Until the kiosk's picture shows a program's window: a person waits to see it before typing
        (a new session's picture comes before its programs have mapped theirs; keys typed then reach
        nobody)."""
        end = time.monotonic() + timeout
        path = self.dir / f"{self.name}-window.png"
        while True:
            pixels = self.snapshot(path, settle=300)
            if shows_window(pixels):
                return
            if time.monotonic() > end:
                raise AssertionError(f"kiosk {self.name}: timed out waiting for {what}")

    def snapshot(self, path: Path, *, settle: int | None = 500) -> np.ndarray:
        lines = ([f"settle {settle}"] if settle else []) + [f"snapshot {path}"]
        self.run(*lines)
        return png_pixels(path)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL, as a kiosk that loses its power or its network: it closes nothing."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)

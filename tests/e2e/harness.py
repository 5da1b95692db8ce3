"""Real processes for the end-to-end tests: ``wrsrvd --standalone`` on a free UDP port, real
``wrclient --headless`` processes, real Wayland clients in the sessions, real QUIC on loopback.

Every test gets a private HOME, XDG directories and state directory. Sessions run in process
sessions of their own (that is the point: they outlive wrsrvd), so teardown finds them by the link
path in their environment and ends them, whatever happened to the wrsrvd that started them.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from PIL import Image

from tests.conftest import script
from tests.ports import free_port
from wayray.client.identity import own_standalone_server
from wayray.common.xdg import standalone_state_dir
from wayray.server.admin import AdminClient, AdminError
from wayray.transport import OwnServerKey

DEADLINE = 90.0  # generous: two cores shared with other suites
#: Pixels unlike the background that make a window (a terminal of 80x24 characters has some 200,000).
WINDOW_PIXELS = 10_000
T = TypeVar("T")


def _read_lines(stream: io.TextIOBase, into: list[str]) -> None:
    for line in stream:
        into.append(line)


#: The banner's first listening address and its port (``127.0.0.1:P``, ``[::]:P``).
LISTENING = r"listening on\s+udp (?:\[[^\]\s]*\]|[^\s:,]+):(\d+)"


def free_udp_port() -> int:
    """A port to give a server before it starts (tests/ports.py: claimed, not merely free now)."""
    return free_port()


def eventually(check: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def admin_status(proc: subprocess.Popen[Any], sock: Path, log: Path | None = None) -> dict[str, Any]:
    """wrsrvd's status once its admin socket answers. (The socket file exists a moment before wrsrvd
    listens on it: a connection in between is refused, so waiting for the file is not enough.) If
    wrsrvd exits first, the failure says so, with ``log`` (its stderr) when given."""

    def answered() -> dict[str, Any] | None:
        if proc.poll() is not None:
            logged = f":\n{log.read_text(errors='replace')}" if log is not None and log.exists() else ""
            raise AssertionError(f"wrsrvd exited with {proc.returncode}{logged}")
        with suppress(OSError, AdminError):
            with AdminClient(sock) as admin:
                return admin.request("status")
        return None

    return eventually(answered, "wrsrvd's admin socket to answer")


def processes_with_link(link: Path) -> list[int]:
    """Session compositor processes whose environment names this link socket."""
    marker = f"WAYRAY_LINK={link}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def kill_sessions(link: Path) -> None:
    """End the session compositors of a link (their process groups), whatever state they are in."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_with_link(link):
            with suppress(ProcessLookupError):
                os.killpg(pid, sig)
        end = time.monotonic() + 10
        while processes_with_link(link) and time.monotonic() < end:
            time.sleep(0.1)


def png_pixels(data: bytes | Path) -> np.ndarray:
    raw = data.read_bytes() if isinstance(data, Path) else data
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def differing_pixels(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, f"sizes differ: {a.shape} vs {b.shape}"
    return int((a != b).any(axis=-1).sum())


class WrServer:
    def __init__(
        self,
        harness: Harness,
        command: list[str],
        *,
        port: int,
        extra: list[str],
        listen: tuple[str, ...] | None = ("127.0.0.1",),
    ) -> None:
        """``listen``: the --listen addresses (None: none given, wrsrvd's default)."""
        self.h = harness
        self.command = command
        self.port = port
        self.extra = extra
        self.listen = listen
        # The default state directory (no --state-dir), where the user's own wrclient finds the
        # server's access key and identity: the harness's viewers present the key as a user's would.
        self.state = standalone_state_dir(harness.env)
        self.runtime = harness.short / "run"
        self.log = harness.tmp / f"wrsrvd-{len(harness.servers)}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.fingerprint = ""
        self.banner = ""

    def argv(self) -> list[str]:
        return [
            script("wrsrvd"),
            "--standalone",
            "--port",
            str(self.port),
            *(arg for address in self.listen or () for arg in ("--listen", address)),
            "--runtime-dir",
            str(self.runtime),
            *(["--allow-root"] if os.geteuid() == 0 else []),
            *self.extra,
            "--",
            *self.command,
        ]

    def start(self, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> WrServer:
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.h.env if env is None else env,
                cwd=self.h.home if cwd is None else cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        lines: list[str] = []
        threading.Thread(target=_read_lines, args=(self.proc.stdout, lines), daemon=True).start()
        end = time.monotonic() + DEADLINE
        while not any("Ctrl-C" in line for line in list(lines)):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"wrsrvd did not start:\n{''.join(lines)}\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        self.banner = "".join(lines)
        m = re.search(r"fingerprint\s+(sha256:[0-9a-f]{64})", self.banner)
        assert m, self.banner
        self.fingerprint = m[1]
        where = re.search(LISTENING, self.banner)
        assert where, self.banner
        # The first server picks a free port itself (--port 0: no other test can take it between a
        # probe and the bind); a restarted one takes the same port, where the viewers look for it.
        self.port = self.h.port = int(where[1])
        return self

    @property
    def own_server(self) -> OwnServerKey | None:
        """The server's key and identity as the harness user's wrclient presents them (for viewers made
        in the test's own process: ``ClientSettings(own_server=srv.own_server)``)."""
        return own_standalone_server(self.h.env)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def admin(self, request: str, **fields: Any) -> dict[str, Any]:
        with AdminClient(self.runtime / "admin.sock") as c:
            return c.request(request, **fields)

    def sessions(self) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = self.admin("sessions")["sessions"]
        return sessions

    def session(self) -> dict[str, Any]:
        """The one live session (fails when there is not exactly one)."""
        sessions = self.sessions()
        assert len(sessions) == 1, sessions
        return sessions[0]

    def wait_linked(self, timeout: float = DEADLINE) -> dict[str, Any]:
        def linked() -> dict[str, Any] | None:
            with suppress(OSError, AdminError):
                for s in self.sessions():
                    if s["linked"]:
                        return s
            return None

        return eventually(linked, "a session on its link", timeout)

    def screenshot(self, session_id: str) -> np.ndarray:
        with AdminClient(self.runtime / "admin.sock") as c:
            return png_pixels(c.screenshot(session_id))

    def shows_a_window(self) -> bool:
        """Whether the session a viewer has now shows more than its background: a program's window."""
        return shows_a_window(self.runtime / "admin.sock")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)


def shows_a_window(admin_socket: Path) -> bool:
    """Whether the session a viewer has now (of the server at ``admin_socket``) shows more than its
    background: a program's window."""
    with suppress(OSError, AdminError), AdminClient(admin_socket) as c:
        for s in c.request("sessions")["sessions"]:
            if s["state"] == "active" and s["linked"]:
                return shows_window(png_pixels(c.screenshot(s["id"])))
    return False


def shows_window(pixels: np.ndarray) -> bool:
    """Whether a picture shows more than its background (its top-left pixel's colour): a window."""
    return int((pixels != pixels[0, 0]).any(axis=-1).sum()) >= WINDOW_PIXELS


class Client:
    """A wrclient running in the background."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.proc = proc
        self.out = out
        self.err = err

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.proc.wait(timeout)


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        # Unix socket paths are short (108 bytes): the runtime directories live in a short path.
        self.short = Path(tempfile.mkdtemp(prefix="wr-", dir="/tmp"))
        self.home = tmp / "home"
        self.home.mkdir()
        xdg = self.short / "xdg"
        xdg.mkdir(mode=0o700)
        os.chmod(xdg, 0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_", "NOTIFY_"))}
        env.pop("DISPLAY", None)
        env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(xdg),
            XDG_STATE_HOME=str(tmp / "state-home"),
            XDG_CONFIG_HOME=str(tmp / "config-home"),
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            NO_AT_BRIDGE="1",
            PS1="$ ",
            ENV="",
        )
        self.env = env
        self.servers: list[WrServer] = []
        self.clients: list[Client] = []
        #: The servers' UDP port: 0 until the first one has picked one.
        self.port = 0

    def server(
        self,
        command: list[str],
        *,
        extra: list[str] | None = None,
        listen: tuple[str, ...] | None = ("127.0.0.1",),
    ) -> WrServer:
        srv = WrServer(self, command, port=self.port, extra=extra or [], listen=listen)
        self.servers.append(srv)
        return srv.start()

    def client_argv(self, srv: WrServer, *args: str, token: str | None = "e2e-token-0001") -> list[str]:
        argv = [script("wrclient"), f"127.0.0.1:{srv.port}", "--fingerprint", srv.fingerprint, "--headless"]
        if token is not None:
            argv += ["--token", token]
        return argv + list(args)

    def run_client(
        self, srv: WrServer, *args: str, token: str | None = "e2e-token-0001", timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.client_argv(srv, *args, token=token),
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_script(
        self, srv: WrServer, script: Path, *args: str, token: str | None = "e2e-token-0001"
    ) -> Client:
        """A viewer in the background playing ``script`` once the session shows a window (``gated``)."""
        return self.gated(
            script,
            lambda gated: self.start_client(srv, "--script", str(gated), *args, token=token),
            srv.shows_a_window,
        )

    def run_script(
        self,
        srv: WrServer,
        script: Path,
        *args: str,
        token: str | None = "e2e-token-0001",
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """``wrclient --script SCRIPT`` to its end, played once the session shows a window (``gated``)."""
        return self.finish(self.start_script(srv, script, *args, token=token), timeout)

    def gated(self, script: Path, start: Callable[[Path], Client], shown: Callable[[], bool]) -> Client:
        """A viewer ``start(gated script)`` whose script plays once ``shown()``: a person types only
        once they see the program they type into. A first ``settle`` is not that on a new session: on
        a loaded machine its screen can stay quiet longer than the settle time before the program's
        window maps, and keys typed then reach nobody. The script waits at a ``wait-for`` line put
        before it, which the harness releases when ``shown()`` (a screenshot with the window)."""
        go = script.with_name(f"{script.name}.go")
        gated = script.with_name(f"{script.name}.gated")
        gated.write_text(f"wait-for {go}\n{script.read_text()}")
        client = start(gated)
        try:
            eventually(lambda: client.proc.poll() is not None or shown(), "a window on the session's screen")
        except BaseException:
            client.signal(signal.SIGKILL)
            client.wait()
            raise
        go.touch()
        return client

    @staticmethod
    def finish(client: Client, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Wait for a background viewer to end: its exit status and output as ``subprocess.run`` has them."""
        try:
            code = client.wait(timeout)
        finally:
            if client.proc.poll() is None:
                client.signal(signal.SIGKILL)
                client.wait()
        return subprocess.CompletedProcess(client.proc.args, code, client.stdout(), client.stderr())

    def start_client(
        self,
        srv: WrServer,
        *args: str,
        token: str | None = "e2e-token-0001",
        env: dict[str, str] | None = None,
    ) -> Client:
        """A viewer in the background; its output goes to files (a pipe nobody reads would stall it).
        ``env``: variables added to the harness's environment (a kiosk's own sound server)."""
        return self.start_viewer(self.client_argv(srv, *args, token=token), env=env)

    def start_viewer(self, argv: list[str], *, env: dict[str, str] | None = None) -> Client:
        """``argv`` (a wrclient command line) in the background, as ``start_client``."""
        n = len(self.clients)
        out, err = self.tmp / f"client-{n}.out", self.tmp / f"client-{n}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=o,
                stderr=e,
                start_new_session=True,
            )
        client = Client(proc, out, err)
        self.clients.append(client)
        return client

    def write_script(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def session_processes(self) -> list[int]:
        """Session compositors started for this test (found by the link path in their environment)."""
        return processes_with_link(self.short / "run" / "link.sock")

    def cleanup(self) -> None:
        for c in self.clients:
            if c.proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait(10)
        for srv in self.servers:
            if srv.proc is not None and srv.proc.poll() is None:
                srv.signal(signal.SIGKILL)
                srv.proc.wait(10)
        kill_sessions(self.short / "run" / "link.sock")
        shutil.rmtree(self.short, ignore_errors=True)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture(params=["compiled", "python"])
def keeper_kind(request: pytest.FixtureRequest, harness: Harness) -> str:
    """The session keeper the test's servers run (wayray/session/keeper.py): the compiled program, the
    default, which tools/bootstrap builds (a build that is missing or broken fails here and in
    :func:`assert_keeper_is`, not quietly on Python), or the Python one it falls back to."""
    from wayray.session import keeper

    kind = str(request.param)
    if kind == "python":
        harness.env[keeper.KEEPER_VARIABLE] = "python"
    else:
        assert keeper.program() is not None, "no compiled session keeper: run tools/bootstrap"
    return kind


def assert_keeper_is(pid: int, kind: str) -> None:
    """``pid`` (a session's keeper) runs the ``kind`` of keeper: its ``/proc/PID/exe``."""
    from wayray.session import keeper

    exe = Path(os.readlink(f"/proc/{pid}/exe"))
    if kind == "compiled":
        assert exe == keeper.program(), exe
    else:
        assert exe.name.startswith("python"), exe


def failure(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"

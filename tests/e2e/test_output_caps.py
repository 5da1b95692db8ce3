"""A viewer cannot make the server allocate a giant output (security review H2): its Hello's screen and
its ResizeRequests are fitted to ``output.max_pixels`` (login screens to less), the viewer is told
the size it got, and the compositor itself never goes past its cap whatever it is told."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import DEADLINE, Harness, WrServer, eventually
from wayray.link import (
    LINK_VERSION,
    Attach,
    Attached,
    Detach,
    LinkDecoder,
    LinkRole,
    OutputChanged,
    Register,
    ToSession,
    Welcome,
    encode,
)
from wayray.transport import ClientSettings, PinnedFingerprint, connect
from wayray.wire import Channel, HelloParams, ResizeRequest, TokenKind, encode_message

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]
DEFAULT_MAX_PIXELS = 16_588_800  # output.max_pixels


def tree_peak_rss(pid: int) -> int:
    """Peak RSS (VmHWM) of ``pid`` and its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo += children.get(p, [])
    return total


async def _giant_viewer(srv: WrServer, token: str, steps: list[Any]) -> list[Any]:
    """A viewer (the real transport, not wrclient: wrclient could not decode such frames) claiming a
    16384x16384 screen, then sending ``steps`` (ResizeRequests, or callables run between them)."""
    settings = ClientSettings(trust=PinnedFingerprint(srv.fingerprint), own_server=srv.own_server)
    hello = HelloParams(
        token=token, token_kind=TokenKind.SOFTWARE, screen_width=16384, screen_height=16384, keymap=""
    )
    conn = await connect("127.0.0.1", srv.port, settings, hello)
    out: list[Any] = [conn.server_hello]
    try:
        for step in steps:
            if isinstance(step, ResizeRequest):
                conn.send(step)
            else:
                out.append(await asyncio.to_thread(step))
    finally:
        await conn.aclose()
    return out


def test_a_viewer_gets_at_most_max_pixels_whatever_screen_it_claims(harness: Harness) -> None:
    srv = harness.server(FOOT)

    def output() -> tuple[int, int]:
        sessions = srv.sessions()
        assert len(sessions) == 1, sessions
        w, h, _ = sessions[0]["output"]
        return w, h

    def output_is(size: tuple[int, int]) -> Any:
        return lambda: eventually(lambda: output() == size, f"the session's output to be {size}")

    def fitted() -> tuple[int, int]:
        return eventually(lambda: output() if output()[0] > 0 else None, "the session's output")

    # 16384x16384 (3.2 GiB for the unfixed server), then resizes: small (followed), and a huge 2:1 one.
    sh, first, _, _ = asyncio.run(
        _giant_viewer(
            srv,
            "giant-screen",
            [fitted, ResizeRequest(width=1000, height=800, scale_120=120), output_is((1000, 800)),
             ResizeRequest(width=16384, height=8192, scale_120=120),
             output_is((5760, 2880))],
        )
    )  # fmt: skip
    # The square screen got the largest square output that fits, and the viewer was told that size.
    assert (sh.output_width, sh.output_height) == first == (4072, 4072)
    assert first[0] * first[1] <= DEFAULT_MAX_PIXELS
    # What the operator notices: the session's compositor never held gigabytes.
    pid = srv.session()["pid"]
    assert tree_peak_rss(pid) < 1024**3
    log = srv.log_text()
    assert "its screen is 16384x16384; a session here has at most 16588800 pixels: 4072x4072" in log


def test_the_compositor_keeps_to_its_own_cap_whatever_it_is_told(tmp_path: Path) -> None:
    """Defence in depth: a compositor started with a cap (WAYRAY_SESSION_MAX_PIXELS, as wrsrvd and
    wrsessd start them) fits what its link asks for (here a link server that asks for 8000x8000)."""
    cap = 640 * 480
    runtime = Path(os.path.realpath(tmp_path)) / "run"
    runtime.mkdir(mode=0o700)
    short = Path(tempfile.mkdtemp(prefix="wrcap-", dir="/tmp"))
    link = short / "link.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(link))
    srv.listen(1)
    srv.settimeout(DEADLINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_"))}
    env.update(
        WAYRAY_LINK=str(link),
        WAYRAY_LINK_SESSION="capsession000001",
        WAYRAY_LINK_SECRET="s" * 43,
        WAYRAY_SESSION_MAX_PIXELS=str(cap),
        WAYRAY_SESSION_SIZE="4000x3000",
        XDG_RUNTIME_DIR=str(runtime),
    )
    log = tmp_path / "session.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wayray.server", "session", "--", "sleep", "300"],
        env=env, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE)
        decoder = LinkDecoder(LinkRole.COMPOSITOR)

        def receive(kind: type) -> Any:
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:
                for message in decoder.feed(conn.recv(65536)):
                    if isinstance(message, kind):
                        return message
            raise AssertionError(f"no {kind.__name__} from the compositor")

        reg = receive(Register)
        # Started at 4000x3000: it made that fit first (the largest 4:3 output within the cap).
        assert reg.width * reg.height <= cap and (reg.width, reg.height) == (640, 480)
        conn.sendall(encode(Welcome(link_version=reg.link_version, server="test"), LinkRole.SERVER))
        conn.sendall(
            encode(
                Attach(attach_id=1, width=8000, height=8000, scale_120=120, match_size=True, keymap="",
                       capabilities=[], frame_window=4, clipboard="none", first_seq=1),
                LinkRole.SERVER,
            )
        )  # fmt: skip
        attached = receive(Attached)
        assert attached.width * attached.height <= cap and attached.width == attached.height
        assert "over this session's pixel cap" in log.read_text()
        assert tree_peak_rss(proc.pid) < 512 * 1024**2
        assert reg.link_version <= LINK_VERSION
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        srv.close()
        shutil.rmtree(short, ignore_errors=True)


def test_a_viewers_resizes_over_the_cap_are_counted_in_the_session_log_not_logged_each(
    tmp_path: Path,
) -> None:
    """A viewer may send ResizeRequests as often as it likes; each one over the compositor's cap (a
    cap the front door's does not match, as after a reload that raised output.max_pixels) was a line
    in the session log. Now the first is logged and the rest counted (review M5)."""
    cap = 640 * 480
    runtime = Path(os.path.realpath(tmp_path)) / "run"
    runtime.mkdir(mode=0o700)
    short = Path(tempfile.mkdtemp(prefix="wrcap-", dir="/tmp"))
    link = short / "link.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(link))
    srv.listen(1)
    srv.settimeout(DEADLINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYLAND_", "WAYRAY_"))}
    env.update(
        WAYRAY_LINK=str(link),
        WAYRAY_LINK_SESSION="capsession000002",
        WAYRAY_LINK_SECRET="s" * 43,
        WAYRAY_SESSION_MAX_PIXELS=str(cap),
        XDG_RUNTIME_DIR=str(runtime),
    )
    log = tmp_path / "session.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wayray.server", "session", "--", "sleep", "300"],
        env=env, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    count = 5000
    try:
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE)
        decoder = LinkDecoder(LinkRole.COMPOSITOR)

        def receive(kind: type, check: Any = lambda m: True) -> Any:
            end = time.monotonic() + DEADLINE
            while time.monotonic() < end:
                for message in decoder.feed(conn.recv(65536)):
                    if isinstance(message, kind) and check(message):
                        return message
            raise AssertionError(f"no {kind.__name__} from the compositor")

        reg = receive(Register)
        conn.sendall(encode(Welcome(link_version=reg.link_version, server="test"), LinkRole.SERVER))
        conn.sendall(
            encode(
                Attach(attach_id=1, width=640, height=480, scale_120=120, match_size=True, keymap="",
                       capabilities=[], frame_window=4, clipboard="none", first_seq=1),
                LinkRole.SERVER,
            )
        )  # fmt: skip
        receive(Attached)
        size_before = log.stat().st_size
        over = [
            encode(
                ToSession(Channel.CONTROL, encode_message(ResizeRequest(width=w, height=w, scale_120=120))),
                LinkRole.SERVER,
            )
            for w in (8000, 9000)
        ]
        conn.sendall(b"".join(over[i % 2] for i in range(count)))
        # Messages are taken in order: once it followed this one, it has seen every one before it.
        last = ResizeRequest(width=320, height=240, scale_120=120)
        conn.sendall(encode(ToSession(Channel.CONTROL, encode_message(last)), LinkRole.SERVER))
        receive(OutputChanged, lambda m: (m.width, m.height) == (320, 240))
        lines = log.read_text().count("over this session's pixel cap")
        assert 1 <= lines <= 2, f"{lines} lines for {count} resizes over the cap"
        conn.sendall(encode(Detach(attach_id=1, reason="test"), LinkRole.SERVER))  # the count follows

        def counted() -> str | None:
            text = log.read_text()
            return text if "were over the cap" in text else None

        text = eventually(counted, "the count of the resizes over the cap")
        assert text.count("over this session's pixel cap") <= 2, text[-3000:]
        assert re.search(r"\b(\d+) more screen sizes from the viewer were over the cap", text), text[-3000:]
        assert max(int(n) for n in re.findall(r"(\d+) more screen sizes", text)) >= count // 2
        assert log.stat().st_size - size_before < 64 * 1024
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        srv.close()
        shutil.rmtree(short, ignore_errors=True)

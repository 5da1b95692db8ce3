"""New standalone sessions are forked from wrsrvd's session parent, a process that has imported the
compositor once (issue 15: a new session's first frame without a second of Python imports). What a
user and an operator notice: such a session is a working session (real foot, real shell, drawn and
typed into), its processes are what a session started by exec is (its user, its environment, no
descriptor of the parent's), and neither the parent's death nor wrsrvd's restart ends it. With both
session keepers (``keeper_kind``: the compiled program, the Python one). Real wrsrvd, real foot,
real headless wrclient."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import psutil
import pytest

from tests.e2e.harness import (
    Harness,
    WrServer,
    assert_keeper_is,
    differing_pixels,
    eventually,
    failure,
    png_pixels,
)

pytestmark = pytest.mark.slow

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def session_parent(srv: WrServer) -> int | None:
    """The pid of ``srv``'s session parent, if it runs."""
    assert srv.proc is not None
    for child in psutil.Process(srv.proc.pid).children():
        try:
            if "wayray.session.parent" in child.cmdline():
                return child.pid
        except psutil.Error:
            continue
    return None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pipes(pid: int) -> dict[int, str]:
    """The pipes ``pid`` holds: descriptor number to pipe (``pipe:[inode]``)."""
    held = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("pipe:"):
            held[int(fd.name)] = target
    return held


def seqpacket_sockets(pid: int) -> list[object]:
    """Unix sockets of the kind wrsrvd talks to its session parent on, held by ``pid``."""
    return [c for c in psutil.Process(pid).net_connections(kind="unix") if c.type == socket.SOCK_SEQPACKET]


def test_a_session_forked_from_the_parent_works_is_the_sessions_own_and_outlives_the_parent_and_wrsrvd(
    harness: Harness, keeper_kind: str
) -> None:
    srv = harness.server(FOOT)
    eventually(lambda: "session parent ready" in srv.log_text(), "wrsrvd's session parent ready")
    parent = session_parent(srv)
    assert parent is not None

    # A session from the parent: foot runs a shell that runs what is typed, and draws it.
    marker = harness.home / "forked.txt"
    before = harness.tmp / "before.png"
    script = harness.write_script(
        "forked.txt",
        "settle\n"
        f"type echo room=$WAYRAY_SESSION_PARENT_ROOM link=$WAYRAY_LINK uid=$(id -u) > {marker}\n"
        f"key Return\nsettle 700\nsnapshot {before}\n",
    )
    result = harness.run_script(srv, script)
    assert result.returncode == 0, failure(result)
    session = srv.session()
    assert f"started session {session['id']} (pid" in srv.log_text()
    assert "forked from the session parent" in srv.log_text(), srv.log_text()[-3000:]
    # The session's programs run as the user, without the parent's room nor the link's details.
    assert eventually(lambda: marker.exists() and marker.read_text(), "the typed command's output") == (
        f"room= link= uid={os.getuid()}\n"
    )

    compositor = psutil.Process(session["pid"])
    keeper = psutil.Process(compositor.ppid())
    assert keeper.ppid() == parent  # forked, not started by wrsrvd
    assert_keeper_is(keeper.pid, keeper_kind)
    for proc in (keeper, compositor):
        assert proc.uids().real == os.getuid()
        # /proc/PID/environ names the session (wrsrvd and operators find a session's processes so),
        # and shows nothing of the parent's environment block.
        env = proc.environ()
        assert env.get("WAYRAY_LINK_SESSION") == session["id"], sorted(env)
        assert "WAYRAY_SESSION_PARENT_ROOM" not in env and "WAYRAY_SESSION_PARENT_FD" not in env
        # Nothing of the parent's: not its control socket, not its process session.
        assert not seqpacket_sockets(proc.pid), proc
        assert os.getsid(proc.pid) != os.getsid(parent)
    # The keeper holds no end of the pipe the link's secret came in: each pipe it has is the session's
    # output (the compositor's stdout) or its own signal wake-up (both of whose ends it holds; the
    # compiled keeper has none). The compiled one holds nothing else either.
    output = pipes(compositor.pid).get(1)
    held = list(pipes(keeper.pid).values())
    assert all(p == output or held.count(p) == 2 for p in held), (held, output)
    if keeper_kind == "compiled":  # and besides them only its log
        assert held == [output], held
        log = srv.state / "sessions" / f"{session['id']}.log"
        fds = [fd for fd in os.listdir(f"/proc/{keeper.pid}/fd") if int(fd) > 2]
        others = sorted(os.readlink(f"/proc/{keeper.pid}/fd/{fd}") for fd in fds)
        assert others == sorted([output, str(log)]), others
    # ps shows the session's command line (wrsrvd session …), not the parent's.
    assert compositor.cmdline()[1:5] == ["-m", "wayray.server", "session", "--size"], compositor.cmdline()

    # The parent dies: the session does not, and shows the same picture to its next viewer.
    os.kill(parent, signal.SIGKILL)
    eventually(lambda: not alive(parent), "the session parent gone")
    after = harness.tmp / "after.png"
    result = harness.run_client(srv, "--snapshot", str(after), "--settle", "700")
    assert result.returncode == 0, failure(result)
    assert "resumed session" in result.stderr and srv.session()["id"] == session["id"]
    assert differing_pixels(png_pixels(before), png_pixels(after)) == 0
    # A new session still starts (by exec, while there is no parent).
    other = harness.run_client(srv, "--snapshot", str(harness.tmp / "o.png"), token="after-the-parent")
    assert other.returncode == 0, failure(other)
    assert len(srv.sessions()) == 2

    # wrsrvd killed and started again: the forked session comes back to it, and an operator can end it
    # even when it does not answer (stopped): the new wrsrvd recognises its process by its environment.
    srv.signal(signal.SIGKILL)
    srv.wait()
    assert alive(compositor.pid), "the session died with wrsrvd"
    again = harness.server(FOOT)
    eventually(
        lambda: {s["id"]: s for s in again.sessions() if s["linked"]}.get(session["id"]),
        "the forked session back on the new wrsrvd's link",
    )
    os.kill(compositor.pid, signal.SIGSTOP)
    again.admin("kill", session_id=session["id"])
    eventually(lambda: not alive(compositor.pid), "the stopped session's compositor ended")
    eventually(lambda: not alive(keeper.pid), "the session's keeper ended")
    assert [s["id"] for s in again.sessions()] != [session["id"]]


def test_without_the_session_parent_sessions_start_by_exec(
    harness: Harness, tmp_path: Path, keeper_kind: str
) -> None:
    """``WAYRAY_SESSION_PARENT=0`` (the operator's way out, should forking ever misbehave)."""
    srv = WrServer(harness, FOOT, port=harness.port, extra=[])
    harness.servers.append(srv)
    srv.start(env=dict(harness.env, WAYRAY_SESSION_PARENT="0"))
    result = harness.run_client(srv, "--snapshot", str(tmp_path / "s.png"))
    assert result.returncode == 0, failure(result)
    assert session_parent(srv) is None
    keeper = psutil.Process(psutil.Process(srv.session()["pid"]).ppid())
    assert srv.proc is not None and keeper.ppid() == srv.proc.pid
    assert_keeper_is(keeper.pid, keeper_kind)
    assert "forked from the session parent" not in srv.log_text()

"""wrsrvd's side of the session parent and the parent itself agree on their few constants (wrsrvd
never imports wayray.session.parent: that would import the compositor into the front door)."""

from __future__ import annotations

from wayray.server import sessionparent
from wayray.session import parent


def test_wrsrvd_and_the_session_parent_agree_on_the_control_socket_and_the_environment_room() -> None:
    assert sessionparent.CONTROL_FD_VARIABLE == parent.CONTROL_FD_VARIABLE
    assert sessionparent.ROOM_VARIABLE == parent.ROOM_VARIABLE
    assert sessionparent.ROOM_BYTES == parent.ROOM_BYTES


PROBE = """
import ctypes, json, os, sys
from wayray.session.parent import environment_off_the_block, show_environment
env = json.loads(sys.argv[1])
environment_off_the_block()  # as the parent does at its start
shown = show_environment(env)  # as each forked session does, before its keeper splits off
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
print(json.dumps({
    "shown": shown,
    "environ": open("/proc/self/environ", "rb").read().decode(),
    "getenv": (libc.getenv(b"PATH") or b"").decode(),
}))
"""


def _probe(env: dict[str, str], room: int) -> dict[str, object]:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(env)],
        env={"PATH": "/usr/bin:/bin", "PAD": "." * room},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    result["stderr"] = done.stderr
    return result


def test_a_forked_session_shows_its_own_environment_in_proc_and_nothing_of_its_parents() -> None:
    """wrsrvd (and its tests, and operators' tools) find a session's processes by the session named
    in /proc/PID/environ: the forked child rewrites what the kernel shows there."""
    got = _probe({"WAYRAY_LINK_SESSION": "s-123", "HOME": "/home/x"}, room=4096)
    assert got["shown"] is True
    environ = str(got["environ"])
    assert environ.rstrip("\0").split("\0") == ["WAYRAY_LINK_SESSION=s-123", "HOME=/home/x"]
    assert "PAD=" not in environ and "PATH=" not in environ
    # The process's own environment is untouched by that (the keeper goes on with the parent's).
    assert got["getenv"] == "/usr/bin:/bin"


def test_an_environment_that_does_not_fit_is_said_and_not_half_written() -> None:
    """Too big for the room the parent's exec left: nothing written (the child then execs instead)."""
    got = _probe({"BIG": "x" * 20000}, room=100)
    assert got["shown"] is False
    assert "PAD=" + "." * 100 in str(got["environ"])  # untouched
    assert "starting it by exec" in str(got["stderr"])


def test_a_session_parent_whose_wrsrvd_is_gone_ends_quietly() -> None:
    """wrsrvd that fails to start (a port in use) goes while its session parent imports: the parent
    ends without a traceback in wrsrvd's log (it printed BrokenPipeError's before)."""
    import os
    import socket
    import subprocess
    import sys

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.close()  # wrsrvd gone
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wayray.session.parent"],
            env={**os.environ, parent.CONTROL_FD_VARIABLE: str(theirs.fileno())},
            pass_fds=[theirs.fileno()],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        theirs.close()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_the_session_parent_reads_the_keeper_wrsrvd_asks_for_as_the_session_does() -> None:
    """The parent splits a forked session's keeper off before the session parses its arguments (its
    memory: docs/architecture.md "How a session uses memory"); it reads the keeper and its log from
    the argv wrsrvd writes, and reads them as ``wrsrvd session`` itself does (a keeper that differs
    from the one the session asks for, or none, would be noticed only as memory or a lost log)."""
    from pathlib import Path

    from wayray.server.spawn import SessionSpec, session_argv
    from wayray.session.cli import parser
    from wayray.session.keeper import asked

    spec = SessionSpec(
        session_id="s1",
        secret="x" * 32,
        link=Path("/run/l.sock"),
        runtime_dir=Path("/run/u"),
        command=("foot", "--log", "relative", "--subreaper"),
        size=(800, 600),
        scale=1,
        fps=60,
        idle_fps=1,
        video=True,
        orphan_timeout=None,
        log_dir=None,
    )
    for log_file in (Path("/var/lib/wayray/main/sessions/s1.log"), None):
        options = session_argv(spec, log_file)[4:]
        args = parser().parse_args(options)
        assert asked(options) == (args.subreaper or args.log is not None, args.log)
        assert asked(options) == (True, log_file)  # the session's command's own words do not count
    # What wrsrvd session would refuse (a relative log) splits nothing early: the session says so.
    assert asked(["--log", "x.log", "--", "foot"]) == (False, None)
    assert asked(["--log=/l/s.log", "--", "foot"]) == (True, Path("/l/s.log"))
    assert asked(["--", "foot", "--subreaper"]) == (False, None)

"""The session keeper on its own (wayray/session/keeper.py, and the compiled keeper it execs,
wayray/session/keeper.c): a real process that splits off its keeper and runs a shell as the
"compositor". What wrsrvd and an operator rely on, the same from both keepers: the session's exit
status, signals passed on to it, its output in the capped log with nothing lost or split, what it
left behind ended, the compositor ending when its keeper is killed, no descriptor held that is not
the keeper's. The end-to-end view, with wrsrvd: tests/e2e/test_session_keeper.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from wayray.session import keeper

KINDS = ["compiled", "python"]
T = TypeVar("T")

#: A process that splits off its keeper (argv: kind, log or "-", a descriptor to close or "-") and
#: runs the shell script in WAYRAY_TEST_SCRIPT as its child. Kind "broken": the compiled keeper is
#: the file WAYRAY_TEST_BROKEN names, which cannot be run.
PROBE = """
import os, sys
from pathlib import Path
from wayray.session import keeper
keeper.USE_PROGRAM = sys.argv[1] != "python"
if sys.argv[1] == "broken":
    keeper.program = lambda: Path(os.environ["WAYRAY_TEST_BROKEN"])
close = (int(sys.argv[3]),) if sys.argv[3] != "-" else ()
keeper.split(Path(sys.argv[2]) if sys.argv[2] != "-" else None, close_fds=close)
os.execvp("sh", ["sh", "-c", os.environ["WAYRAY_TEST_SCRIPT"]])
"""

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} wrsrvd-session-keeper\[(\d+)\] (INFO|WARNING) "
    r"wayray\.session\.keeper: (.*)$",
    re.MULTILINE,
)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    """Wait for a state (the timeout only a safety net)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (got := check()) is not None and got is not False:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "compiled":
        assert keeper.program() is not None, "no compiled session keeper: run tools/bootstrap"
    return str(request.param)


class Session:
    """The probe: its pid is the keeper's."""

    def __init__(self, kind: str, tmp: Path, script: str, *, log: bool = True, close: int | None = None):
        self.log = tmp / "s.log" if log else None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYRAY_", "JOURNAL_"))}
        env["WAYRAY_TEST_SCRIPT"] = script
        env["WAYRAY_TEST_BROKEN"] = str(tmp / "broken-keeper")
        argv = [sys.executable, "-c", PROBE, kind, str(self.log or "-"), str(close) if close else "-"]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(close,) if close else (),
        )
        self.kind = kind
        #: What /proc/PID/exe named once the keeper ran its keeper (None: it had ended by then).
        self.exe = eventually(self.keeping, f"the {kind} keeper running")

    def keeping(self) -> Path | None | bool:
        """The keeper's program once it keeps the session: its handlers in place (before them a
        signal would end the process; the compiled one has been exec'd then)."""
        try:
            exe = Path(os.readlink(f"/proc/{self.proc.pid}/exe"))
            caught = Path(f"/proc/{self.proc.pid}/status").read_text().split("SigCgt:")[1].split()[0]
        except (OSError, IndexError):
            exe, caught = Path(), "0"
        if self.proc.poll() is not None:
            return True  # ended already (a short script): nothing more to wait for
        if not int(caught, 16) & (1 << (signal.SIGTERM - 1)):
            return None
        return exe if self.kind != "compiled" or exe == keeper.program() else None

    def child(self) -> int:
        (pid,) = children(self.proc.pid)
        return pid

    def wait(self) -> int:
        self.proc.wait(120)
        return self.proc.returncode

    def lines(self) -> list[tuple[str, str, str]]:
        """The keeper's own lines in the log: (pid, level, message)."""
        assert self.log is not None
        return [tuple(m) for m in LINE.findall(self.log.read_text())]  # type: ignore[misc]


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def only_child(pid: int) -> list[int]:
    """``pid``'s one child, once it has only one: the ``touch`` that made the test's ready file may
    not be reaped yet when the file exists (seen in a CI run beside another suite)."""

    def single() -> list[int] | None:
        found = children(pid)
        return found if len(found) == 1 else None

    return eventually(single, f"a single child of {pid}")


def name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def started(kind: str, tmp_path: Path) -> Iterator[Callable[..., Session]]:
    made: list[Session] = []

    def start(script: str, *, close: int | None = None, log: bool = True) -> Session:
        made.append(Session(kind, tmp_path, script, close=close, log=log))
        return made[-1]

    yield start
    for s in made:  # a session still running: ended as an operator would, through its keeper
        if s.proc.poll() is None:
            s.proc.terminate()
            try:
                s.proc.wait(60)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait(60)


def test_the_keeper_is_the_compiled_program_or_python(started: Callable[..., Session], kind: str) -> None:
    """What actually runs: a compiled keeper that silently fell back to Python would fail here."""
    s = started("exec sleep 1000")
    assert isinstance(s.exe, Path)
    assert (s.exe == keeper.program()) if kind == "compiled" else s.exe.name.startswith("python"), s.exe
    s.proc.terminate()
    assert s.wait() == 128 + signal.SIGTERM


def test_the_keeper_exits_with_the_sessions_status(started: Callable[..., Session]) -> None:
    assert started("exit 7").wait() == 7
    assert started("kill -KILL $$").wait() == 128 + signal.SIGKILL


def test_a_signal_to_the_keeper_goes_to_the_session_and_what_it_left_is_ended(
    started: Callable[..., Session], tmp_path: Path
) -> None:
    """SIGTERM to the keeper reaches the compositor (which here says so and exits 3); the program it
    left running is ended, and the log names it, in the keeper's format (by its whole name, which
    the kernel cuts to 15 bytes)."""
    ready = tmp_path / "ready"
    program = tmp_path / "sleep-with-a-long-name"
    program.symlink_to(shutil.which("sleep") or "/bin/sleep")
    s = started(f"trap 'echo got TERM; exit 3' TERM; {program} 1000 & touch {ready}; wait")
    eventually(ready.exists, "the session's program started")
    compositor = s.child()
    (sleeper,) = only_child(compositor)
    eventually(lambda: name(sleeper) == program.name[:15], "the program running")
    s.proc.send_signal(signal.SIGTERM)
    assert s.wait() == 3
    assert not alive(sleeper)
    assert s.log is not None and "got TERM\n" in s.log.read_text()
    assert s.lines() == [
        (
            str(s.proc.pid),
            "INFO",
            f"the session compositor (pid {compositor}) exited with status 3; stopping 1 program(s) the "
            f"session left behind: {sleeper} (sleep-with-a-long-name)",
        )
    ]


def test_without_a_log_the_output_and_the_keepers_lines_stay_on_its_stderr(
    started: Callable[..., Session], tmp_path: Path
) -> None:
    """``wrsrvd session --subreaper`` without ``--log``: the session writes where the keeper does
    (the journal, under systemd), and the keeper's own line is there in the same format."""
    ready = tmp_path / "ready"
    s = started(f"echo hello from the session; sleep 1000 & touch {ready}; wait", log=False)
    eventually(ready.exists, "the session's program started")
    compositor = s.child()
    (sleeper,) = only_child(compositor)
    eventually(lambda: name(sleeper) == "sleep", "sleep running")
    s.proc.send_signal(signal.SIGTERM)
    assert s.wait() == 128 + signal.SIGTERM
    assert s.proc.stdout is not None and s.proc.stderr is not None
    assert s.proc.stdout.read() == b"hello from the session\n"
    err = s.proc.stderr.read().decode()
    assert [(p, level) for p, level, _ in LINE.findall(err)] == [(str(s.proc.pid), "INFO")], err
    assert f"left behind: {sleeper} (sleep)" in err


def test_programs_that_left_the_tree_and_ignore_sigterm_are_killed(
    started: Callable[..., Session], tmp_path: Path
) -> None:
    """A program that made a process session of its own (``setsid``) and ignores SIGTERM: the
    subreaper keeps it below the keeper, and it is killed after the grace."""
    ready = tmp_path / "ready"
    s = started(f"setsid sh -c 'trap \"\" TERM; touch {ready}; while :; do sleep 1000; done' & wait")
    eventually(ready.exists, "the stubborn program started")
    s.proc.send_signal(signal.SIGTERM)
    assert s.wait() == 128 + signal.SIGTERM
    lines = s.lines()
    assert lines[0][1] == "INFO" and "(sh)" in lines[0][2], lines
    warning = f"ignored SIGTERM for {keeper.SWEEP_GRACE:g} s; killing them"
    assert any(level == "WARNING" and m.endswith(warning) for _, level, m in lines[1:]), lines
    assert not [p for p in pids_with(str(ready)) if alive(p)]


def pids_with(word: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if word.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_the_log_is_cut_at_its_cap_between_lines_and_loses_nothing(started: Callable[..., Session]) -> None:
    """5 MB of 100-byte lines: the first part in ``.old`` (at most the cap, and less by less than a
    line: the cut is at the end of the last line that fit, or where the piece of output that crossed
    the cap began when none of its lines ended in time), the rest in the log; together exactly what
    the session wrote, nothing lost. Both files only the user's."""
    s = started("head -c 5000000 /dev/zero | tr '\\0' x | fold -w 99; echo END")
    assert s.wait() == 0
    assert s.log is not None
    old = Path(f"{s.log}.old")
    first, second = old.read_bytes(), s.log.read_bytes()
    assert keeper.LOG_MAX_BYTES - 100 < len(first) <= keeper.LOG_MAX_BYTES
    lines = 5_000_000 // 99
    assert first + second == (b"x" * 99 + b"\n") * lines + b"x" * (5_000_000 - lines * 99) + b"END\n"
    for path in (old, s.log):
        assert path.stat().st_mode & 0o777 == 0o600


def test_the_session_ends_when_its_keeper_is_killed(started: Callable[..., Session]) -> None:
    """The compositor gets SIGTERM when its keeper dies (``PR_SET_PDEATHSIG``; the compiled keeper is
    the same process, exec'd, so this still names it)."""
    s = started("exec sleep 1000")
    child = s.child()
    s.proc.kill()
    s.wait()
    eventually(lambda: not alive(child), "the session to end with its keeper")


def test_the_keeper_holds_no_descriptor_but_the_sessions_output(
    started: Callable[..., Session], kind: str
) -> None:
    """The descriptor the keeper is told to close (the link secret's pipe) it does not hold; the
    compiled keeper holds nothing but its standard ones and the output pipe."""
    r, w = os.pipe()
    try:
        s = started("exec sleep 1000", close=r)
        fds = os.listdir(f"/proc/{s.proc.pid}/fd")
        held = {int(fd): os.readlink(f"/proc/{s.proc.pid}/fd/{fd}") for fd in fds}
        assert os.readlink(f"/proc/self/fd/{r}") not in held.values()
        output = os.readlink(f"/proc/{s.child()}/fd/1")
        assert output in held.values()
        if kind == "compiled":
            assert s.log is not None
            assert sorted(held)[:3] == [0, 1, 2]
            assert sorted(t for fd, t in held.items() if fd > 2) == sorted([output, str(s.log)])
    finally:
        os.close(r)
        os.close(w)


def test_a_compiled_keeper_that_cannot_run_leaves_the_python_one_which_says_why(tmp_path: Path) -> None:
    """A program that is there but does not run (here not a program at all): the keeper goes on as
    the Python one, the session works as ever, and its log says why once."""
    broken = tmp_path / "broken-keeper"
    broken.write_bytes(b"\x00not a program\n")
    broken.chmod(0o755)
    ready = tmp_path / "ready"
    s = Session("broken", tmp_path, f"sleep 1000 & touch {ready}; wait")
    assert isinstance(s.exe, Path) and s.exe.name.startswith("python"), s.exe
    eventually(ready.exists, "the session's program started")
    s.proc.send_signal(signal.SIGTERM)
    assert s.wait() == 128 + signal.SIGTERM
    lines = s.lines()
    assert lines[0] == (
        str(s.proc.pid),
        "INFO",
        f"the session keeper is Python (pid {s.proc.pid}): {broken} could not be run: Exec format error",
    ), lines
    assert [m for _, _, m in lines].count(lines[0][2]) == 1
    assert "stopping 1 program(s) the session left behind" in lines[1][2]

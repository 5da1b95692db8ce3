"""The session keeper: a small parent process that holds a standalone session's processes and output.

wrsrvd starts the sessions of standalone mode (and of ``sessions = "command"``) itself, each in a
process session of its own. Two things must not escape such a session:

- **Its programs.** ``nohup prog &`` or ``setsid prog`` in the session's terminal leave its process
  group and session, so signalling the group (``wradm session kill``) misses them, and when the
  compositor crashes they are re-parented to init and run on. The keeper is a *child subreaper*
  (Linux ``PR_SET_CHILD_SUBREAPER``, as wrsessd's session worker is for login-mode sessions): every
  program the session starts stays below it, however it detaches. When the compositor exits, for
  whatever reason (its command ended, ``End``, SIGTERM, SIGKILL), the keeper stops what is left
  (SIGTERM and SIGCONT, SIGKILL after :data:`SWEEP_GRACE`) and exits with the compositor's status.
- **Its output.** The compositor's log and its programs' stdout and stderr go through a pipe to the
  keeper, which writes them to ``<state>/sessions/<id>.log`` with a size cap
  (:data:`LOG_MAX_BYTES`): a full log becomes ``<id>.log.old`` (replacing the previous one) and a
  new one starts, so a session uses at most twice the cap however much it writes.

:func:`split` forks: the child returns and goes on as the session compositor; the parent is the
keeper and never returns. The compositor gets SIGTERM should the keeper die (``PR_SET_PDEATHSIG``):
it ends its session cleanly rather than run on with nobody to watch its programs or take its output.
The keeper never holds the session's link secret (it closes the pipe that carries it at once).

The keeper is a compiled program when there is one (``keeper.c`` beside this file, built by
``tools/bootstrap`` and the packages into ``<prefix>/libexec/wayray/``, :func:`program`): right
after the fork the keeper's process execs it, with the same pid, and is then a small C program
instead of a Python process holding copies of the pages it shared with the compositor (issue 15:
memory per session). It does what :class:`_Keeper` does, to the byte of the log. Where there is no
program, or it cannot be run, the keeper stays this Python process and runs :class:`_Keeper`.
``WAYRAY_SESSION_KEEPER=python`` in the environment (or :data:`USE_PROGRAM` set False) always keeps
the Python keeper.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

from wayray.common.libc import libc as c_library
from wayray.common.log import setup
from wayray.common.processes import process_name
from wayray.launcher import proctree
from wayray.wire.layout import MiB

log = logging.getLogger("wayray.session.keeper")

#: A session log is cut at this size; the part before is kept as ``<log>.old``.
LOG_MAX_BYTES = 4 * MiB
#: After the compositor exits: how long its leftover programs get to end after SIGTERM.
SWEEP_GRACE = 3.0
_PR_SET_PDEATHSIG = 1
#: The compiled keeper's file name, in ``<prefix>/libexec/wayray/`` (:func:`program`).
PROGRAM_NAME = "wrsrvd-session-keeper"
#: Names the keeper :func:`split` makes: ``python`` keeps the Python one; unset or anything else
#: runs the compiled program where there is one.
KEEPER_VARIABLE = "WAYRAY_SESSION_KEEPER"
#: False: :func:`split` never runs the compiled keeper (set from :data:`KEEPER_VARIABLE` by default).
USE_PROGRAM = os.environ.get(KEEPER_VARIABLE, "") != "python"
#: The signals the keeper forwards or waits for: blocked from before the fork until the keeper's
#: handlers are in place (the compiled keeper's too: a blocked signal stays pending across exec).
_HELD = frozenset({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


class CappedLog:
    """Append-only output to ``path`` with a size cap and one previous file (``path.old``).

    Writes never raise: output that cannot be written (a full disk) is counted and said when writing
    works again."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0
        #: The last byte written ended a line (the keeper's own lines start on a line of their own).
        self.at_line_start = True
        self._lost = 0
        self._why = ""
        self._open()

    def _open(self) -> None:
        try:
            fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as err:
            self._why = err.strerror or str(err)
            return
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            os.replace(self.path, f"{self.path}.old")
        self._open()

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._fd is None:
            self._open()  # it could not be opened before (a full disk, say): try again
        elif self._size + len(data) >= self.max_bytes:
            # The lines that still fit end this file; a line is not split across the two (unless no
            # line of this piece ends in the room left: the file is cut where it is then).
            cut = data.rfind(b"\n", 0, max(0, self.max_bytes - self._size)) + 1
            self._put(data[:cut])
            data = data[cut:]
            self._rotate()
        if self._lost and self._fd is not None:
            lost, self._lost = self._lost, 0
            self._put(f"[wayray: {lost} bytes of this session's output were lost: {self._why}]\n".encode())
        self._put(data[-self.max_bytes :])

    def _put(self, data: bytes) -> None:
        while data:
            if self._fd is None:
                self._lost += len(data)
                return
            try:
                n = os.write(self._fd, data)
            except OSError as err:  # ENOSPC, EIO: drop it, say so later
                self._lost += len(data)
                self._why = err.strerror or str(err)
                return
            self._size += n
            self.at_line_start = data[n - 1 : n] == b"\n"
            data = data[n:]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _ToCappedLog(logging.Handler):
    def __init__(self, out: CappedLog) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            line = ("" if self.out.at_line_start else "\n") + self.format(record) + "\n"
            self.out.write(line.encode("utf-8", "replace"))


#: Set in a session process forked from the session parent (wayray.session.parent): what the parent
#: imported stays frozen in the compositor too, so that the collector never writes to those pages and
#: they stay shared with the parent and every other session.
KEEP_FROZEN = False
#: Set in the compositor once :func:`split` made its keeper (a second call does nothing).
SPLIT = False


def asked(argv: list[str]) -> tuple[bool, Path | None]:
    """Whether ``wrsrvd session`` options (``argv``, before any ``--``) ask for a keeper, and its log.

    Read without argparse, for the session parent's early split; it knows only the spellings wrsrvd
    writes (``--subreaper``, ``--log FILE``, ``--log=FILE``), and a log that is not an absolute path
    counts as not asked (``wrsrvd session`` itself says what is wrong with it, and splits as before)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    log_path: Path | None = None
    wanted = "--subreaper" in options
    for i, arg in enumerate(options):
        value = options[i + 1] if arg == "--log" and i + 1 < len(options) else None
        if arg.startswith("--log="):
            value = arg[len("--log=") :]
        if value is not None:
            if not value.startswith("/"):
                return False, None
            log_path, wanted = Path(value), True
    return wanted, log_path


def program() -> Path | None:
    """The compiled keeper, where this installation has one: ``<prefix>/libexec/wayray/`` (the
    virtualenv's prefix; ``/opt/wayray`` in the packages)."""
    path = Path(sys.prefix) / "libexec" / "wayray" / PROGRAM_NAME
    return path if os.access(path, os.X_OK) else None


def split(log_path: Path | None, *, close_fds: tuple[int, ...] = ()) -> None:
    """Become the keeper of a new child; returns only in the child (the session compositor).

    ``log_path``: where the session's output goes (None: the output stays on this process's stdout
    and stderr, e.g. the journal). ``close_fds``: descriptors the keeper must not hold (the link
    secret's pipe).

    Every page this process wrote before the split is the keeper's and the compositor's; once the
    compositor writes it again, the keeper holds the old copy alone. So the earlier the split, the
    less the keeper holds: the session parent splits right after its fork, before the session's own
    code runs (``wrsrvd session`` started by exec splits after parsing its arguments). The compiled
    keeper (:func:`program`) holds none of them: the keeper's process execs it right after the fork."""
    global SPLIT
    if SPLIT:
        return
    subreaper = proctree.become_subreaper()
    r = w = -1
    if log_path is not None:
        r, w = os.pipe()
    # The keeper runs little Python: keep the collector off the pages it shares with the child.
    gc.collect()
    gc.freeze()
    keeper = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        SPLIT = True
        if not KEEP_FROZEN:
            gc.unfreeze()
        if log_path is not None:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.close(w)
        _die_with_parent(keeper)
        return
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if w >= 0:
        os.close(w)
    output = r if r >= 0 else None
    why = (logging.DEBUG, f"{KEEPER_VARIABLE}=python")
    if USE_PROGRAM:
        why = _run_program(child, output, log_path)
    # Still here: the Python keeper.
    out = CappedLog(log_path) if log_path is not None else None
    status = _Keeper(child, output, out, subreaper).run(mask, why)
    os._exit(status)


def _run_program(child: int, output: int | None, log_path: Path | None) -> tuple[int, str]:
    """Exec the compiled keeper in this process (the keeper's); returns only if it cannot: why, and
    the level to say it at (a program that is there and fails is news; one not built is not).

    It gets the output pipe and the standard descriptors, nothing else (every other descriptor is
    closed at the exec), and the environment ``/proc/PID/environ`` shows now (a forked session's,
    which wrsrvd recognises the session's processes by)."""
    path = program()
    if path is None:
        return logging.DEBUG, f"there is no {Path(sys.prefix) / 'libexec' / 'wayray' / PROGRAM_NAME}"
    for fd in _open_fds():
        if fd > 2 and fd != output:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
    if output is not None:
        os.set_inheritable(output, True)
    argv = [PROGRAM_NAME, str(child), str(output) if output is not None else "-", str(log_path or "-")]
    try:
        os.execve(path, argv, _shown_environment())
    except OSError as err:
        return logging.INFO, f"{path} could not be run: {err.strerror or err}"


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _shown_environment() -> dict[str, str]:
    """The environment ``/proc/self/environ`` shows (the session's, in a forked session whose process
    rewrote it; the compiled keeper shows it in turn), else this process's."""
    try:
        block = Path("/proc/self/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    env = {}
    for entry in block.split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and name:
            env[os.fsdecode(name)] = os.fsdecode(value)
    return env


def _die_with_parent(keeper: int) -> None:
    if sys.platform.startswith("linux"):
        libc = c_library()
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != keeper:  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)


class _Keeper:
    def __init__(self, child: int, output: int | None, out: CappedLog | None, subreaper: bool) -> None:
        self.child = child
        self.output = output
        self.out = out
        self.subreaper = subreaper
        self.status: int | None = None
        self.me = os.getpid()
        if out is None:
            setup("wrsrvd-session-keeper")  # stderr, as the compositor's own log (the journal, say)
        else:
            handler = _ToCappedLog(out)
            handler.setFormatter(
                logging.Formatter(
                    "%(asctime)s wrsrvd-session-keeper[%(process)d] %(levelname)s %(name)s: %(message)s"
                )
            )
            root = logging.getLogger()
            for old in list(root.handlers):
                root.removeHandler(old)
            root.addHandler(handler)
            root.setLevel(logging.INFO)

    def run(self, mask: set[int | signal.Signals] | None = None, why: tuple[int, str] | None = None) -> int:
        """Keep the session until its compositor exits; its status. ``mask``: the signal mask to
        restore once the handlers are in place; ``why``: why this keeper is not the compiled one."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._forward)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if why is not None:
            log.log(why[0], "the session keeper is Python (pid %d): %s", self.me, why[1])
        while self.status is None:
            self._reap()
            if self.status is not None:
                break
            self._wait([wake_r], 5.0)
            with contextlib.suppress(OSError):
                os.read(wake_r, 4096)
        self._sweep(wake_r)
        self._drain()
        if self.out is not None:
            self.out.close()
        return self.status

    def _forward(self, sig: int, _frame: object) -> None:
        """A signal to the keeper is for the session: the compositor acts on it (and exits)."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, sig)

    def _reap(self) -> None:
        for pid, status in proctree.reap_children():
            if pid == self.child:
                code = os.waitstatus_to_exitcode(status)
                self.status = code if code >= 0 else 128 - code

    def _wait(self, fds: list[int], timeout: float) -> None:
        """Wait for a signal (``fds``) or output, copying the output to the log meanwhile."""
        watch = [*fds, *([self.output] if self.output is not None else [])]
        try:
            ready, _, _ = select.select(watch, [], [], timeout)
        except InterruptedError:
            return
        if self.output is not None and self.output in ready:
            self._copy()

    def _copy(self) -> bool:
        """Move what waits in the output pipe to the log; False at its end (nobody writes any more)."""
        assert self.output is not None and self.out is not None
        try:
            data = os.read(self.output, 65536)
        except BlockingIOError:
            return True
        except OSError as err:
            if err.errno == errno.EINTR:
                return True
            data = b""
        if not data:
            os.close(self.output)
            self.output = None
            return False
        self.out.write(data)
        return True

    def _sweep(self, wake: int) -> None:
        """The compositor is gone: end every program of the session that is left."""
        left = self._left()
        if not left:
            return
        log.info(
            "the session compositor (pid %d) exited with status %s; stopping %d program(s) the session left "
            "behind: %s",
            self.child,
            self.status,
            len(left),
            ", ".join(f"{pid} ({process_name(pid)})" for pid in sorted(left)[:10]),
        )
        proctree.signal_all(left, signal.SIGTERM)
        proctree.signal_all(left, signal.SIGCONT)  # a stopped program cannot act on SIGTERM
        deadline = time.monotonic() + SWEEP_GRACE
        while (left := self._left()) and time.monotonic() < deadline:
            self._wait([wake], min(0.1, max(0.0, deadline - time.monotonic())))
            with contextlib.suppress(OSError):
                os.read(wake, 4096)
        for _ in range(50):  # programs that fork while being killed: until none is left
            if not (left := self._left()):
                break
            log.warning("%d program(s) ignored SIGTERM for %g s; killing them", len(left), SWEEP_GRACE)
            proctree.signal_all(left, signal.SIGKILL)
            self._wait([wake], 0.1)
        self._reap_all()

    def _left(self) -> set[int]:
        self._reap_all()
        if self.subreaper:
            return {p for p in proctree.descendants(self.me) if not proctree.is_zombie(p)}
        return set()  # without a subreaper (not Linux) what left the tree is out of reach

    def _reap_all(self) -> None:
        proctree.reap_children()

    def _drain(self) -> None:
        """The last output: everything written before the programs ended (their write ends are closed
        now; one that escaped even the subreaper may hold one, so this does not wait for ever)."""
        if self.output is None:
            return
        os.set_blocking(self.output, False)
        deadline = time.monotonic() + 1.0
        while self.output is not None and time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([self.output], [], [], 0.1)
            except InterruptedError:
                continue
            if ready and not self._copy():
                break

"""Where the programs of a session write their output: never wrsessd's own log.

A session's programs (its compositor, the greeter, the session.toml components) are the user's: what
they print must not be able to pass for wrsessd's log lines ("authentication succeeded for root").
So they never inherit the session worker's stdout and stderr, which are wrsessd's. Instead, like
the display managers before us (gdm's per-session journal streams, Xorg's ``~/.xsession-errors``):

* **wrsessd logs to journald** (``JOURNAL_STREAM`` names its stderr): the root worker opens a journal
  stream of the session's own, with the identifier ``wayray-session`` (``wayray-greeter`` for login
  screens). The identifier is sent by whoever opens the stream, so the user cannot change it; and the
  worker connects with the user's uid and gid as its *effective* ids, so journald records the user in
  the stream's trusted ``_UID``/``_GID`` fields (and ``_SYSTEMD_SESSION``/``_SYSTEMD_OWNER_UID`` when
  pam_systemd put the worker in a logind session). The user's own lines therefore land in their own
  journal file (``journalctl --user`` shows them to the user) and wrsessd's lines keep ``_UID=0``.
  Lines are taken as they are: no ``<N>`` priority prefix is honoured (no user chooses "emerg").
* **No journald:** ``$XDG_STATE_HOME/wayray/session.log`` (default ``~/.local/state/wayray/``), the
  previous one kept as ``session.log.old``, opened by a child that became the user first (directories
  0700, the file 0600, ``O_NOFOLLOW``), so a link the user planted cannot make root write anywhere.
  The child passes the open file back to the worker over a socketpair.
* When neither works: /dev/null, and the worker says so in wrsessd's log. Except for greeter
  sessions: their account has no home of its own, so without journald this is where they always
  end up, and a login screen that fails to start would leave no trace of why. Their output goes to
  wrsessd's log through a relay (a child of the worker that stays root), every line after the prefix
  ``greeter session <id>:`` with control characters escaped, so nothing the greeter prints can pass
  for one of wrsessd's own lines; at most :data:`RELAY_MAX_LINES` lines a session.

The descriptor is close-on-exec in the worker; only the session's programs get it, as fd 1 and 2.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
import select
import signal
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from wayray.common.log import under_journal
from wayray.launcher.spawn import Account

log = logging.getLogger(__name__)

#: Journal identifiers (SYSLOG_IDENTIFIER) of sessions' output: ``journalctl -t wayray-session``.
SESSION_IDENTIFIER = "wayray-session"
GREETER_IDENTIFIER = "wayray-greeter"
#: The per-user log file (no journald), under ``$XDG_STATE_HOME``.
LOG_DIR = "wayray"
LOG_NAME = "session.log"
#: How long opening the log file (as the user, in a child) may take: a hung network home must not
#: hold the login.
OPEN_TIMEOUT_S = 10.0
_LOG_INFO = 6
#: Greeter sessions relayed into wrsessd's log: at most this many lines each (then a count), each cut
#: at this many bytes. A login screen that fails says why in its first lines.
RELAY_MAX_LINES = 500
RELAY_LINE_BYTES = 2000
#: journald's socket for stdout streams.
JOURNAL_STDOUT = "/run/systemd/journal/stdout"


class OutputKind(enum.Enum):
    JOURNAL = "journal"
    FILE = "file"
    RELAYED = "relayed"  # greeters only: into wrsessd's log, after a prefix
    DISCARDED = "discarded"


@dataclass(frozen=True)
class SessionOutput:
    """An open descriptor the session's programs get as stdout and stderr, and what it is."""

    fd: int
    kind: OutputKind
    #: For logs: ``the journal as wayray-session``, the file's path, ``wrsessd's log …``, or
    #: ``/dev/null``.
    where: str

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class OutputUnavailable(Exception):
    pass


def open_output(
    account: Account, env: Mapping[str, str], *, greeter: bool, session_id: str = ""
) -> tuple[SessionOutput, str | None]:
    """The session's output for ``account``; call in the root worker, before starting its programs.

    Returns the output and, when it is not the first choice, why (for wrsessd's log): under journald
    a stream, else (or when that fails) the log file, else (greeters) wrsessd's log through a relay,
    else /dev/null.
    """
    problems = []
    if under_journal():
        identifier = GREETER_IDENTIFIER if greeter else SESSION_IDENTIFIER
        try:
            fd = open_journal_stream(identifier, account)
            return SessionOutput(fd, OutputKind.JOURNAL, f"the journal as {identifier}"), None
        except OSError as err:
            problems.append(f"cannot open a journal stream ({err.strerror or err})")
    path = log_path(account, env)
    try:
        fd = open_log_file(account, path)
        return SessionOutput(fd, OutputKind.FILE, path), "; ".join(problems) or None
    except (OutputUnavailable, OSError) as err:
        problems.append(f"cannot open {path} ({getattr(err, 'strerror', None) or err})")
    if greeter:
        label = f"greeter session {session_id}"
        try:
            fd = open_relay(label)
            where = f"wrsessd's log (each line after '{label}:')"
            return SessionOutput(fd, OutputKind.RELAYED, where), "; ".join(problems)
        except OSError as err:
            problems.append(f"cannot relay it to wrsessd's log ({err.strerror or err})")
    problem = "; ".join(problems)
    fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    return SessionOutput(fd, OutputKind.DISCARDED, os.devnull), problem


# --- the relay into wrsessd's log (greeters) -----------------------------------------------------


def open_relay(label: str) -> int:
    """A pipe whose lines a forked child writes into this process's log (the worker's: wrsessd's), each
    as ``<label>: <line>`` with control characters escaped: the first :data:`RELAY_MAX_LINES`, then how
    many more there were. Returns the write end (close-on-exec); only the session's programs get it.

    The child stays root: one running as the greeter's account could be made to write anything into
    wrsessd's log. It reads only its pipe, ends when every program holding the write end has closed
    it, and on SIGTERM (the session's teardown) logs what is already in the pipe and ends."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            os.close(wfd)
            # Nothing of the worker's (its link to wrsessd, PAM's descriptors) stays open here.
            os.closerange(3, rfd)
            os.closerange(rfd + 1, 65536)
            _relay(rfd, label)
            status = 0
        finally:
            os._exit(status)
    os.close(rfd)
    return wfd


def _relay(fd: int, label: str) -> None:
    from wayray.launcher import proctree

    proctree.set_process_name("wrsessd-relay")
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda *_: None)
    shown = more = 0
    pending = b""

    def emit(raw: bytes) -> None:
        nonlocal shown, more
        if shown < RELAY_MAX_LINES:
            log.info("%s: %s", label, _escape(raw[:RELAY_LINE_BYTES]))
            shown += 1
        else:
            more += 1

    def take(chunk: bytes) -> None:
        nonlocal pending
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            emit(line)
        if len(pending) > RELAY_LINE_BYTES:
            emit(pending)
            pending = b""

    while True:
        ready = select.select([fd, wake_r], [], [])[0]
        if fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            take(chunk)
        elif wake_r in ready:  # SIGTERM: what the programs wrote before they ended, then stop
            os.set_blocking(fd, False)
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(fd, 65536):
                    take(chunk)
            break
    if pending:
        emit(pending)
    if more:
        log.info("%s: %d more line(s), not logged", label, more)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}


def _escape(raw: bytes) -> str:
    """A line as text with every control character (but tab) written ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace").removesuffix("\r").translate(_CONTROL)


# --- journald --------------------------------------------------------------------------------------


def open_journal_stream(identifier: str, account: Account, *, path: str = JOURNAL_STDOUT) -> int:
    """A new journald stdout stream with ``identifier``, connected with the user's effective ids.

    This is ``sd_journal_stream_fd(3)`` (the protocol is a header of seven lines, then the text),
    written out here so that wrsessd needs no libsystemd binding. journald takes ``_UID``/``_GID``
    from the connection's peer credentials, the effective ids at ``connect``: the stream's lines are
    recorded as the user's and (SplitMode=uid) kept in the user's journal file. Only the connect runs
    with the user's ids; the worker is root again right after.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        if os.geteuid() == 0 and account.uid != 0:
            os.setegid(account.gid)
            try:
                os.seteuid(account.uid)
                try:
                    sock.connect(path)
                finally:
                    os.seteuid(0)
            finally:
                os.setegid(0)
        else:
            sock.connect(path)
        sock.shutdown(socket.SHUT_RD)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)  # as libsystemd does
        # identifier, unit (only PID 1 names one), priority, level prefix (off: no user picks "emerg"),
        # and no forwarding to syslog, kmsg or the console beyond journald's own settings.
        sock.sendall(f"{identifier}\n\n{_LOG_INFO}\n0\n0\n0\n0\n".encode())
    except BaseException:
        sock.close()
        raise
    return sock.detach()


# --- the log file ----------------------------------------------------------------------------------


def log_path(account: Account, env: Mapping[str, str]) -> str:
    """``$XDG_STATE_HOME/wayray/session.log`` (a relative XDG_STATE_HOME is ignored, as the XDG base
    directory specification says), default ``~/.local/state/wayray/session.log``."""
    state_home = env.get("XDG_STATE_HOME") or ""
    if not os.path.isabs(state_home):
        state_home = os.path.join(account.home, ".local", "state")
    return os.path.join(state_home, LOG_DIR, LOG_NAME)


def open_log_file(account: Account, path: str, *, timeout: float = OPEN_TIMEOUT_S) -> int:
    """Open ``path`` for appending, in a forked child that has become ``account``; the previous file
    is kept as ``<path>.old``. Returns the descriptor (close-on-exec); OutputUnavailable says why not.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # child
        try:
            ours.close()
            keep = theirs.fileno()
            # Nothing of the worker's (its link to wrsessd, PAM's descriptors) stays open as the user.
            os.closerange(3, keep)
            os.closerange(keep + 1, 65536)
            account.drop_privileges()
            try:
                fd = _open_as_user(path)
                socket.send_fds(theirs, [b"ok"], [fd])
            except OSError as err:
                theirs.sendall(f"error {err.strerror or err}".encode())
        finally:
            os._exit(0)
    theirs.close()
    answered = False
    try:
        if not select.select([ours], [], [], timeout)[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise OutputUnavailable(f"not opened within {timeout:g} s")
        msg, fds, _flags, _addr = socket.recv_fds(ours, 4096, 1)
        answered = True
    except OSError as err:
        raise OutputUnavailable(f"the opener failed: {err.strerror or err}") from None
    finally:
        ours.close()
        with contextlib.suppress(ChildProcessError):
            # Once it answered it exits at once; one that was killed (stuck in the kernel on a hung
            # network home) is reaped later with the session's other children.
            os.waitpid(pid, 0 if answered else os.WNOHANG)
    if fds and msg == b"ok":
        os.set_inheritable(fds[0], False)
        return fds[0]
    for fd in fds:
        os.close(fd)
    raise OutputUnavailable(msg.decode(errors="replace").removeprefix("error ") or "the opener failed")


def _open_as_user(path: str) -> int:
    """In the child, as the user: make the directories (0700), keep the old log, open a new one."""
    os.umask(0o077)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            os.replace(path, path + ".old")  # a link is moved aside, never followed
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    # O_NONBLOCK: a FIFO put in its place must not hang the login (ENXIO without a reader).
    fd = os.open(path, flags | os.O_NONBLOCK, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except OSError:
        os.close(fd)
        raise
    return fd

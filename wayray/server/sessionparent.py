"""wrsrvd's side of the session parent (``wayray.session.parent``): a process that has imported the
session compositor once and forks each new standalone session from it, so that a session starts in
milliseconds rather than after a second or more of Python imports, and sessions share those pages.

wrsrvd starts it by exec at its start (standalone and instance modes whose sessions run a command as
wrsrvd's user; never in login mode, where wrsessd starts sessions as their users), and uses it once
it has said it is ready. Whenever it is not (still importing, failed, gone), a session is started by
exec as before: the parent makes starting quicker, never possible or not. It ends when wrsrvd closes
the socket (wrsrvd stopping, or dying: the socket closes with the process); the sessions it forked
live on and come back to the next wrsrvd as every session does.

``WAYRAY_SESSION_PARENT=0`` in wrsrvd's environment turns it off (every session by exec).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import time

from wayray.common.notify import child_environment

log = logging.getLogger("wayray.server")

#: wayray.session.parent's constants (that module is never imported by wrsrvd: it imports the
#: compositor), repeated here; tests/server/test_session_parent.py checks they agree.
CONTROL_FD_VARIABLE = "WAYRAY_SESSION_PARENT_FD"
ROOM_VARIABLE = "WAYRAY_SESSION_PARENT_ROOM"
ROOM_BYTES = 64 * 1024
ARGV_ROOM = 512
#: How long wrsrvd waits for the parent's answer to a request (a fork) before it gives up on it.
ANSWER_TIMEOUT = 10.0
#: A parent that is gone is started again at a session's start, at most this often (seconds): one that
#: fails at once (a broken installation) costs one process per interval, not one per session.
RESTART_INTERVAL = 30.0
#: The switch (the environment of wrsrvd): "0" starts every session by exec.
SWITCH = "WAYRAY_SESSION_PARENT"


class NotForked(OSError):
    """The session parent did not start the session (it may be started by exec)."""


class MaybeForked(OSError):
    """The session parent did not answer: the session may run or not."""


def wanted() -> bool:
    return sys.platform.startswith("linux") and os.environ.get(SWITCH, "1") != "0"


class SessionParent:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.ready = False
        self.started_at = -RESTART_INTERVAL
        #: Exit statuses the parent reported, by pid, until the session's watch takes them.
        self.statuses: dict[int, int] = {}

    def start(self) -> None:
        """Start the parent (it imports in the background; :meth:`spawn` uses it once it is ready)."""
        self.close()
        self.started_at = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = child_environment()
        for name in ("WAYRAY_LINK", "WAYRAY_LINK_SESSION", "WAYRAY_LINK_SECRET", "WAYRAY_LINK_SECRET_FD"):
            env.pop(name, None)
        # Room in its exec-time environment block, which each session overwrites with its own.
        env[ROOM_VARIABLE] = "." * ROOM_BYTES
        env[CONTROL_FD_VARIABLE] = str(theirs.fileno())
        # No BLAS worker thread in a process that forks (numpy starts one per core at import; a fork
        # takes only the forking thread). Sessions do no floating-point matrix work.
        env["OPENBLAS_NUM_THREADS"] = "1"
        try:
            self.proc = subprocess.Popen(
                # The blank argument is room for each session's command line, which ps shows.
                [sys.executable, "-m", "wayray.session.parent", " " * ARGV_ROOM],
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                pass_fds=(theirs.fileno(),),
            )
        except OSError as err:
            log.warning("cannot start the session parent (%s); sessions start by exec", err)
            ours.close()
            return
        finally:
            theirs.close()
        self.sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_readable)
        log.debug("session parent started (pid %d)", self.proc.pid)

    def usable(self) -> bool:
        """Whether a session can be forked from the parent now (it has imported everything)."""
        if self.proc is not None and self.proc.poll() is not None:
            log.warning(
                "the session parent (pid %d) exited with status %s; sessions start by exec",
                self.proc.pid,
                self.proc.returncode,
            )
            self.close()
        if self.sock is None and time.monotonic() - self.started_at >= RESTART_INTERVAL:
            log.info("starting the session parent again")
            self.start()  # for the sessions after this one
        return self.ready and self.sock is not None

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str, fds: list[int]) -> int:
        """A new session process from the parent: its pid. Raises :class:`NotForked` when the parent
        surely did not fork (wrsrvd may start the session by exec), :class:`MaybeForked` when it cannot
        tell (no answer: a session started by exec as well could be a second one)."""
        assert self.sock is not None
        try:
            socket.send_fds(self.sock, [json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()], fds)
        except OSError as err:
            self.close()
            raise NotForked(f"cannot reach the session parent: {err}") from None
        try:
            end = time.monotonic() + ANSWER_TIMEOUT
            while True:
                readable, _, _ = select.select([self.sock], [], [], max(0.0, end - time.monotonic()))
                if not readable:
                    raise OSError(f"no answer within {ANSWER_TIMEOUT:g} s")
                answer = self._receive()
                if "exited" in answer:
                    self._exited(answer)
                    continue
                break
        except OSError as err:
            self.close()
            raise MaybeForked(f"the session parent did not answer: {err}") from None
        pid = answer.get("pid")
        if not isinstance(pid, int):
            raise NotForked(f"the session parent could not fork: {answer.get('error', answer)}")
        return pid

    def status_of(self, pid: int) -> int | None:
        """The exit status the parent reported for ``pid`` (Popen's: the code, or -SIGNAL), once."""
        return self.statuses.pop(pid, None)

    def _on_readable(self) -> None:
        if self.sock is None:
            return
        try:
            answer = self._receive()
        except (OSError, BlockingIOError) as err:
            if not isinstance(err, BlockingIOError):
                if not self.ready:
                    log.warning("the session parent failed to start (%s); sessions start by exec", err)
                self.close()
            return
        if answer.get("ready") is True and self.proc is not None:
            self.ready = True
            log.info(
                "session parent ready (pid %d, %.1f s): new sessions are forked from it",
                self.proc.pid,
                time.monotonic() - self.started_at,
            )
        elif "exited" in answer:
            self._exited(answer)

    def _exited(self, answer: dict[str, object]) -> None:
        pid, status = answer.get("exited"), answer.get("status")
        if isinstance(pid, int) and isinstance(status, int):
            self.statuses[pid] = status
            while len(self.statuses) > 4096:  # statuses nobody asked for (a session wrsrvd forgot)
                self.statuses.pop(next(iter(self.statuses)))

    def _receive(self) -> dict[str, object]:
        assert self.sock is not None
        data = self.sock.recv(64 * 1024, socket.MSG_DONTWAIT)
        if not data:
            raise OSError("the session parent closed its socket")
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise OSError("the session parent sent something else than an answer")
        return answer

    def close(self) -> None:
        """Let the parent go (it exits when its socket closes); sessions it forked live on."""
        if self.sock is not None:
            with contextlib.suppress(Exception):  # the loop may be closed already
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self.ready = False
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.proc = None

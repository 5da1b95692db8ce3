"""The per-uid cap on wrsessd's socket: the real wrsessd, connections from real uids (forked children
that became the greeter user), no stand-ins."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import socket
from collections.abc import Callable

import pytest

from tests.launcher.harness import Accounts, Daemon, Sandbox, wait_for
from wayray.launcher import protocol as p
from wayray.launcher.client import LauncherClient

pytestmark = [pytest.mark.root, pytest.mark.slow]

StartDaemon = Callable[..., Daemon]
CAP = 3


class AsUser:
    """A forked child that became ``uid`` and opens or closes connections to wrsessd on command."""

    def __init__(self, uid: int, gid: int, groups: list[int], path: str) -> None:
        self.cmd_r, self.cmd_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - child
            try:
                os.close(self.cmd_w)
                os.close(self.out_r)
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)
                self._serve(path)
            finally:
                os._exit(0)
        os.close(self.cmd_r)
        os.close(self.out_w)
        self._out = os.fdopen(self.out_r)

    def _serve(self, path: str) -> None:  # pragma: no cover - child
        held: list[socket.socket] = []
        with os.fdopen(self.cmd_r) as commands, os.fdopen(self.out_w, "w") as out:
            for line in commands:
                what = line.strip()
                if what == "open":
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    answer = self._request(sock, path)
                    if answer.get("error_type") == "limit":
                        sock.close()
                    else:
                        held.append(sock)  # served: kept open
                elif what == "close":  # one served connection
                    held.pop().close()
                    answer = {}
                else:
                    return
                out.write(json.dumps(answer) + "\n")
                out.flush()

    @staticmethod
    def _request(sock: socket.socket, path: str) -> dict[str, object]:  # pragma: no cover - child
        """Connect and make one request: the answer says whether the connection is served. A refusal
        may arrive (and the socket be closed) before the request is written: it is read all the same."""
        sock.settimeout(30)
        sock.connect(path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(p.ListSessions().encode())
        decoder = p.FrameDecoder(p.MAX_MESSAGE_BYTES)
        while data := sock.recv(65536):
            if frames := decoder.feed(data):
                return frames[0]  # type: ignore[no-any-return]
        return {"closed": "without an answer"}

    def do(self, what: str) -> dict[str, object]:
        os.write(self.cmd_w, f"{what}\n".encode())
        return json.loads(self._out.readline())  # type: ignore[no-any-return]

    def end(self) -> None:
        os.close(self.cmd_w)
        os.waitpid(self.pid, 0)
        self._out.close()


def test_one_uid_cannot_hold_more_than_its_share_of_connections(
    start_daemon: StartDaemon, accounts: Accounts, sandbox: Sandbox
) -> None:
    """The greeter user (the one unprivileged uid wrsessd serves) gets CAP connections and no more;
    the extra one is refused at once with a reason, and root's (wrsrvd's role) are not affected."""
    daemon = start_daemon(max_connections_per_uid=CAP)
    g = pwd.getpwnam(accounts.greeter)
    greeter = AsUser(
        g.pw_uid, g.pw_gid, [g.pw_gid, grp.getgrnam(accounts.group).gr_gid], str(sandbox.socket)
    )
    held: list[LauncherClient] = []
    try:
        # A greeter connection may not list sessions: "forbidden" means it was served.
        for _ in range(CAP):
            assert greeter.do("open")["error_type"] == "forbidden"
        refused = greeter.do("open")
        assert refused["error_type"] == "limit"
        assert refused["description"] == (
            f"uid {g.pw_uid} already has {CAP} connections to the session launcher open "
            f"(the limit is {CAP}); close one first"
        )
        wait_for(
            lambda: f"refused a connection from uid {g.pw_uid}" in daemon.log(), what="the refusal logged"
        )
        # A flood of refusals is one log line, not one per connection.
        for _ in range(5):
            assert greeter.do("open")["error_type"] == "limit"
        assert daemon.log().count(f"refused a connection from uid {g.pw_uid}") == 1

        # Control connections (root here; wrsrvd's account in production) are not capped, and are
        # served while the greeter user is at its limit.
        for _ in range(CAP * 3):
            c = LauncherClient(sandbox.socket, timeout=30)
            held.append(c)
            assert c.list_sessions() == ()

        # Every refused connection is gone; closing one served connection makes room for one again.
        assert greeter.do("close") == {}
        # (wrsessd notices the close a moment later; refused attempts meanwhile hold nothing.)
        wait_for(lambda: greeter.do("open")["error_type"] == "forbidden", what="the greeter served again")
        assert greeter.do("open")["error_type"] == "limit"
    finally:
        for c in held:
            c.close()
        greeter.end()

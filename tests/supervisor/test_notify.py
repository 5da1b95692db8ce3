"""The sd_notify/watchdog helper every daemon uses, against a real NOTIFY_SOCKET this test owns.

Messages are received the way systemd receives them: datagrams on an AF_UNIX socket with
SO_PASSCRED, so the sender's PID (what NotifyAccess=main checks) is seen too.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wayray.common.notify import Notifier, child_environment

DEADLINE = 60.0  # generous: the machine may be busy; nothing here is timed

DAEMON = textwrap.dedent(
    """
    import asyncio, os, sys
    from wayray.common.notify import Notifier

    notifier = Notifier.from_environment(unset=sys.argv[1] == "unset")
    print("env-cleared" if "NOTIFY_SOCKET" not in os.environ else "env-kept", flush=True)

    async def main():
        notifier.ready("serving 0 sessions\\non [::]:7100")
        watchdog = notifier.start_watchdog()
        print("watchdog" if watchdog else "no-watchdog", flush=True)
        notifier.status("serving 3 sessions")
        notifier.reloading()
        notifier.ready()
        # Run until the test closes our stdin, with the event loop free to ping meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        if watchdog:
            watchdog.cancel()
        notifier.stopping()

    asyncio.run(main())
    """
)


class NotifySocket:
    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(DEADLINE)
        self.address = address

    def receive(self) -> tuple[int, dict[str, str]]:
        """One message: (sender pid, fields)."""
        data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("iII", payload[:12])
        fields = dict(line.split("=", 1) for line in data.decode().split("\n"))
        return pid, fields

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifySocket]:
    address = str(tmp_path / "notify") if request.param == "path" else f"@wayray-test-notify-{os.getpid()}"
    s = NotifySocket(address)
    yield s
    s.close()


def start_daemon(address: str, mode: str, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "NOTIFY_SOCKET": address, **env}
    return subprocess.Popen(
        [sys.executable, "-c", DAEMON, mode],
        env=full_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["unset", "keep"])
def test_ready_status_reload_watchdog_and_stopping(notify_socket: NotifySocket, mode: str) -> None:
    daemon = start_daemon(notify_socket.address, mode, WATCHDOG_USEC="100000")
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline().strip() == ("env-cleared" if mode == "unset" else "env-kept")
        messages = []
        while sum(1 for _, m in messages if m.get("WATCHDOG") == "1") < 3:
            messages.append(notify_socket.receive())
        assert {pid for pid, _ in messages} == {daemon.pid}
        fields = [m for _, m in messages if m.get("WATCHDOG") != "1"]
        assert fields[0] == {"READY": "1", "STATUS": "serving 0 sessions on [::]:7100"}
        assert fields[1] == {"STATUS": "serving 3 sessions"}
        assert fields[2]["RELOADING"] == "1" and int(fields[2]["MONOTONIC_USEC"]) > 0
        assert fields[3] == {"READY": "1"}
        assert daemon.stdout.readline().strip() == "watchdog"
        daemon.stdin.close()  # type: ignore[union-attr]
        while True:
            pid, last = notify_socket.receive()
            if last.get("WATCHDOG") != "1":
                break
        assert (pid, last) == (daemon.pid, {"STOPPING": "1"})
        assert daemon.wait(timeout=DEADLINE) == 0
    finally:
        daemon.kill()
        daemon.wait()


def test_no_watchdog_pings_when_the_watchdog_belongs_to_another_process(notify_socket: NotifySocket) -> None:
    daemon = start_daemon(notify_socket.address, "unset", WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    try:
        assert daemon.stdout is not None
        daemon.stdout.readline()
        assert notify_socket.receive()[1]["READY"] == "1"
        assert daemon.stdout.readline().strip() == "no-watchdog"
        daemon.stdin.close()  # type: ignore[union-attr]
        rest = [notify_socket.receive()[1] for _ in range(4)]
        assert [list(m) for m in rest] == [
            ["STATUS"],
            ["RELOADING", "MONOTONIC_USEC"],
            ["READY"],
            ["STOPPING"],
        ]
        assert daemon.wait(timeout=DEADLINE) == 0
    finally:
        daemon.kill()
        daemon.wait()


def test_without_notify_socket_everything_is_a_quiet_no_op() -> None:
    notifier = Notifier.from_environment(environ={"WATCHDOG_USEC": "100000"})
    assert not notifier.enabled
    assert notifier.ready("x") is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval is None


def test_a_vanished_manager_does_not_break_the_daemon(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.ready() is False  # logged once, no exception


def test_a_manager_that_does_not_read_never_holds_the_daemon_up(notify_socket: NotifySocket) -> None:
    """A manager that stops reading (busy, stopped; a test rig that never listens) fills its socket's
    queue after about ten datagrams: status lines are dropped then, and other messages give up, so the
    daemon's event loop goes on (with libsystemd's sd_notify it blocked there for good)."""
    notifier = Notifier(notify_socket.address)
    results: list[bool] = []
    sender = threading.Thread(
        target=lambda: results.extend(
            [*(notifier.status(f"serving {n} sessions") for n in range(100)), notifier.ready()]
        ),
        daemon=True,
    )
    sender.start()
    sender.join(DEADLINE)
    assert not sender.is_alive(), "a notification blocked the daemon"
    assert results[0] is True and results[-1] is False and results.count(True) < 100
    # What the manager reads once it reads again is the oldest it had room for, whole.
    assert notify_socket.receive()[1] == {"STATUS": "serving 0 sessions"}


def test_children_do_not_inherit_the_service_managers_variables() -> None:
    env = child_environment({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "LISTEN_FDS": "1", "HOME": "/h"})
    assert env == {"HOME": "/h"}

"""The attach helper's logic (docs/usb.md, section 5): the one root part of USB forwarding.

Handing a socket to ``vhci_hcd`` is writing a line naming a file descriptor *of the writing process*
to a file only root may write. wrsrvd stays unprivileged; it sends this helper one request per line
of JSON over a Unix socket, with the device's socket passed by SCM_RIGHTS. The helper:

- answers only the uid wrsrvd runs as (SO_PEERCRED), and one request per connection;
- takes exactly one descriptor with ``attach``, and only a connected AF_UNIX stream socket;
- checks every value is an integer in range and formats the sysfs line itself: no path, command or
  string from a request reaches a file or a shell;
- detaches only ports it attached for that uid;
- never sees the device's traffic: the kernel reads the socket, wrsrvd holds its other end.

Requests: ``{"op": "attach", "speed": S, "devid": D}`` (+ one fd) → ``{"port": P}``;
``{"op": "detach", "port": P}`` → ``{"detached": P}``; anything wrong → ``{"error": "..."}``.

Not packaged yet (no unit, no socket activation): this is the logic the next step wraps and its tests.
"""

from __future__ import annotations

import array
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

from wayray.usb import vhci

MAX_REQUEST = 4096
_CRED = struct.Struct("3i")  # pid, uid, gid


class AttachHelper:
    def __init__(self, allowed_uid: int, sysfs: Path = vhci.SYSFS) -> None:
        self.allowed_uid = allowed_uid
        self.sysfs = sysfs
        #: Ports this helper attached, by the uid that asked.
        self.attached: dict[int, int] = {}

    def serve_one(self, conn: socket.socket) -> dict[str, Any]:
        """Read one request from ``conn``, act, answer; returns the answer (also for logs)."""
        fds: list[int] = []
        try:
            answer = self._answer(conn, fds)
        finally:
            for fd in fds:  # the helper never keeps a descriptor it was given
                os.close(fd)
        conn.sendall(json.dumps(answer).encode() + b"\n")
        return answer

    def _answer(self, conn: socket.socket, fds: list[int]) -> dict[str, Any]:
        _pid, uid, _gid = _CRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
        data, ancillary, _flags, _addr = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        if uid != self.allowed_uid:
            return {"error": f"uid {uid} may not ask: only wrsrvd's user ({self.allowed_uid})"}
        try:
            request = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"error": "not a JSON request"}
        if not isinstance(request, dict):
            return {"error": "not a JSON object"}
        try:
            if request.get("op") == "attach" and set(request) == {"op", "speed", "devid"}:
                return self._attach(uid, request["speed"], request["devid"], fds)
            if request.get("op") == "detach" and set(request) == {"op", "port"}:
                return self._detach(uid, request["port"])
        except vhci.VhciError as err:
            return {"error": err.message + (f" ({err.hint})" if err.hint else "")}
        return {"error": "unknown request (attach {speed, devid} with one socket, or detach {port})"}

    def _attach(self, uid: int, speed: Any, devid: Any, fds: list[int]) -> dict[str, Any]:
        if len(fds) != 1:
            return {"error": f"attach takes exactly one socket, not {len(fds)}"}
        problem = _not_a_connected_unix_stream(fds[0])
        if problem:
            return {"error": problem}
        if not isinstance(speed, int) or isinstance(speed, bool) or not 1 <= speed <= 6:
            return {"error": f"speed {speed!r} is not a USB speed (1-6)"}
        port = vhci.free_port(speed, self.sysfs)
        vhci.attach(port, fds[0], devid, speed, self.sysfs)
        self.attached[port] = uid
        return {"port": port}

    def _detach(self, uid: int, port: Any) -> dict[str, Any]:
        if self.attached.get(port) != uid:
            return {"error": f"port {port!r} was not attached by this helper for you"}
        vhci.detach(port, self.sysfs)
        del self.attached[port]
        return {"detached": port}


def _not_a_connected_unix_stream(fd: int) -> str:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError as err:
        return f"the descriptor is not a socket ({err.strerror})"
    try:
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            return "the descriptor is not a Unix stream socket"
        try:
            sock.getpeername()
        except OSError:
            return "the socket is not connected"
        return ""
    finally:
        sock.close()

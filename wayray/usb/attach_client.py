"""wrsrvd's side of the attach helper (docs/usb.md, section 5): one request per connection to
``wrusbattach`` on its Unix socket, the device's socket passed by SCM_RIGHTS, the answer read back.

Requests go one at a time (a lock): a detach is answered before the next attach can take its port.
Whatever goes wrong is an :class:`AttachError` whose message is what the verdict and the log say.
"""

from __future__ import annotations

import array
import asyncio
import errno
import json
import socket
import sys
from pathlib import Path
from typing import Any

from wayray.usb import vhci

#: How long the helper may take to answer (it writes one sysfs file).
TIMEOUT = 10.0


class AttachError(Exception):
    pass


def _unreachable(path: Path, err: OSError) -> str:
    """Why the helper cannot be asked, said as what the operator should do about it."""
    if err.errno in (errno.EACCES, errno.EPERM):  # a unit edited to another user: say so first
        return (
            f"this server's user may not connect to the attach helper at {path} ({err.strerror}): "
            "wrusbattach.socket's SocketUser= must be the user wrsrvd runs as"
        )
    if not sys.platform.startswith("linux"):
        return "this host's kernel has no USB/IP host controller (vhci_hcd is Linux's)"
    if not vhci.SYSFS.is_dir():
        return (
            "vhci_hcd is not loaded on this host, so USB devices cannot be attached here (modprobe vhci-hcd)"
        )
    if err.errno in (errno.ENOENT, errno.ECONNREFUSED):
        return f"the attach helper is not running ({path}: systemctl enable --now wrusbattach.socket)"
    return f"cannot reach the attach helper at {path}: {err.strerror}"


class AttachClient:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def attach(self, device: socket.socket, speed: int, devid: int, uid: int | None = None) -> int:
        """Hand ``device`` (our end stays with the caller's peer) to vhci_hcd; the port it got.
        ``uid``: the session's user, whom udev gives the device's nodes (None: nobody)."""
        request: dict[str, Any] = {"op": "attach", "speed": speed, "devid": devid}
        if uid is not None:
            request["uid"] = uid
        answer = await self._ask(request, device.fileno())
        port = answer.get("port")
        if not isinstance(port, int):
            raise AttachError(f"the attach helper answered {answer!r}")
        return port

    async def detach(self, port: int) -> None:
        await self._ask({"op": "detach", "port": port}, None)

    async def _ask(self, request: dict[str, Any], fd: int | None) -> dict[str, Any]:
        async with self._lock:
            try:
                return await asyncio.wait_for(self._exchange(request, fd), TIMEOUT)
            except TimeoutError:
                raise AttachError(f"the attach helper did not answer within {TIMEOUT:.0f} s") from None

    async def _exchange(self, request: dict[str, Any], fd: int | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        with sock:
            try:
                await loop.sock_connect(sock, str(self.path))
            except OSError as err:
                raise AttachError(_unreachable(self.path, err)) from None
            rights = (
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]
                if fd is not None
                else []
            )
            try:
                sock.sendmsg([json.dumps(request).encode() + b"\n"], rights)  # a fresh socket: room enough
                data = b""
                while not data.endswith(b"\n"):
                    chunk = await loop.sock_recv(sock, 4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError as err:
                raise AttachError(f"the attach helper's connection failed: {err.strerror}") from None
        try:
            answer = json.loads(data)
        except ValueError:
            raise AttachError("the attach helper gave no answer (see journalctl -u wrusbattach)") from None
        if not isinstance(answer, dict):
            raise AttachError(f"the attach helper answered {answer!r}")
        if "error" in answer:
            raise AttachError(str(answer["error"]))
        return answer

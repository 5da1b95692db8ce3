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

Requests: ``{"op": "attach", "speed": S, "devid": D, "uid": U}`` (+ one fd; ``uid``, the session's
user, may be left out) → ``{"port": P}``;
``{"op": "detach", "port": P}`` → ``{"detached": P}``; anything wrong → ``{"error": "..."}``.

For udev (``70-wayray-usb.rules``, docs/usb.md section 5): before it attaches a device for user
``uid``, the helper writes ``<owners>/<bus id>`` (``/run/wayray-usb/3-1``: the bus id the kernel will
give the device on that port), ``WAYRAY_USB_UID=<uid>``; the rule imports it and gives that user the
device's nodes. Detach removes it; an attach without ``uid`` removes what a previous device left.

It runs as ``wrusbattach`` (``main`` below): socket-activated by ``wrusbattach.socket`` under systemd
(the socket is ``/run/wayray/usb-attach.sock``, owned by wrsrvd's user, mode 0600), or binding that
socket itself. Only the command line, that is root, chooses the user it answers and the sysfs
directory it writes (``--sysfs``, for tests against a copy of vhci_hcd's files); a request never does.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import logging
import os
import pwd
import socket
import struct
from pathlib import Path
from typing import Any

from wayray.common.errors import UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.unixsock import bind_private_socket
from wayray.common.version import add_version_option
from wayray.usb import vhci

log = logging.getLogger("wayray.usbattach")

#: Where wrsrvd asks (``<runtime_dir>/usb-attach.sock``; wrusbattach.socket listens there).
DEFAULT_SOCKET = Path("/run/wayray/usb-attach.sock")
#: Where it tells udev whose device is on which port (``RuntimeDirectory=wayray-usb`` of its unit).
DEFAULT_OWNERS = Path("/run/wayray-usb")
#: Most a uid may be (``(uid_t) -1`` is "no user").
MAX_UID = (1 << 32) - 2
#: How long one request may take to arrive, so a stalled peer cannot hold the helper.
REQUEST_TIMEOUT = 10.0

MAX_REQUEST = 4096
_CRED = struct.Struct("3i")  # pid, uid, gid


class AttachHelper:
    def __init__(self, allowed_uid: int, sysfs: Path = vhci.SYSFS, owners: Path = DEFAULT_OWNERS) -> None:
        self.allowed_uid = allowed_uid
        self.sysfs = sysfs
        self.owners = owners
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
            if request.get("op") == "attach" and set(request) - {"uid"} == {"op", "speed", "devid"}:
                return self._attach(uid, request["speed"], request["devid"], fds, request.get("uid"))
            if request.get("op") == "detach" and set(request) == {"op", "port"}:
                return self._detach(uid, request["port"])
        except vhci.VhciError as err:
            return {"error": err.message + (f" ({err.hint})" if err.hint else "")}
        return {"error": "unknown request (attach {speed, devid[, uid]} with one socket, or detach {port})"}

    def _attach(self, uid: int, speed: Any, devid: Any, fds: list[int], owner: Any = None) -> dict[str, Any]:
        if len(fds) != 1:
            return {"error": f"attach takes exactly one socket, not {len(fds)}"}
        problem = _not_a_connected_unix_stream(fds[0])
        if problem:
            return {"error": problem}
        if not isinstance(speed, int) or isinstance(speed, bool) or not 1 <= speed <= 6:
            return {"error": f"speed {speed!r} is not a USB speed (1-6)"}
        if owner is not None and (
            not isinstance(owner, int) or isinstance(owner, bool) or not 0 <= owner <= MAX_UID
        ):
            return {"error": f"uid {owner!r} is not a user's (0-{MAX_UID})"}
        port = vhci.free_port(speed, self.sysfs)
        # udev reads the owner when the kernel adds the device, so it is there before the attach.
        self._tell_udev(port, owner)
        try:
            vhci.attach(port, fds[0], devid, speed, self.sysfs)
        except vhci.VhciError:
            self._tell_udev(port, None)
            raise
        self.attached[port] = uid
        return {"port": port}

    def _detach(self, uid: int, port: Any) -> dict[str, Any]:
        if self.attached.get(port) != uid:
            return {"error": f"port {port!r} was not attached by this helper for you"}
        vhci.detach(port, self.sysfs)
        del self.attached[port]
        self._tell_udev(port, None)
        return {"detached": port}

    def _tell_udev(self, port: int, owner: int | None) -> None:
        """``<owners>/<bus id>`` says whose the device on ``port`` is (``owner``), or is removed.
        Written whole (a temporary file renamed), 0644: udev reads it as root, anyone may see it."""
        try:
            name = vhci.busid(port, self.sysfs)
        except vhci.VhciError as err:
            if owner is not None:
                log.warning("cannot tell udev whose the device on port %d is: %s", port, err.message)
            return
        path = self.owners / name
        if owner is None:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:  # the port's next device could inherit the grant: say so loudly
                log.error("cannot remove %s (%s): remove it by hand", path, err.strerror)
            return
        part = path.with_name(f".{name}.part")
        try:
            self.owners.mkdir(mode=0o755, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o644)  # whatever the umask
                f.write(f"WAYRAY_USB_UID={owner}\nWAYRAY_USB_PORT={port}\n")
            os.replace(part, path)
        except OSError as err:  # the device is still attached, its nodes as udev makes them
            log.warning(
                "cannot tell udev that the device on port %d is uid %d's (%s: %s); its nodes keep "
                "udev's default permissions", port, owner, path, err.strerror,
            )  # fmt: skip


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


# --- the daemon: wrusbattach --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrusbattach",
        description=(
            "WayRay's USB attach helper (root): hands the socket of a USB device a kiosk forwards, "
            "received from wrsrvd over a Unix socket, to the kernel's vhci_hcd, as `usbip attach` "
            "does, and detaches it again. It answers only wrsrvd's user, takes only a connected Unix "
            "stream socket, and writes only lines it formats itself. See /usr/share/doc/wayray/usb.md."
        ),
        epilog=(
            "Under systemd, wrusbattach.socket passes the listening socket (socket activation). "
            "Without it, wrusbattach binds --socket itself, owned by --user, mode 0600."
        ),
    )
    add_version_option(p)
    p.add_argument("--user", default="wayray", help="the only user it answers: wrsrvd's (default: wayray)")
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET,
                   help=f"socket to bind when not socket-activated (default: {DEFAULT_SOCKET})")  # fmt: skip
    p.add_argument("--sysfs", type=Path, default=vhci.SYSFS,
                   help=f"vhci_hcd's sysfs directory (default: {vhci.SYSFS}); another one only for tests, "
                   "against a copy of its files")  # fmt: skip
    p.add_argument("--owners", type=Path, default=DEFAULT_OWNERS,
                   help=f"where it tells udev whose device is on which port (default: {DEFAULT_OWNERS}); "
                   "70-wayray-usb.rules reads this directory")  # fmt: skip
    p.add_argument("-v", "--verbose", action="count", default=0, help="log every request")
    return p


def activated_socket() -> socket.socket | None:
    """The listening socket systemd passed (``LISTEN_FDS``), or None when not socket-activated."""
    passed = os.environ.get("LISTEN_PID") == str(os.getpid())
    count = os.environ.get("LISTEN_FDS", "0")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not passed or count != "1":
        if passed:
            raise WayRayError(
                f"socket activation passed {count} sockets, not 1", hint="check wrusbattach.socket"
            )
        return None
    sock = socket.socket(fileno=3)
    os.set_inheritable(3, False)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise WayRayError(
            "the activated socket is not a Unix stream socket", hint="check wrusbattach.socket"
        )
    return sock


def serve(listener: socket.socket, helper: AttachHelper) -> None:
    """Answer one connection after the other, forever."""
    listener.setblocking(True)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(REQUEST_TIMEOUT)
            try:
                answer = helper.serve_one(conn)
            except OSError as err:  # the peer went, or was too slow: that request only
                log.warning("a request failed: %s", err.strerror or err)
                continue
            if "error" in answer:
                log.warning("refused a request: %s", answer["error"])
            else:
                log.info("%s", ", ".join(f"{k} {v}" for k, v in answer.items()))


@cli_entry("wrusbattach")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup("wrusbattach", verbose=args.verbose)
    try:
        user = pwd.getpwnam(args.user)
    except KeyError:
        raise UsageError(f"--user {args.user}: no such user", hint="name the user wrsrvd runs as") from None
    if os.geteuid() != 0:
        raise WayRayError(
            "wrusbattach must run as root: only root may write vhci_hcd's attach file",
            hint="start it through wrusbattach.socket (systemctl enable --now wrusbattach.socket)",
        )
    listener = activated_socket()
    if listener is None:
        listener = bind_private_socket(
            args.socket, in_use="another wrusbattach listens there", in_use_hint=None,
            too_long_hint="choose a shorter --socket",
        )  # fmt: skip
        os.chown(args.socket, user.pw_uid, user.pw_gid)
    log.info("answering %s (uid %d); vhci_hcd at %s", args.user, user.pw_uid, args.sysfs)
    serve(listener, AttachHelper(user.pw_uid, args.sysfs, args.owners))
    return 0

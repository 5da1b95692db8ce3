"""The one binder of listening Unix sockets (wrsrvd's link and admin sockets, wrsessd's socket, a
kiosk's control and badge sockets): real sockets, a stale one, a live one, things that are not one."""

from __future__ import annotations

import grp
import logging
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.common.conftest import AS_NOBODY
from wayray.common.errors import WayRayError
from wayray.common.unixsock import MAX_SOCKET_PATH, bind_private_socket


def connects(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        try:
            c.connect(str(path))
        except OSError:
            return False
        return True


def test_a_new_socket_is_private_and_listening(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    sock = bind_private_socket(path)
    try:
        st = path.lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert not sock.getblocking()
        assert connects(path)
    finally:
        sock.close()


def test_the_mode_and_group_asked(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: gives the socket another group")
    gid = grp.getgrnam("nogroup").gr_gid
    path = tmp_path / "wrsessd.sock"
    sock = bind_private_socket(path, mode=0o660, gid=gid)
    try:
        st = path.lstat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)
    finally:
        sock.close()


def test_a_stale_socket_is_replaced_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "link.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # what a process that died leaves behind: the file, nobody listening
    crashed.close()
    assert not connects(path)
    with caplog.at_level(logging.INFO, "wayray.common.unixsock"):
        sock = bind_private_socket(path)
    try:
        assert connects(path)
        assert f"{path}: removed a stale socket" in caplog.text
    finally:
        sock.close()


def test_a_live_socket_is_left_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    first = bind_private_socket(path)
    try:
        with pytest.raises(WayRayError) as info:
            bind_private_socket(
                path, in_use="another wrsessd is already listening on this socket", in_use_hint=None
            )
        assert info.value.message == f"{path}: another wrsessd is already listening on this socket"
        assert info.value.hint is None
        with pytest.raises(WayRayError) as info:
            bind_private_socket(path)
        assert info.value.message == f"{path}: another process listens there"
        assert info.value.hint and "--runtime-dir" in info.value.hint
        first.setblocking(True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(path))  # the first one still listens there and takes connections
            conn, _ = first.accept()
            conn.close()
    finally:
        first.close()


@pytest.mark.parametrize("kind", ["file", "directory", "link to a socket", "dangling link"])
def test_what_is_not_a_socket_is_never_removed(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "badge.sock"
    live = tmp_path / "live.sock"
    if kind == "file":
        path.write_text("an operator's notes")
    elif kind == "directory":
        path.mkdir()
    elif kind == "link to a socket":
        keep = bind_private_socket(live)
        path.symlink_to(live)
    else:
        path.symlink_to(tmp_path / "nothing")
    with pytest.raises(WayRayError) as info:
        bind_private_socket(path, not_a_socket_hint="remove it, or choose another path for the token socket")
    assert info.value.message == f"{path}: exists and is not a socket"
    assert info.value.hint == "remove it, or choose another path for the token socket"
    assert os.path.lexists(path)
    if kind == "file":
        assert path.read_text() == "an operator's notes"
    if kind == "link to a socket":
        assert connects(live)
        keep.close()


def test_a_path_too_long_for_a_socket(tmp_path: Path) -> None:
    path = tmp_path / ("s" * (MAX_SOCKET_PATH - len(str(tmp_path))))
    with pytest.raises(WayRayError) as info:
        bind_private_socket(path, too_long_hint="choose a shorter path")
    assert "a socket path can be at most 103 bytes" in info.value.message
    assert info.value.hint == "choose a shorter path" and not os.path.lexists(path)


def test_a_directory_it_may_not_write_is_one_line(tmp_path: Path, nobody_can_run_wayray: None) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: binds as nobody")
    os.chmod(tmp_path, 0o755)
    code = (
        "import sys\nfrom pathlib import Path\nfrom wayray.common.errors import WayRayError\n"
        "from wayray.common.unixsock import bind_private_socket\n"
        "try:\n    bind_private_socket(Path(sys.argv[1]))\n"
        "except WayRayError as err:\n    print(err.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "x.sock")], capture_output=True, text=True, **AS_NOBODY
    )
    assert done.stdout.strip() == f"cannot listen on {tmp_path / 'x.sock'}: Permission denied", done.stderr

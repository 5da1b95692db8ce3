"""wrsrvd's side of the session parent and the parent itself agree on their few constants (wrsrvd
never imports wayray.session.parent: that would import the compositor into the front door)."""

from __future__ import annotations

from wayray.server import sessionparent
from wayray.session import parent


def test_wrsrvd_and_the_session_parent_agree_on_the_control_socket_and_the_environment_room() -> None:
    assert sessionparent.CONTROL_FD_VARIABLE == parent.CONTROL_FD_VARIABLE
    assert sessionparent.ROOM_VARIABLE == parent.ROOM_VARIABLE
    assert sessionparent.ROOM_BYTES == parent.ROOM_BYTES

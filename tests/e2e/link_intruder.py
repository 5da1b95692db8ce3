"""Run as another local user: try to register on wrsrvd's link socket for someone else's session.

    python -m tests.e2e.link_intruder LINK_SOCKET SESSION_ID [SECRET ...]

Tries each secret (a guess, a leaked one) and prints one JSON line per try: what wrsrvd answered
(the Close code, or "welcome" if it let the registration in).
"""

from __future__ import annotations

import json
import os
import socket
import sys

from wayray.link import LINK_VERSION, Close, LinkDecoder, LinkRole, Register, Welcome, encode


def attempt(path: str, session_id: str, secret: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        try:
            s.connect(path)
        except OSError as err:
            return f"connect: {err.strerror}"
        s.sendall(
            encode(
                Register(
                    link_version=LINK_VERSION, session_id=session_id, secret=secret, pid=os.getpid(),
                    wayland_display="wayland-intruder", width=640, height=480, scale_120=120,
                ),
                LinkRole.COMPOSITOR,
            )
        )  # fmt: skip
        decoder = LinkDecoder(LinkRole.SERVER)
        while True:
            data = s.recv(65536)
            if not data:
                return "closed"
            for message in decoder.feed(data):
                if isinstance(message, Welcome):
                    return "welcome"
                if isinstance(message, Close):
                    return str(message.code)


def main() -> None:
    path, session_id, *secrets = sys.argv[1:]
    for secret in secrets:
        print(json.dumps({"uid": os.getuid(), "answer": attempt(path, session_id, secret)}), flush=True)


if __name__ == "__main__":
    main()

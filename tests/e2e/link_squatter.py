"""Run as an attacker: listen where a victim's session compositor looks for wrsrvd's link socket.

    python -m tests.e2e.link_squatter SOCKET

Prints one JSON line per connection once it is over: how many bytes the peer sent and whether they
held a registration's secret. Answers nothing (a compositor that registers waits for a Welcome).
Standard library only: it runs as a throwaway user with Debian's python3.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading


def serve(conn: socket.socket) -> None:
    got = b""
    conn.settimeout(15)
    try:
        while chunk := conn.recv(65536):
            got += chunk
    except OSError:
        pass
    finally:
        conn.close()
    print(json.dumps({"bytes": len(got), "secret": b'"secret"' in got}), flush=True)


def main() -> None:
    path = sys.argv[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
        os.chmod(path, 0o777)
        s.listen(16)
        print(json.dumps({"listening": path}), flush=True)
        while True:
            conn, _ = s.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()

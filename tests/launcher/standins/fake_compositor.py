"""Stand-in for the session compositor (the real one is wired in later; see README.md)."""

import argparse
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402


def daemonize_sleeper(stubborn: bool) -> int:
    """Double-fork a process that escapes its parent (like a session daemon would); return its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            os.close(r)
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            # The parent's Python handler was inherited; a real daemon dies on SIGTERM unless stubborn.
            signal.signal(signal.SIGTERM, signal.SIG_IGN if stubborn else signal.SIG_DFL)
            while True:
                time.sleep(60)
        os._exit(0)
    os.close(w)
    data = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    return int(data)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default=os.environ.get("WAYRAY_WAYLAND_DISPLAY"))
    p.add_argument("--report", required=True)
    p.add_argument("--stubborn", action="store_true", help="the escaped process ignores SIGTERM")
    p.add_argument(
        "--gate",
        help="before creating the socket, write GATE.waiting and wait until GATE exists (a compositor "
        "that is slow to start, at the moment the test chooses)",
    )
    p.add_argument(
        "--x-display", help="write this DISPLAY next to the socket, before it, as the real one does"
    )
    args = p.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    if args.gate:
        with open(args.gate + ".waiting", "w") as f:
            f.write(str(os.getpid()))
        while not os.path.exists(args.gate) and not stop:
            time.sleep(0.02)
    runtime = os.environ["XDG_RUNTIME_DIR"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = os.path.join(runtime, args.name)
    if args.x_display:
        with open(path + ".x11", "w") as f:
            f.write(args.x_display + "\n")
    sock.bind(path)
    sock.listen(16)
    sock.settimeout(0.2)
    info = _report.identity()
    info["socket"] = path
    info["argv"] = sys.argv
    info["escaped_pid"] = daemonize_sleeper(args.stubborn)
    _report.write(args.report, info)
    while not stop:
        try:
            conn, _ = sock.accept()
            conn.close()
        except (TimeoutError, InterruptedError):
            pass
    os.unlink(path)
    if args.x_display:
        os.unlink(path + ".x11")


if __name__ == "__main__":
    main()

"""Stand-in for a session component (wm, panel, ...): a Wayland client that reports and waits."""

import argparse
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--report", required=True)
    args = p.parse_args()
    info = _report.identity()
    info["argv"] = sys.argv
    path = os.path.join(os.environ["XDG_RUNTIME_DIR"], os.environ["WAYLAND_DISPLAY"])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        info["connected"] = True
    except OSError as err:
        info["connected"] = str(err)
    s.close()
    _report.write(args.report, info)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()

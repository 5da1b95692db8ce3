"""Shared by the stand-ins: write a JSON report of the process's identity and surroundings."""

import json
import os


def identity() -> dict:
    fd = os.environ.get("WAYRAY_LINK_SECRET_FD")
    return {
        "link_secret": _read_all(int(fd)) if fd else None,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": sorted(os.getgroups()),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "cwd": os.getcwd(),
        "umask": _umask(),
        "env": dict(os.environ),
    }


def _read_all(fd: int) -> str:
    """The link secret from the pipe wrsessd handed the compositor (as the real one reads it)."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    return data.decode()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def write(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)

"""Shared by the stand-ins: write a JSON report of the process's identity and surroundings."""

import json
import os


def identity() -> dict:
    return {
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


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def write(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)

"""Handing a secret to a child process through an inherited pipe, never its environment or argv.

A process's argv is readable by every local user, and its initial environment stays readable in
``/proc/PID/environ`` (to its own uid and root) for as long as it lives, whatever it later does to
``os.environ``: the kernel shows the memory the environment was copied into at ``exec``. So the
spawner writes the secret into a pipe, gives the child the pipe's read end as an inherited
descriptor, and names its number in an environment variable (which is not secret). The child reads
the secret once and closes the descriptor: its programs inherit neither.
"""

from __future__ import annotations

import contextlib
import os
import stat

from wayray.common.errors import WayRayError

#: Longest secret this carries (a pipe holds far more, so writing it never blocks).
MAX_SECRET = 4096


def secret_pipe(secret: str) -> int:
    """A pipe holding ``secret``, already written and closed for writing: returns the read end
    (close-on-exec; pass it with ``pass_fds`` and close it after the child has started)."""
    data = secret.encode()
    if len(data) > MAX_SECRET:
        raise ValueError(f"a secret handed through a pipe is at most {MAX_SECRET} bytes")
    r, w = os.pipe()
    try:
        os.write(w, data)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return r


def read_secret(variable: str, value: str) -> str:
    """Read the secret from the descriptor ``value`` names (``variable`` says where it came from, for
    errors) and close it."""
    try:
        fd = int(value)
        if fd < 3:
            raise ValueError
    except ValueError:
        raise WayRayError(f"{variable}={value!r} is not a descriptor number (3 or more)") from None
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise WayRayError(f"{variable}: descriptor {fd} is not a pipe")
        data = b""
        while len(data) <= MAX_SECRET and (chunk := os.read(fd, MAX_SECRET + 1 - len(data))):
            data += chunk
    except OSError as err:
        raise WayRayError(f"{variable}: cannot read descriptor {fd}: {err.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    if len(data) > MAX_SECRET:
        raise WayRayError(f"{variable}: the secret is longer than {MAX_SECRET} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise WayRayError(f"{variable}: the secret is not UTF-8") from None

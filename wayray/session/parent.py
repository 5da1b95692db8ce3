"""The session parent: a process that has imported the session compositor once and forks a session
process per request, so a new session does not pay Python's start-up and imports (issue 15: a second
or more on a loaded 2-core server), and its sessions share the imported code's pages copy-on-write.

    python -m wayray.session.parent        (started by wrsrvd in standalone mode; never by hand)

wrsrvd starts it with a fresh ``exec`` (so it holds nothing of wrsrvd's memory: no TLS key, no
registry, no secret), in a process session of its own, as wrsrvd's own user, and gives it one end
of a ``SOCK_SEQPACKET`` socket pair (its number in :data:`CONTROL_FD_VARIABLE`). On it:

- the parent says ``{"ready": true}`` once its imports are done;
- wrsrvd sends a request: a JSON object ``{"argv": [...], "env": {...}, "cwd": "..."}`` (the same
  argv after ``wrsrvd`` and the same environment the exec path gives ``wrsrvd session``) with the
  session's secret pipe, and its log file when it has one, as ``SCM_RIGHTS`` descriptors;
- the parent forks, answers ``{"pid": N}`` and closes its copies of the descriptors. It never reads a
  secret: the child reads its own pipe, as an exec'd session process does;
- when a session process exits, the parent reaps it and says ``{"exited": N, "status": S}``.

The child becomes exactly what ``wrsrvd session`` started by exec would be: a process session of its
own, stdin ``/dev/null``, stdout and stderr the log file (else the parent's, which are wrsrvd's), no
descriptor but the secret pipe, the working directory and environment wrsrvd gave — also in
``/proc/PID/environ``, which the child rewrites (the kernel shows the memory the parent's environment
was copied into at ``exec``: wrsrvd and the tests find a session's processes by the link named there).
Then, before any of the session's own code runs, it splits off the session's keeper
(:mod:`wayray.session.keeper`, asked for by ``--subreaper``/``--log`` in the argv): the child goes on
as the compositor and runs ``wayray.session.cli.main``; neither returns into the parent's loop.

The parent ends when wrsrvd closes its end (wrsrvd exited or was killed); the sessions it forked are
not its children in any way that matters to them: they live on (adopted by init), as sessions
started by exec do, and the next wrsrvd finds them through their link. Linux only (the environment
rewrite needs ``/proc/self/mem``); elsewhere wrsrvd starts sessions by exec.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import select
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

#: Names the control socket's descriptor number in the parent.
CONTROL_FD_VARIABLE = "WAYRAY_SESSION_PARENT_FD"
#: Largest request (argv and environment) the parent reads.
MAX_REQUEST = 256 * 1024
#: An environment variable whose value only reserves room in the parent's ``exec``-time environment
#: block, which each child overwrites with its own environment (see :func:`show_environment`).
ROOM_VARIABLE = "WAYRAY_SESSION_PARENT_ROOM"
ROOM_BYTES = 64 * 1024
#: Exit status of a child that failed before the session's own code ran.
EXIT_CHILD_SETUP = 70


def preload() -> None:
    """Import what a session process imports, so that a fork starts with it all in place."""
    import wayray.session.cli
    import wayray.session.keeper
    import wayray.session.process  # noqa: F401  (the compositor, codec, audio, link: all of it)

    warm_ffi_types()
    warm_composite()
    from wayray.common.libc import libc
    from wayray.wayland.xkb import Keymap

    Keymap.default()  # compiled once here; every session's seat takes a reference to it
    libc()  # looked up once here, not by every session (ctypes.util.find_library runs ldconfig)


#: A C type named in a string literal where the code calls cffi (``ffi.new("struct wl_array *")``).
_FFI_TYPE_LITERAL = re.compile(r"""\bffi\.(?:new|cast|typeof|sizeof)\(\s*["']([^"']+)["']""")


def warm_ffi_types() -> int:
    """Parse, once in the parent, every C type the code names to cffi (how many were).

    The Wayland, pixman and xkbcommon bindings use cffi's in-line mode, which parses each C type
    string with pycparser on its first use in a process and caches the result: a forked session
    would otherwise parse the same dozen-odd types again on its way to its first frame. The strings
    are read from the package's own sources, so a new one is warmed without a list to keep; one that
    is not a type of a binding is skipped."""
    import wayray
    from wayray.wayland import libwayland, pixman, xkb

    root = Path(wayray.__file__).parent
    names: set[str] = set()
    for path in root.rglob("*.py"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            names.update(_FFI_TYPE_LITERAL.findall(path.read_text(encoding="utf-8")))
    warmed = 0
    for ffi in (libwayland.ffi, pixman.ffi, xkb.ffi):
        for name in sorted(names):
            try:
                ffi.typeof(name)
            except Exception:  # noqa: BLE001  (a type of another binding; cffi raises several kinds)
                continue
            warmed += 1
    return warmed


def warm_composite() -> None:
    """Composite a tiny output once (pixman's images, regions and fills, numpy's arrays): the
    functions a session's first frame calls are bound and its code paths run before any fork.
    Nothing here starts a thread (a fork copies only the thread that forks)."""
    from wayray.compositor.scene import Renderer

    renderer = Renderer(16, 16, 1)
    renderer.render([], renderer.full_damage())
    renderer.park(list)
    renderer.framebuffer.tobytes()


def main() -> int:
    fd = int(os.environ.pop(CONTROL_FD_VARIABLE, "-1"))
    if fd < 3:
        print(
            f"wayray session parent: started without {CONTROL_FD_VARIABLE}; wrsrvd starts it",
            file=sys.stderr,
        )
        return 2
    control = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    os.environ.pop(ROOM_VARIABLE, None)
    environment_off_the_block()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # wrsrvd's terminal's Ctrl-C is wrsrvd's business
    try:
        preload()
    except Exception:
        traceback.print_exc()
        print(
            "wayray session parent: cannot import the session compositor; wrsrvd starts sessions by exec",
            file=sys.stderr,
        )
        return 1
    # Keep the collector off the imported objects' pages: they stay shared with every child.
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    try:
        control.send(json.dumps({"ready": True}).encode())
    except OSError:  # wrsrvd went while this parent was importing (it failed to start): nothing to serve
        return 0
    while True:
        ready, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            reap(control)
        if control.fileno() not in ready:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, MAX_REQUEST, 4)
        except OSError:
            return 0
        if not data:
            return 0  # wrsrvd is gone; the sessions live on
        try:
            request = json.loads(data)
            pid = fork_session(request, fds, control, (wake_r, wake_w))
            answer: dict[str, Any] = {"pid": pid}
        except (ValueError, KeyError, TypeError, OSError) as err:
            answer = {"error": f"{type(err).__name__}: {err}"}
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            control.send(json.dumps(answer).encode())
        except OSError:
            return 0


def reap(control: socket.socket) -> None:
    """Collect the sessions that exited and tell wrsrvd their status (``{"exited": pid, "status": N}``,
    N as Popen gives it: the exit code, or -SIGNAL); never blocking on a busy wrsrvd."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            message = {"exited": pid, "status": os.waitstatus_to_exitcode(status)}
            with contextlib.suppress(OSError):
                control.send(json.dumps(message).encode(), socket.MSG_DONTWAIT)


def fork_session(
    request: dict[str, Any], fds: list[int], control: socket.socket, wake: tuple[int, int]
) -> int:
    argv = [str(a) for a in request["argv"]]
    env = {str(k): str(v) for k, v in request["env"].items()}
    cwd = str(request["cwd"])
    if not fds:
        raise ValueError("a request comes with the session's secret pipe")
    secret, out = fds[0], (fds[1] if len(fds) > 1 else None)
    pid = os.fork()
    if pid:
        return pid
    status = EXIT_CHILD_SETUP
    try:
        become_session(argv, env, cwd, secret, out, control, wake)
        from wayray.session import cli

        status = cli.main(argv[argv.index("session") + 1 :])
    except SystemExit as ex:
        status = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def become_session(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    secret: int,
    out: int | None,
    control: socket.socket,
    wake: tuple[int, int],
) -> None:
    """In the forked child: what exec would have given ``wrsrvd session`` (see the module's text).

    In two steps, with the session's keeper split off between them when the session asks for one
    (it always does from wrsrvd): first what the keeper must have too, then what only the session
    process needs. Every page the first step writes is the keeper's and the compositor's; once the
    compositor writes it again, the keeper holds the old copy alone (issue 15: memory per session)."""
    from wayray.session import keeper

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    control.close()
    for fd in wake:
        os.close(fd)
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if out is not None:
        os.dup2(out, 1)
        os.dup2(out, 2)
    keep = {secret}
    for fd in _open_fds():
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    os.set_inheritable(secret, True)
    env["WAYRAY_LINK_SECRET_FD"] = str(secret)
    os.chdir(cwd)
    # The C library's environment is on the heap since main() (environment_off_the_block): the block
    # the kernel shows may be overwritten here, before the split, so the keeper shows it too.
    if not show_environment(env):
        # wrsrvd finds a session's processes by the session named in /proc/PID/environ: without it,
        # be a session started by exec after all.
        os.execve(argv[0], argv, env)
    show_argv(argv)
    sys.argv = ["wrsrvd", *argv[argv.index("session") :]]
    # The imports' objects stay frozen (out of the collector's reach): their pages stay shared.
    keeper.KEEP_FROZEN = True
    # The keeper splits off now, before the session's own code runs (wrsrvd session's own split,
    # later, does nothing then). Its os.environ stays the parent's: it starts no program, and reads
    # only what wrsrvd gives the parent and the session alike (JOURNAL_STREAM, WAYRAY_LOG_LEVEL).
    wanted, log_path = keeper.asked(argv[argv.index("session") + 1 :])
    if wanted:
        keeper.split(log_path, close_fds=(secret,))
    os.environ.clear()
    os.environ.update(env)
    from wayray.common import trace

    # What modules read from the environment at import, read again from the session's.
    trace.ENABLED = bool(os.environ.get("WAYRAY_TRACE"))


def environment_off_the_block() -> None:
    """Have the C library's environment copied to the heap (``os.environ`` cleared and filled again
    with the same): the exec-time block, which a session overwrites (:func:`show_environment`), is
    then read by nobody in this process or a child."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _stat_fields() -> list[str]:
    with open("/proc/self/stat", "rb") as f:
        text = f.read().decode()
    return text[text.rindex(")") + 2 :].split()  # fields from the third (state) on


def _rewrite(start: int, end: int, block: bytes) -> bool:
    if end <= start or len(block) > end - start:
        return False
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        mem.write(block + b"\0" * (end - start - len(block)))
    return True


def show_environment(env: dict[str, str]) -> bool:
    """Make ``/proc/self/environ`` show ``env``: overwrite the block the kernel shows (the parent's
    environment at its ``exec``, with :data:`ROOM_VARIABLE` making room) and fill the rest with NULs.
    Safe: the parent cleared and filled ``os.environ`` again at its start
    (:func:`environment_off_the_block`), so the C library's ``environ`` points into the heap, not
    into that block. False when it does not fit (the caller then says so)."""
    fields = _stat_fields()
    env_start, env_end = int(fields[47]), int(fields[48])
    block = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())
    try:
        done = _rewrite(env_start, env_end, block)
    except OSError:
        done = False
    if not done:
        print(
            f"wayray session parent: cannot show the session's environment ({len(block)} bytes) in "
            f"/proc/{os.getpid()}/environ ({env_end - env_start} bytes); starting it by exec",
            file=sys.stderr,
        )
    return done


def show_argv(argv: list[str]) -> None:
    """``ps`` shows the session's command line (cut to the room the parent's own had)."""
    fields = _stat_fields()
    start, end = int(fields[45]), int(fields[46])
    block = b"\0".join(a.encode() for a in argv)[: max(0, end - start - 1)]
    with contextlib.suppress(OSError):
        _rewrite(start, end, block)


if __name__ == "__main__":
    sys.exit(main())

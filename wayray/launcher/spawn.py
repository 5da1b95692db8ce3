"""Starting a session's programs as the session's user, with the environment a login gives.

Everything here runs in the root session worker after the PAM session is open. Each program is
started through :class:`subprocess.Popen` with ``user``/``group``/``extra_groups`` (the equivalent of
``initgroups`` + ``setgid`` + ``setuid`` in the child, done by CPython's fork/exec helper before
``exec``), ``cwd`` the home directory, stdin from /dev/null, stdout and stderr on the session's own
output (:mod:`wayray.launcher.sessionlog`), and the session environment.

Files the user controls (their session.toml) are read in a forked child that has dropped to the
user first, never as root.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wayray.common.inputmethod import input_method_environment
from wayray.config import SessionConfig, load_user_session
from wayray.launcher.records import SessionRecords
from wayray.launcher.settings import env_refusal, session_from_json, session_to_json

log = logging.getLogger(__name__)

#: How long reading a user's session.toml may take (it is read as the user, in a child).
USER_FILE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> Account:
        pw = pwd.getpwnam(name)
        try:
            groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
        except OSError:
            groups = (pw.pw_gid,)
        return cls(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell or "/bin/sh", groups)

    def drop_privileges(self) -> None:
        """In a forked child: become the user for good (initgroups, setgid, setuid)."""
        os.setgroups(list(self.groups))
        os.setgid(self.gid)
        os.setuid(self.uid)
        if os.getuid() != self.uid or os.geteuid() != self.uid:  # pragma: no cover - paranoia
            os._exit(111)


# --- XDG_RUNTIME_DIR -------------------------------------------------------------------------------


def ensure_runtime_dir(
    base: Path, account: Account, records: SessionRecords, *, marker_dir: Path
) -> tuple[Path, bool]:
    """``<base>/<uid>`` owned by the user, mode 0700. Returns (path, created by WayRay).

    Several sessions of one user share the directory, like logind's /run/user/<uid>. A marker in
    wrsessd's state directory records that WayRay made it, so the last WayRay session of that user
    removes it (see :func:`release_runtime_dir`); a directory someone else made is never removed.
    Call in the session's worker: the worker claims the directory for as long as it runs, from here
    on (its session record comes only once its compositor is up, and the user's other session ending
    meanwhile must not remove the directory the compositor is starting in).
    """
    from wayray.launcher import proctree

    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = base / str(account.uid)
    marker = marker_dir / f"runtime-{account.uid}"
    with records.lock():
        try:
            os.mkdir(path, 0o700)
            created = True
            marker.write_text(str(path))
        except FileExistsError:
            created = marker.exists()
        # Work on a descriptor opened without following symlinks: no race with a swapped path.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as err:
            raise RuntimeError(f"{path} exists and is not a directory") from err
        try:
            st = os.fstat(fd)
            if st.st_uid != account.uid and not (created and st.st_uid == os.geteuid()):
                raise RuntimeError(
                    f"{path} exists but belongs to uid {st.st_uid}, not {account.name} ({account.uid})"
                )
            os.fchown(fd, account.uid, account.gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        if created:
            _claim(marker_dir, account.uid).write_text(str(proctree.start_time(os.getpid()) or ""))
    return path, created


def _claim(marker_dir: Path, uid: int, pid: int | None = None) -> Path:
    """The file by which the worker ``pid`` (default: this one) holds ``uid``'s WayRay-made
    XDG_RUNTIME_DIR; it holds the worker's start time (empty where unknown)."""
    return marker_dir / f"runtime-{uid}.worker-{os.getpid() if pid is None else pid}"


def _claimed_by_another(marker_dir: Path, uid: int) -> bool:
    """Whether a running worker other than this one holds ``uid``'s directory (its session may still
    be starting, with no record yet). Claims of workers that are gone are removed."""
    from wayray.launcher import proctree

    held = False
    for claim in marker_dir.glob(f"runtime-{uid}.worker-*"):
        pid_text = claim.name.rpartition("-")[2]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            started_text = claim.read_text().strip()
        except OSError:
            continue
        started = int(started_text) if started_text.isdigit() else None
        if proctree.alive(int(pid_text), started):
            held = True
        else:
            claim.unlink(missing_ok=True)
    return held


def release_runtime_dir(path: Path, account: Account, records: SessionRecords, *, marker_dir: Path) -> bool:
    """Remove a WayRay-made XDG_RUNTIME_DIR when no other live WayRay session of the user needs it.

    Call after this session's own record is gone. Returns True when the directory was removed.
    """
    from wayray.launcher import proctree

    marker = marker_dir / f"runtime-{account.uid}"
    with records.lock():
        _claim(marker_dir, account.uid).unlink(missing_ok=True)
        if not marker.exists():
            return False
        if _claimed_by_another(marker_dir, account.uid):
            return False
        # Sessions whose workers were started before claims existed have only their records.
        for other in records.load_all():
            if other.info.uid == account.uid and proctree.alive(
                other.info.worker_pid, other.worker_start_time
            ):
                return False
        # Out of the way under the lock (a rename: instant), removed after it: the directory is the
        # user's, it may be huge or hold a FUSE mount of theirs that never answers, and the lock is
        # every login's (and wrsessd's).
        doomed = path.with_name(f".{path.name}.removed-{secrets.token_hex(4)}")
        try:
            os.rename(path, doomed)
        except OSError as err:
            log.warning("cannot remove %s: %s", path, err.strerror)
            return False
        marker.unlink(missing_ok=True)
    # Mounts in it (gvfs, the document portal, anything the user mounted with FUSE) are detached
    # first: rmtree would otherwise wait on them, empty them, and leave the directory behind.
    proctree.detach_mounts_below(doomed)
    # rmtree works on file descriptors on Linux, so a user's symlinks cannot redirect it.
    shutil.rmtree(doomed, ignore_errors=True)
    return not path.exists()


# --- environment -----------------------------------------------------------------------------------


def session_environment(
    account: Account,
    *,
    pam_env: Mapping[str, str],
    runtime_dir: Path,
    session_class: str,
    session_id: str,
    default_path: str,
) -> dict[str, str]:
    """The environment every program of the session starts with (before WAYLAND_DISPLAY)."""
    env = {"PATH": default_path, "LANG": "C.UTF-8"}
    env.update(pam_env)  # pam_env, pam_systemd (XDG_SESSION_ID), and what we put before open_session
    env.update(
        {
            "HOME": account.home,
            "USER": account.name,
            "LOGNAME": account.name,
            "SHELL": account.shell,
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "XDG_SESSION_TYPE": "wayland",
            "XDG_SESSION_CLASS": session_class,
            "XDG_SESSION_DESKTOP": "wayray",
            "XDG_CURRENT_DESKTOP": "WayRay",
            "WAYRAY_SESSION_ID": session_id,
        }
    )
    env.update(input_method_environment(env))  # Qt 5 reaches fcitx5 through its own plugin
    return env


def expand(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """The launcher's own commands: ``str.format`` placeholders (checked by ``SessionPlan.check``)."""
    return [arg.format_map(values) for arg in argv]


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def expand_known(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """session.toml commands (a user's own too): only ``{name}`` of a known placeholder is replaced,
    every other brace is left as written (``sh -c 'echo {}'`` means what it says)."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), arg) for arg in argv]


# --- spawning --------------------------------------------------------------------------------------


def spawn(
    argv: Sequence[str],
    *,
    account: Account,
    env: Mapping[str, str],
    umask: int,
    output: int,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start one program as the user, its stdout and stderr on ``output`` (see :mod:`sessionlog`: never
    the worker's own, which are wrsessd's log). Raises OSError (e.g. FileNotFoundError) when it cannot
    start."""
    common: dict[str, object] = dict(
        env=dict(env),
        user=account.uid,
        group=account.gid,
        extra_groups=list(account.groups),
        umask=umask,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )
    try:
        return subprocess.Popen(list(argv), cwd=account.home, **common)  # type: ignore[call-overload,no-any-return]
    except (FileNotFoundError, NotADirectoryError, PermissionError) as err:
        # A missing or unreadable home is no reason to refuse the login: start in / like login(1).
        if err.filename != account.home:
            raise
        log.warning(
            "home %s of %s is not usable (%s); starting in /", account.home, account.name, err.strerror
        )
        return subprocess.Popen(list(argv), cwd="/", **common)  # type: ignore[call-overload,no-any-return]


#: The session compositor's X display, next to its Wayland socket (docs/xwayland.md §8).
X_DISPLAY_SUFFIX = ".x11"


def read_x_display(socket_path: Path, uid: int) -> str | None:
    """The ``DISPLAY`` the session compositor at ``socket_path`` serves X clients on, from the file it
    writes before its socket (None: it has none — X11 off or no Xwayland — or the file is not the
    user's own small regular file with ``:N`` in it)."""
    path = Path(f"{socket_path}{X_DISPLAY_SUFFIX}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid:
            return None
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return text if re.fullmatch(r":\d{1,4}", text) else None


def wait_for_socket(
    path: Path,
    *,
    running: Callable[[], bool],
    timeout: float,
    status: Callable[[], int | None] = lambda: None,
) -> None:
    """Wait until ``path`` is a socket. Raises RuntimeError on timeout or when the program exits
    (saying how, from ``status``: its return code as :class:`subprocess.Popen` has it)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                return
        except FileNotFoundError:
            pass
        if not running():
            raise RuntimeError(
                f"the session compositor {_how_it_ended(status())} before creating its Wayland socket {path}"
            )
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"the session compositor did not create its Wayland socket {path} in {timeout:g} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


# --- the user's session.toml --------------------------------------------------------------------


def read_user_session(
    account: Account, env: Mapping[str, str], relative: str, system: SessionConfig
) -> SessionConfig:
    """The session settings for ``account``: ``system`` (session.toml) overridden key by key by the
    user's own ``$XDG_CONFIG_HOME/<relative>`` (default ``~/.config/…``).

    The file is read and parsed in a forked child that dropped to the user first, so root never opens
    a file the user controls (a link to /etc/shadow reads as "permission denied"). Problems in the
    file never stop the login: the bad keys are skipped and each problem is logged with its
    ``file:line:col``, for the user's administrator (the session's log is the user's to read).
    """
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(account.home, ".config")
    path = os.path.join(config_home, relative)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(rfd)
            # Nothing of the worker's (its link to wrsessd, PAM's descriptors) stays open as the user.
            os.closerange(3, wfd)
            os.closerange(wfd + 1, 65536)
            account.drop_privileges()
            try:
                # O_NONBLOCK: a FIFO (or a device) in the user's place must not hang the login.
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
                with open(fd, "rb") as f:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        raise ValueError("not a regular file")
                    data = f.read(256 * 1024 + 1)
                if len(data) > 256 * 1024:
                    raise ValueError("the file is larger than 256 KiB")
                merged, problems = load_user_session(system, data, path)
                outcome: dict[str, object] = {
                    "ok": session_to_json(merged),
                    "problems": [d.format() for d in problems],
                }
            except FileNotFoundError:
                outcome = {"absent": True}
            except (OSError, ValueError) as err:
                outcome = {"error": getattr(err, "strerror", None) or str(err)}
            os.write(wfd, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + USER_FILE_TIMEOUT_S
    try:
        # Bounded: a home on a hung network file system must not keep the root worker waiting.
        while select.select([rfd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if not (chunk := os.read(rfd, 65536)):
                os.waitpid(pid, 0)  # it has written everything and exited
                break
            chunks.append(chunk)
        else:
            chunks = [json.dumps({"error": f"not read within {USER_FILE_TIMEOUT_S:g} s"}).encode()]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # one stuck in the kernel is reaped with the session's children
    finally:
        os.close(rfd)
    try:
        result: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        result = {}
    for problem in result.get("problems") or ():
        log.warning("%s's session file: %s", account.name, problem)
    merged_json = result.get("ok")
    if isinstance(merged_json, dict):
        return session_from_json(merged_json)
    if "error" in result:
        log.warning("%s: ignoring %s's session file: %s", path, account.name, result["error"])
    return system


def session_env_entries(session: SessionConfig) -> dict[str, str]:
    """session.toml's ``environment`` without the names the launcher owns (those are logged)."""
    out = {}
    for name, value in session.environment.items():
        why = env_refusal(f"{name}={value}")
        if why is None and name.startswith("WAYRAY_"):
            why = f"environment variable {name} belongs to WayRay and cannot be set in session.toml"
        if why is not None:
            log.warning("session.toml: %s; ignoring it", why)
            continue
        out[name] = value
    return out

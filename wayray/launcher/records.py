"""Session records on disk: what lets a restarted wrsessd find the sessions that kept running.

Sessions outlive wrsessd on purpose (Sun Ray sessions persist; a daemon restart must not log anyone
out), so each session worker writes a small JSON record into a root-only directory when its session
starts and removes it when the session has ended. A starting wrsessd reads the records, checks that
each worker is still the same process (pid + start time) and re-adopts it: it lists it and can end it
(SIGTERM to the worker, which then tears the session down and closes its PAM session).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.common.files import refuse_directories_others_change, write_atomic
from wayray.launcher import protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredSession:
    info: protocol.SessionInfo
    worker_start_time: int | None
    #: sha256 of a greeter's login ticket, so the ticket still works after a wrsessd restart.
    ticket_sha256: str | None = None
    #: True when this session's worker created XDG_RUNTIME_DIR (and the last one out removes it).
    created_runtime_dir: bool = False
    #: Greeters: the environment the user session their login starts gets (``session_env``; it holds
    #: the link secret of the user's compositor, hence a root-only record); dropped with the ticket.
    session_env: tuple[str, ...] = ()
    #: Greeters: the most user sessions its login may leave its user with (create_greeter_session).
    max_user_sessions: int | None = None
    #: Greeters: the resource limits of the user session their login starts (create_greeter_session).
    login_memory_max: int | None = None
    login_cpu_quota: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "info": self.info.to_json(),
            "worker_start_time": self.worker_start_time,
            "ticket_sha256": self.ticket_sha256,
            "created_runtime_dir": self.created_runtime_dir,
            "session_env": list(self.session_env),
            "max_user_sessions": self.max_user_sessions,
            "login_memory_max": self.login_memory_max,
            "login_cpu_quota": self.login_cpu_quota,
        }

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> StoredSession:
        info = protocol.Nested(protocol.SessionInfo).check(obj["info"])
        assert isinstance(info, protocol.SessionInfo)
        start = obj.get("worker_start_time")
        ticket = obj.get("ticket_sha256")
        return cls(
            info=info,
            worker_start_time=start if isinstance(start, int) else None,
            ticket_sha256=ticket if isinstance(ticket, str) else None,
            created_runtime_dir=obj.get("created_runtime_dir") is True,
            session_env=tuple(e for e in env if isinstance(e, str))
            if isinstance(env := obj.get("session_env"), list)
            else (),
            max_user_sessions=m if isinstance(m := obj.get("max_user_sessions"), int) else None,
            login_memory_max=mm if isinstance(mm := obj.get("login_memory_max"), int) else None,
            login_cpu_quota=cq if isinstance(cq := obj.get("login_cpu_quota"), int) else None,
        )


class SessionRecords:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.sessions_dir = state_dir / "sessions"

    def ensure(self) -> None:
        """Create the directories, root-only; refuse a directory others could tamper with.

        Its parents matter too: whoever may rename entries in a parent could swap the directory.
        """
        refuse_directories_others_change(
            self.state_dir,
            "the session record directory",
            hint="make {parent} root-owned and not group/world-writable, or move state_dir",
        )
        for d in (self.state_dir, self.sessions_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = d.lstat()
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise WayRayError(
                    f"{d}: the session record directory must belong to uid {os.geteuid()} and not be "
                    "writable by others (anyone who can write it could make wrsessd signal any process)",
                    hint=f"chown root:root {d} && chmod 700 {d}",
                )
            os.chmod(d, 0o700)

    def _path(self, session_id: str) -> Path:
        return self.sessions_dir / f"{session_id}.json"

    def write(self, stored: StoredSession) -> None:
        path = self._path(stored.info.session_id)
        write_atomic(path, json.dumps(stored.to_json()).encode())

    def remove(self, session_id: str) -> None:
        with self.lock(), contextlib.suppress(FileNotFoundError):
            self._path(session_id).unlink()

    def set_greeter_login(
        self,
        session_id: str,
        env: tuple[str, ...],
        max_user_sessions: int | None,
        memory_max: int | None = None,
        cpu_quota: int | None = None,
    ) -> None:
        """Keep what a greeter's login must apply in its record (``session_env``, the session limit,
        the resource limits), so it still applies after a wrsessd restart."""
        with self.lock():
            path = self._path(session_id)
            try:
                stored = StoredSession.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                return
            self.write(
                replace(
                    stored,
                    session_env=env,
                    max_user_sessions=max_user_sessions,
                    login_memory_max=memory_max,
                    login_cpu_quota=cpu_quota,
                )
            )

    def forget_ticket(self, session_id: str) -> None:
        """Drop a used greeter ticket from its record (under the lock, so a record being removed by
        its ending worker is not written back)."""
        with self.lock():
            path = self._path(session_id)
            try:
                stored = StoredSession.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                return
            self.write(replace(stored, ticket_sha256=None, session_env=()))

    def load_all(self) -> list[StoredSession]:
        out: list[StoredSession] = []
        if not self.sessions_dir.is_dir():
            return out
        for path in sorted(self.sessions_dir.glob("*.json")):
            try:
                out.append(StoredSession.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("%s: unreadable session record (%s); ignoring it", path, err)
        return out

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock for decisions that span sessions (sharing XDG_RUNTIME_DIR)."""
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

"""The session worker: one root process per login, like greetd's.

wrsessd starts a fresh worker (``python -I -m wayray.launcher.worker --fd N``) for every login and
every greeter session, and talks to it over a socketpair with the IPC framing. Keeping PAM out of the
daemon means a PAM module that blocks, sleeps (pam_faildelay) or crashes stalls or kills only its
own login. The worker's life:

1. **Authenticate.** ``begin`` names the PAM service and user; the worker runs ``pam_authenticate``
   (skipped for greeter sessions) and ``pam_acct_mgmt`` — with ``pam_chauthtok`` when the password
   has expired and changing it is allowed — relaying each PAM message as ``prompt`` and waiting for
   the daemon's ``answer``. It reports ``auth_ok`` or ``auth_failed`` (and then exits).
2. **Start.** On ``start``: put the session's XDG variables into PAM's environment (pam_systemd reads
   them), ``pam_setcred(ESTABLISH)``, ``pam_open_session``, make XDG_RUNTIME_DIR if PAM did not,
   become a child subreaper, start the compositor as the user, wait for its Wayland socket, start the
   session's components in order, write the session record and report ``started``.
3. **Run.** Reap children; the session ends when the compositor exits, on ``stop`` from the daemon,
   or on SIGTERM (how a restarted wrsessd, which has no socketpair, ends a re-adopted session).
   Losing the daemon does not end the session.
4. **Tear down.** SIGTERM to every descendant, SIGKILL after ``stop_timeout_s``, then
   ``pam_close_session``, ``pam_setcred(DELETE)``, ``pam_end``; remove the record and the runtime
   directory if WayRay made it and nobody else uses it; report ``ended``.

The worker keeps root throughout because closing the PAM session needs it; only its children drop
privileges. It does not set PR_SET_PDEATHSIG: sessions must survive a wrsessd restart.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wayray.common.log import setup as setup_logging
from wayray.common.secretfd import secret_pipe
from wayray.launcher import pam, proctree, protocol, scope, sessionlog, spawn
from wayray.launcher.channel import Channel
from wayray.launcher.records import SessionRecords, StoredSession
from wayray.launcher.settings import Component, SessionPlan, session_components, session_from_json

log = logging.getLogger("wayray.wrsessd.worker")

#: The link secret wrsrvd puts in a session's requested environment: the compositor gets it in a pipe
#: whose descriptor ``WAYRAY_LINK_SECRET_FD`` names.
LINK_SECRET = "WAYRAY_LINK_SECRET"

# PAM outcomes that mean "wrong name or password": the greeter says so without telling which.
_AUTH_FAILURES = {
    pam.Status.AUTH_ERR,
    pam.Status.USER_UNKNOWN,
    pam.Status.CRED_INSUFFICIENT,
    pam.Status.AUTHINFO_UNAVAIL,
    pam.Status.MAXTRIES,
}
# Authenticated, but the account may not log in now.
_ACCOUNT_FAILURES = {
    pam.Status.ACCT_EXPIRED,
    pam.Status.PERM_DENIED,
    pam.Status.AUTHTOK_EXPIRED,
    pam.Status.NEW_AUTHTOK_REQD,
    pam.Status.AUTHTOK_ERR,
    pam.Status.AUTHTOK_RECOVERY_ERR,
    pam.Status.AUTHTOK_LOCK_BUSY,
    pam.Status.TRY_AGAIN,
}
LOGIN_INCORRECT = "Login incorrect: wrong user name or password."
#: An unlock's user name is fixed (the session's owner): only the password can be wrong.
WRONG_PASSWORD = "Wrong password."
ROOT_REFUSED = "root cannot log in here: WayRay never starts a session as root."

_STYLE_TO_TYPE = {
    pam.MessageStyle.PROMPT_ECHO_OFF: protocol.AuthMessageType.SECRET,
    pam.MessageStyle.PROMPT_ECHO_ON: protocol.AuthMessageType.VISIBLE,
    pam.MessageStyle.TEXT_INFO: protocol.AuthMessageType.INFO,
    pam.MessageStyle.ERROR_MSG: protocol.AuthMessageType.ERROR,
}


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs, sent by the daemon in ``begin`` (so the worker reads no config)."""

    session_id: str
    session_class: str  # protocol.SessionClass value
    service: str | None  # PAM service; None: no PAM at all (greeters, when so configured)
    user: str | None  # None: PAM asks for the user name
    authenticate: bool
    open_session: bool  # False for unlock logins: authenticate only
    rhost: str | None
    pam_tty: str | None
    token: str | None
    token_kind: str | None
    allow_password_change: bool
    compositor: tuple[str, ...]
    components: tuple[tuple[str, tuple[str, ...]], ...]
    read_user_session_file: bool
    user_session_file: str
    runtime_dir_base: str
    state_dir: str
    default_path: str
    umask: int
    compositor_start_timeout_s: float
    stop_timeout_s: float
    unlock_session: str | None = None
    #: session.toml (``settings.session_to_json``): user sessions' further programs and environment.
    session_defaults: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> WorkerJob:
        values = dict(obj)
        values["compositor"] = tuple(values["compositor"])
        values["components"] = tuple((name, tuple(argv)) for name, argv in values["components"])
        return cls(**values)

    @property
    def plan(self) -> SessionPlan:
        return SessionPlan(self.compositor, tuple(Component(n, a) for n, a in self.components))


class Cancelled(Exception):
    pass


class StartFailed(Exception):
    pass


class Worker:
    def __init__(self, chan: Channel, job: WorkerJob) -> None:
        self.chan = chan
        self.job = job
        self.handle: pam.PamHandle | None = None
        self.last_pam_error: str | None = None
        self.account: spawn.Account | None = None
        # What has been set up, so teardown undoes exactly that.
        self.cred_established = False
        self.session_open = False
        self.runtime_dir: Path | None = None
        self.created_runtime_dir = False
        self.record_written = False
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        #: Where the session's programs write (their own journal stream or log file, never ours).
        self.output: sessionlog.SessionOutput | None = None
        self.compositor_pid: int | None = None
        self.info: protocol.SessionInfo | None = None
        self.records = SessionRecords(Path(job.state_dir))
        #: SIGTERM while starting (wrsessd gave up waiting): stop at the next safe point and tear down
        #: what was set up, closing the PAM session, instead of dying halfway.
        self.stop_requested = False
        #: Our cgroup before pam_open_session (pam_systemd moves us into logind's scope there).
        self.cgroup_before = scope.cgroup_of()
        #: The systemd scope the session runs in (None: no systemd, or systemd refused one).
        self.unit: str | None = None
        self.limits = scope.Limits()

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise StartFailed("wrsessd stopped the start (it took too long)")

    # --- phase 1: authentication ------------------------------------------------------------------

    def converse(self, message: pam.Message) -> str | None:
        kind = _STYLE_TO_TYPE[message.style]
        if kind is protocol.AuthMessageType.ERROR:
            self.last_pam_error = message.text
        prompt: dict[str, Any] = {"type": "prompt", "style": kind.value, "text": message.text}
        named = self._pam_user()
        if named:
            # PAM knows whom it is authenticating (it asked "login:", or was told): wrsessd checks
            # that user's lockout now, before anything further — a password above all — is asked.
            prompt["user"] = named
        if not self.chan.send(prompt):
            raise pam.ConversationAborted("wrsessd went away")
        reply = self.chan.recv()
        if reply is None or reply.get("type") == "cancel":
            raise Cancelled()
        if reply.get("type") != "answer":
            raise pam.ConversationAborted(f"unexpected {reply.get('type')!r} during the conversation")
        response = reply.get("response")
        if kind.is_prompt:
            if not isinstance(response, str):
                raise pam.ConversationAborted("no answer to a prompt")
            return response
        return None

    def _pam_user(self) -> str | None:
        if self.handle is None:
            return None
        try:
            return self.handle.user
        except pam.PamError:
            return None

    def authenticate(self) -> bool:
        job = self.job
        if job.service is None:
            assert job.user is not None
            self.account = spawn.Account.lookup(job.user)
            return self.chan.send({"type": "auth_ok", "user": self.account.name, "uid": self.account.uid})
        try:
            self.handle = pam.PamHandle(job.service, job.user, self.converse)
            if job.rhost:
                self.handle.set_item(pam.Item.RHOST, job.rhost)
            if job.pam_tty:
                self.handle.set_item(pam.Item.TTY, job.pam_tty)
            if job.authenticate:
                self.handle.authenticate()
            try:
                self.handle.acct_mgmt()
            except pam.PamError as err:
                if err.status is not pam.Status.NEW_AUTHTOK_REQD or not job.allow_password_change:
                    raise
                self.handle.chauthtok(pam.Flag.CHANGE_EXPIRED_AUTHTOK)
            user = self.handle.user
            if not user:
                raise pam.PamError("pam_get_item", pam.Status.USER_UNKNOWN, "PAM did not name a user")
            self.account = spawn.Account.lookup(user)
        except (pam.PamError, KeyError) as err:
            return self._auth_failed(err)
        if self.account.uid == 0 and job.session_class == protocol.SessionClass.GREETER:
            self.chan.send(
                {"type": "auth_failed", "error_type": "error", "message": "greeters never run as root"}
            )
            return False
        if self.account.uid == 0:
            # Whatever the PAM stack says: a kiosk is no place for a root session (nor an unlock of one).
            log.warning("login for %s refused: it has uid 0, and WayRay never starts a root session", user)
            self.chan.send(
                {
                    "type": "auth_failed",
                    "error_type": "account_error",
                    "message": ROOT_REFUSED,
                    "status": "root_refused",
                    "user": self.account.name,
                }
            )
            return False
        return self.chan.send({"type": "auth_ok", "user": self.account.name, "uid": self.account.uid})

    def _auth_failed(self, err: pam.PamError | KeyError) -> bool:
        assert self.handle is not None
        user = self.handle.user if self.handle else None
        if isinstance(err, KeyError):
            error_type, message, status = "auth_error", LOGIN_INCORRECT, "user_unknown"
            log.warning("login for %r refused: PAM accepted a user the system does not know", user)
        else:
            status = err.status.value
            if isinstance(self.handle.conversation_error, Cancelled):
                raise Cancelled()
            if err.status in _AUTH_FAILURES:
                incorrect = WRONG_PASSWORD if self.job.unlock_session else LOGIN_INCORRECT
                error_type, message = "auth_error", self.last_pam_error or incorrect
            elif err.status in _ACCOUNT_FAILURES:
                what = "password change failed" if err.call == "pam_chauthtok" else "account refused"
                error_type = "account_error"
                message = self.last_pam_error or f"{what.capitalize()}: {err.message}."
            elif err.status is pam.Status.CONV_ERR:
                error_type, message = "error", "The login conversation failed."
            else:
                error_type = "error"
                message = (
                    f"The login service failed ({err.message}); ask an administrator to check the logs."
                )
            log.info(
                "login for %r refused by %s in %s: %s",
                user or job_user(self.job),
                self.job.service,
                err.call,
                err.message,
            )
        self.chan.send(
            {
                "type": "auth_failed",
                "error_type": error_type,
                "message": message,
                "status": status,
                "user": user,
            }
        )
        return False

    # --- phase 2: start ---------------------------------------------------------------------------

    def start(self, msg: dict[str, Any]) -> None:
        job = self.job
        account = self.account
        assert account is not None
        proctree.become_subreaper()
        wayland_display = f"wayland-wr-{job.session_id}"
        requested_env = [e for e in msg.get("env") or () if isinstance(e, str)]
        # The compositor's link secret (from wrsrvd) is for the compositor alone: kept out of PAM's
        # environment and every program's, it reaches the compositor through a pipe (docs/link.md §1).
        link_secrets = [e.partition("=")[2] for e in requested_env if e.startswith(f"{LINK_SECRET}=")]
        requested_env = [e for e in requested_env if not e.startswith(f"{LINK_SECRET}=")]
        pam_env: dict[str, str] = {}
        if self.handle is not None:
            h = self.handle
            for entry in (
                "XDG_SESSION_TYPE=wayland",
                f"XDG_SESSION_CLASS={job.session_class}",
                "XDG_SESSION_DESKTOP=wayray",
                f"USER={account.name}",
                f"LOGNAME={account.name}",
                f"HOME={account.home}",
                f"SHELL={account.shell}",
                *requested_env,
            ):
                h.putenv(entry)
            h.setcred(pam.Flag.ESTABLISH_CRED)
            self.cred_established = True
            h.open_session()
            self.session_open = True
            pam_env = h.getenvlist()
            self._check_stop()
        else:
            pam_env = dict(e.split("=", 1) for e in requested_env)
        # Out of wrsessd's cgroup before anything of the session runs, so that a restart of wrsessd
        # (which kills its cgroup) ends none of it.
        self._place(msg, account)
        self._check_stop()

        self.runtime_dir, self.created_runtime_dir = self._runtime_dir(pam_env, account)
        env = spawn.session_environment(
            account,
            pam_env=pam_env,
            runtime_dir=self.runtime_dir,
            session_class=job.session_class,
            session_id=job.session_id,
            default_path=job.default_path,
        )
        plan = job.plan
        from_session_toml: tuple[Component, ...] = ()
        if job.session_class == protocol.SessionClass.USER and job.session_defaults is not None:
            session = session_from_json(job.session_defaults)
            if job.read_user_session_file:
                session = spawn.read_user_session(account, env, job.user_session_file, session)
                self._check_stop()
            from_session_toml = session_components(session)
            plan = SessionPlan(plan.compositor, (*plan.components, *from_session_toml))
            env.update(spawn.session_env_entries(session))
        custom = [a for a in msg.get("cmd") or () if isinstance(a, str)]
        values = {
            "wayland_display": wayland_display,
            "session_id": job.session_id,
            "runtime_dir": str(self.runtime_dir),
            "user": account.name,
            "session_class": job.session_class,
        }
        socket_path = self.runtime_dir / wayland_display
        try:
            socket_path.unlink()  # a stale socket from a crashed session of the same id
        except FileNotFoundError:
            pass

        greeter = job.session_class == protocol.SessionClass.GREETER
        self.output, problem = sessionlog.open_output(
            account, env, greeter=greeter, session_id=job.session_id
        )
        if self.output.kind is sessionlog.OutputKind.DISCARDED:
            log.warning(
                "session %s of %s: %s; the session's output is discarded",
                job.session_id,
                account.name,
                problem,
            )
        else:
            log.info(
                "session %s of %s: its programs write to %s%s",
                job.session_id,
                account.name,
                self.output.where,
                f" ({problem})" if problem else "",
            )
        self._check_stop()
        output = self.output.fd

        comp_env = {**env, "WAYRAY_WAYLAND_DISPLAY": wayland_display}
        secret_fd = secret_pipe(link_secrets[-1]) if link_secrets else None
        if secret_fd is not None:
            comp_env[f"{LINK_SECRET}_FD"] = str(secret_fd)
        try:
            compositor = spawn.spawn(
                # Placeholders are expanded in configured commands only; a requested one is taken as is.
                custom or spawn.expand(plan.compositor, values),
                account=account,
                env=comp_env,
                umask=job.umask,
                output=output,
                pass_fds=() if secret_fd is None else (secret_fd,),
            )
        except OSError as err:
            raise StartFailed(
                f"cannot start the session compositor {(custom or plan.compositor)[0]!r}: {err.strerror}"
            ) from err
        finally:
            if secret_fd is not None:
                os.close(secret_fd)
        self.children[compositor.pid] = compositor
        self.compositor_pid = compositor.pid

        def running() -> bool:
            self._check_stop()
            return compositor.poll() is None

        spawn.wait_for_socket(
            socket_path,
            running=running,
            timeout=job.compositor_start_timeout_s,
            status=lambda: compositor.returncode,
        )

        client_env = {**env, "WAYLAND_DISPLAY": wayland_display}
        if greeter:
            client_env.update(
                {k: v for k, v in (msg.get("greeter_env") or {}).items() if isinstance(v, str)}
            )
        configured = len(plan.components) - len(from_session_toml)
        for index, comp in enumerate(plan.components):
            self._check_stop()
            expand = spawn.expand if index < configured else spawn.expand_known
            try:
                child = spawn.spawn(
                    expand(comp.argv, values),
                    account=account,
                    env=client_env,
                    umask=job.umask,
                    output=output,
                )
            except OSError as err:
                if greeter:
                    raise StartFailed(f"cannot start the greeter {comp.argv[0]!r}: {err.strerror}") from err
                log.warning(
                    "session %s: cannot start %s (%r): %s", job.session_id, comp.name, comp.argv[0], err
                )
                continue
            self.children[child.pid] = child
            log.debug("session %s: started %s as pid %d", job.session_id, comp.name, child.pid)

        self.info = protocol.SessionInfo(
            session_id=job.session_id,
            session_class=protocol.SessionClass(job.session_class),
            user=account.name,
            uid=account.uid,
            token=job.token,
            token_kind=job.token_kind,
            rhost=job.rhost,
            wayland_display=wayland_display,
            runtime_dir=str(self.runtime_dir),
            worker_pid=os.getpid(),
            compositor_pid=compositor.pid,
            started_at=time.time(),
            replaces=msg.get("replaces") if isinstance(msg.get("replaces"), str) else None,
            unlock_session=job.unlock_session,
            unit=self.unit,
            memory_max=self.limits.memory_max,
            cpu_quota=self.limits.cpu_quota,
        )
        ticket = msg.get("greeter_env", {}).get("WAYRAY_LOGIN_TICKET")
        self.records.write(
            StoredSession(
                info=self.info,
                worker_start_time=proctree.start_time(os.getpid()),
                ticket_sha256=hashlib.sha256(ticket.encode()).hexdigest()
                if isinstance(ticket, str)
                else None,
                created_runtime_dir=self.created_runtime_dir,
            )
        )
        self.record_written = True

    def _place(self, msg: dict[str, Any], account: spawn.Account) -> None:
        job = self.job
        memory_max, cpu_quota = msg.get("memory_max"), msg.get("cpu_quota")
        limits = scope.Limits(
            memory_max=memory_max if isinstance(memory_max, int) and memory_max > 0 else None,
            cpu_quota=cpu_quota if isinstance(cpu_quota, int) and cpu_quota > 0 else None,
        )
        if job.session_class == protocol.SessionClass.GREETER:
            what = f"WayRay login screen {job.session_id}"
        else:
            what = f"WayRay session {job.session_id} of {account.name}"
        try:
            self.unit = scope.place(
                job.session_id, before=self.cgroup_before, description=what, limits=limits
            )
        except scope.ScopeError as err:
            self.unit = scope.unit_of(scope.cgroup_of()) if err.placed else None
            if not err.placed:
                log.error(
                    "session %s of %s: %s; it stays in wrsessd's cgroup, so stopping or restarting "
                    "wrsessd will end it",
                    job.session_id,
                    account.name,
                    err,
                )
                return
            log.error("session %s of %s: %s; it runs without them", job.session_id, account.name, err)
            return
        if self.unit is None:
            if limits:
                log.warning(
                    "session %s of %s: its limits (%s) are not applied: there is no systemd here",
                    job.session_id,
                    account.name,
                    limits.describe(),
                )
            return
        self.limits = limits
        log.info(
            "session %s of %s runs in %s%s",
            job.session_id,
            account.name,
            self.unit,
            f" ({limits.describe()})" if limits else "",
        )

    def _runtime_dir(self, pam_env: dict[str, str], account: spawn.Account) -> tuple[Path, bool]:
        given = pam_env.get("XDG_RUNTIME_DIR")
        if given:
            try:
                st = os.lstat(given)
                if st.st_uid == account.uid and os.path.isdir(given):
                    return Path(given), False  # pam_systemd (logind) made it and will remove it
            except OSError:
                pass
            log.warning(
                "PAM set XDG_RUNTIME_DIR=%s but it is not %s's directory; making one", given, account.name
            )
        return spawn.ensure_runtime_dir(
            Path(self.job.runtime_dir_base), account, self.records, marker_dir=self.records.state_dir
        )

    # --- phase 3: run -----------------------------------------------------------------------------

    def run(self) -> str:
        """Serve until the session ends; returns the end reason."""
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        sel = selectors.DefaultSelector()
        sel.register(rfd, selectors.EVENT_READ, "signal")
        if not self.chan.closed:
            sel.register(self.chan.sock, selectors.EVENT_READ, "daemon")
        reason: str | None = self._reap()
        if reason is None and self.stop_requested:  # SIGTERM between the start and this loop
            reason = protocol.EndReason.SHUTDOWN.value
        while reason is None:
            if self.chan.has_buffered():
                events = [(None, "daemon")]
            else:
                events = [(None, key.data) for key, _ in sel.select()]
            for _, what in events:
                if what == "signal":
                    try:
                        sigs = os.read(rfd, 512)
                    except BlockingIOError:
                        sigs = b""
                    if any(s in sigs for s in (signal.SIGTERM, signal.SIGINT)):
                        reason = reason or protocol.EndReason.SHUTDOWN.value
                    reason = reason or self._reap()
                elif what == "daemon":
                    msg = self.chan.recv()
                    if msg is None:
                        if self.unit is None and scope.systemd_booted():
                            log.warning(
                                "session %s: wrsessd went away; the session is in its cgroup, so the "
                                "service manager may end it",
                                self.job.session_id,
                            )
                        else:
                            log.info(
                                "session %s: wrsessd went away; the session keeps running",
                                self.job.session_id,
                            )
                        sel.unregister(self.chan.sock)
                    elif msg.get("type") == "stop":
                        given = msg.get("reason")
                        reason = given if isinstance(given, str) else protocol.EndReason.OPERATOR.value
        sel.close()
        return reason

    def _reap(self) -> str | None:
        for pid, _status in proctree.reap_children():
            child = self.children.pop(pid, None)
            if child is not None:
                child.returncode = -1  # already reaped: keep Popen from waiting on a reused pid
            if pid == self.compositor_pid:
                return protocol.EndReason.COMPOSITOR_EXITED.value
        return None

    # --- phase 4: teardown ------------------------------------------------------------------------

    def teardown(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # we are already ending
        me = os.getpid()
        pids = proctree.descendants(me)
        if pids:
            proctree.signal_all(pids, signal.SIGTERM)
            proctree.signal_all(pids, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self._wait_tree(self.job.stop_timeout_s)
        pids = proctree.descendants(me)
        if pids:
            log.warning(
                "session %s: %d process(es) ignored SIGTERM for %g s; killing them",
                self.job.session_id,
                len(pids),
                self.job.stop_timeout_s,
            )
            for _ in range(50):  # processes forking while we kill: repeat until none is left
                pids = proctree.descendants(me)
                if not pids:
                    break
                proctree.signal_all(pids, signal.SIGKILL)
                self._wait_tree(0.2)
        if self.output is not None:
            self.output.close()
            self.output = None
        self._close_pam()
        if self.record_written:
            self.records.remove(self.job.session_id)
        if self.created_runtime_dir and self.runtime_dir is not None and self.account is not None:
            spawn.release_runtime_dir(
                self.runtime_dir, self.account, self.records, marker_dir=self.records.state_dir
            )

    def _wait_tree(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        me = os.getpid()
        while True:
            self._reap()
            live = [p for p in proctree.descendants(me) if not proctree.is_zombie(p)]
            if not live:
                self._reap()
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def _close_pam(self) -> None:
        h = self.handle
        if h is None:
            return
        try:
            if self.session_open:
                h.close_session()
        except pam.PamError as err:
            log.warning("session %s: pam_close_session: %s", self.job.session_id, err.message)
        try:
            if self.cred_established:
                h.setcred(pam.Flag.DELETE_CRED)
        except pam.PamError as err:
            log.warning("session %s: pam_setcred(DELETE): %s", self.job.session_id, err.message)
        h.end()
        self.handle = None


def job_user(job: WorkerJob) -> str:
    return job.user or "(asked by PAM)"


def serve(chan: Channel) -> int:
    begin = chan.recv()
    if begin is None or begin.get("type") != "begin":
        return 1
    job = WorkerJob.from_json(begin["job"])
    proctree.set_process_name(f"wrsessd-{job.session_class[0]}-{job.session_id[:6]}")
    worker = Worker(chan, job)
    try:
        if not worker.authenticate():
            return 0
        msg = chan.recv(timeout=None)
        if msg is None or msg.get("type") in ("cancel", "finish"):
            return 0
        if msg.get("type") != "start" or not job.open_session:
            return 1
        signal.signal(signal.SIGTERM, worker.request_stop)
        try:
            worker.start(msg)
        except (StartFailed, RuntimeError, pam.PamError, OSError) as err:
            if isinstance(err, pam.PamError):
                text = f"{err.call} failed in PAM service {job.service!r}: {err.message}"
            else:
                text = str(err)
            log.error("session %s for %s could not start: %s", job.session_id, job_user(job), text)
            worker.teardown()
            chan.send({"type": "start_failed", "message": text})
            return 0
        assert worker.info is not None
        chan.send({"type": "started", "session": worker.info.to_json()})
        log.info(
            "session %s started: %s session of %s (uid %d), compositor pid %d",
            job.session_id,
            job.session_class,
            worker.info.user,
            worker.info.uid,
            worker.info.compositor_pid,
        )
        reason = worker.run()
        log.info("session %s of %s ending (%s)", job.session_id, worker.info.user, reason)
        worker.teardown()
        chan.send({"type": "ended", "reason": reason})
        log.info("session %s ended; PAM session closed", job.session_id)
        return 0
    except Cancelled:
        log.debug("login %s cancelled", job.session_id)
        return 0
    finally:
        if worker.handle is not None:
            worker.handle.end()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wrsessd-worker", description="wrsessd's per-login session worker")
    parser.add_argument("--fd", type=int, required=True, help="the socketpair end wrsessd passed")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    setup_logging("wrsessd-worker", verbose=args.verbose)
    if os.geteuid() != 0:
        log.error("the session worker must run as root")
        return 1
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    return serve(Channel(sock))


if __name__ == "__main__":
    sys.exit(main())

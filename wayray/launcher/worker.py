"""The session worker: one root process per login, like greetd's.

wrsessd starts a fresh worker (``python -I -m wayray.launcher.worker --fd N``) for every login and
every greeter session, and talks to it over a socketpair with the IPC framing. Keeping PAM out of the
daemon means a PAM module that blocks, sleeps (pam_faildelay) or crashes stalls or kills only its
own login. The messages are :mod:`wayray.launcher.worker_protocol`'s. The worker's life:

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
import json
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

from wayray.common.log import setup as setup_logging
from wayray.common.secretfd import secret_pipe
from wayray.common.xdg import session_sound_environment
from wayray.launcher import pam, proctree, protocol, scope, sessionlog, spawn
from wayray.launcher import worker_protocol as wp
from wayray.launcher.channel import Channel
from wayray.launcher.pamlogin import Cancelled, DaemonChannel, PamLogin
from wayray.launcher.protocol import EndReason
from wayray.launcher.records import SessionRecords, StoredSession
from wayray.launcher.settings import (
    WINDOW_MANAGER_ENV,
    SessionPlan,
    hand_window_manager,
    session_components,
    session_from_json,
)

log = logging.getLogger("wayray.wrsessd.worker")

#: The link secret wrsrvd puts in a session's requested environment: the compositor gets it in a pipe
#: whose descriptor ``WAYRAY_LINK_SECRET_FD`` names.
LINK_SECRET = "WAYRAY_LINK_SECRET"


class StartFailed(Exception):
    pass


@dataclass(frozen=True)
class Placeholders:
    """What the ``{placeholders}`` of configured commands expand to (settings.PLACEHOLDERS)."""

    wayland_display: str
    session_id: str
    runtime_dir: str
    user: str
    session_class: str

    def values(self) -> dict[str, str]:
        return dataclasses.asdict(self)


class Worker:
    """A session after its login (:class:`PamLogin`): started, served until it ends, torn down."""

    def __init__(self, chan: DaemonChannel, job: wp.WorkerJob, login: PamLogin) -> None:
        self.chan = chan
        self.job = job
        #: The PAM handle of the login (None without PAM), on which the session is opened and closed.
        self.handle = login.handle
        self.account = login.account
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

    @property
    def wayland_display(self) -> str:
        return f"wayland-wr-{self.job.session_id}"

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise StartFailed("wrsessd stopped the start (it took too long)")

    # --- phase 2: start ---------------------------------------------------------------------------

    def start(self, msg: wp.Start) -> None:
        job = self.job
        account = self.account
        assert account is not None
        proctree.become_subreaper()
        # The compositor's link secret (from wrsrvd) is for the compositor alone: kept out of PAM's
        # environment and every program's, it reaches the compositor through a pipe (docs/link.md §1).
        link_secrets = [e.partition("=")[2] for e in msg.env if e.startswith(f"{LINK_SECRET}=")]
        requested_env = [e for e in msg.env if not e.startswith(f"{LINK_SECRET}=")]
        pam_env = self._open_pam_session(account, requested_env)
        # Out of wrsessd's cgroup before anything of the session runs, so that a restart of wrsessd
        # (which kills its cgroup) ends none of it.
        self._place(msg, account)
        self._check_stop()
        self.runtime_dir, self.created_runtime_dir = self._runtime_dir(pam_env, account)
        env = spawn.session_environment(
            account,
            pam_env=pam_env,
            runtime_dir=self.runtime_dir,
            session_class=job.session_class.value,
            session_id=job.session_id,
            default_path=job.default_path,
        )
        plan, configured = self._plan(account, env)
        names = Placeholders(
            wayland_display=self.wayland_display,
            session_id=job.session_id,
            runtime_dir=str(self.runtime_dir),
            user=account.name,
            session_class=job.session_class.value,
        )
        output = self._open_output(account, env)
        compositor_argv = msg.cmd or spawn.expand(plan.compositor, names.values())
        plan, wm_argv = hand_window_manager(plan, configured, compositor_argv)
        comp_env = dict(env)
        if wm_argv:
            # WayRay's compositor starts the window manager itself: the one client that may manage
            # windows (docs/wm-protocol.md §1).
            comp_env[WINDOW_MANAGER_ENV] = json.dumps(spawn.expand_known(wm_argv, names.values()))
        compositor = self._spawn_compositor(
            msg.cmd or (), plan, comp_env, names, output, link_secrets[-1] if link_secrets else None
        )
        client_env = {**env, "WAYLAND_DISPLAY": self.wayland_display}
        if env.get("WAYRAY_SESSION_AUDIO", "off") != "off":
            # The compositor started the session's sound server before its socket appeared.
            client_env.update(session_sound_environment(self.runtime_dir, self.wayland_display))
        x_display = spawn.read_x_display(self.runtime_dir / self.wayland_display, account.uid)
        if x_display is not None:
            client_env["DISPLAY"] = x_display  # X11 programs: the compositor's Xwayland
        if job.greeter:
            client_env.update(msg.greeter_env or {})
        self._spawn_components(plan, configured, client_env, names, output)
        self._record(msg, account, compositor.pid)

    def _open_pam_session(self, account: spawn.Account, requested_env: list[str]) -> dict[str, str]:
        """The session's variables into PAM's environment (pam_systemd reads them),
        ``pam_setcred(ESTABLISH)``, ``pam_open_session``: PAM's environment for the session."""
        job = self.job
        h = self.handle
        if h is None:
            return dict(e.split("=", 1) for e in requested_env)
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
        return pam_env

    def _plan(self, account: spawn.Account, env: dict[str, str]) -> tuple[SessionPlan, int]:
        """The configured plan with session.toml's programs after it (a user session), and how many of
        its components are configured ones (whose unknown placeholders are errors); session.toml's
        environment goes into ``env``."""
        job = self.job
        plan = job.plan
        configured = len(plan.components)
        if job.session_class is not protocol.SessionClass.USER or job.session_defaults is None:
            return plan, configured
        session = session_from_json(job.session_defaults)
        if job.read_user_session_file:
            session = spawn.read_user_session(account, env, job.user_session_file, session)
            self._check_stop()
        plan = SessionPlan(plan.compositor, (*plan.components, *session_components(session)))
        env.update(spawn.session_env_entries(session))
        return plan, configured

    def _open_output(self, account: spawn.Account, env: dict[str, str]) -> int:
        """Where the session's programs write: the descriptor they all get as stdout and stderr."""
        job = self.job
        self.output, problem = sessionlog.open_output(
            account, env, greeter=job.greeter, session_id=job.session_id
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
        return self.output.fd

    def _spawn_compositor(
        self,
        custom: tuple[str, ...],
        plan: SessionPlan,
        env: dict[str, str],
        names: Placeholders,
        output: int,
        link_secret: str | None,
    ) -> subprocess.Popen[bytes]:
        """Start the compositor as the user and wait for its Wayland socket."""
        job = self.job
        assert self.account is not None and self.runtime_dir is not None
        socket_path = self.runtime_dir / self.wayland_display
        try:
            socket_path.unlink()  # a stale socket from a crashed session of the same id
        except FileNotFoundError:
            pass
        comp_env = {**env, "WAYRAY_WAYLAND_DISPLAY": self.wayland_display}
        secret_fd = secret_pipe(link_secret) if link_secret is not None else None
        if secret_fd is not None:
            comp_env[f"{LINK_SECRET}_FD"] = str(secret_fd)
        try:
            compositor = spawn.spawn(
                # Placeholders are expanded in configured commands only; a requested one is taken as is.
                list(custom) or spawn.expand(plan.compositor, names.values()),
                account=self.account,
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
        return compositor

    def _spawn_components(
        self,
        plan: SessionPlan,
        configured: int,
        client_env: dict[str, str],
        names: Placeholders,
        output: int,
    ) -> None:
        """Start the session's programs in order (a greeter that cannot start fails the start)."""
        job = self.job
        assert self.account is not None
        for index, comp in enumerate(plan.components):
            self._check_stop()
            expand = spawn.expand if index < configured else spawn.expand_known
            try:
                child = spawn.spawn(
                    expand(comp.argv, names.values()),
                    account=self.account,
                    env=client_env,
                    umask=job.umask,
                    output=output,
                )
            except OSError as err:
                if job.greeter:
                    raise StartFailed(f"cannot start the greeter {comp.argv[0]!r}: {err.strerror}") from err
                log.warning(
                    "session %s: cannot start %s (%r): %s", job.session_id, comp.name, comp.argv[0], err
                )
                continue
            self.children[child.pid] = child
            log.debug("session %s: started %s as pid %d", job.session_id, comp.name, child.pid)

    def _record(self, msg: wp.Start, account: spawn.Account, compositor_pid: int) -> None:
        """The session as wrsessd knows it, and its record (what a restarted wrsessd re-adopts)."""
        job = self.job
        self.info = protocol.SessionInfo(
            session_id=job.session_id,
            session_class=job.session_class,
            user=account.name,
            uid=account.uid,
            token=job.token,
            token_kind=job.token_kind,
            rhost=job.rhost,
            wayland_display=self.wayland_display,
            runtime_dir=str(self.runtime_dir),
            worker_pid=os.getpid(),
            compositor_pid=compositor_pid,
            started_at=time.time(),
            replaces=msg.replaces,
            unlock_session=job.unlock_session,
            unit=self.unit,
            memory_max=self.limits.memory_max,
            cpu_quota=self.limits.cpu_quota,
        )
        ticket = (msg.greeter_env or {}).get("WAYRAY_LOGIN_TICKET")
        self.records.write(
            StoredSession(
                info=self.info,
                worker_start_time=proctree.start_time(os.getpid()),
                ticket_sha256=hashlib.sha256(ticket.encode()).hexdigest() if ticket is not None else None,
                created_runtime_dir=self.created_runtime_dir,
            )
        )
        self.record_written = True

    def _place(self, msg: wp.Start, account: spawn.Account) -> None:
        job = self.job
        limits = scope.Limits(memory_max=msg.memory_max, cpu_quota=msg.cpu_quota)
        if job.greeter:
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

    def run(self) -> EndReason:
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
            sel.register(self.chan.chan.sock, selectors.EVENT_READ, "daemon")
        reason = self._reap()
        if reason is None and self.stop_requested:  # SIGTERM between the start and this loop
            reason = EndReason.SHUTDOWN
        while reason is None:
            if self.chan.chan.has_buffered():
                events = ["daemon"]
            else:
                events = [key.data for key, _ in sel.select()]
            for what in events:
                if what == "signal":
                    reason = reason or self._signalled(rfd)
                elif what == "daemon":
                    reason = reason or self._from_daemon(sel)
        sel.close()
        return reason

    def _signalled(self, rfd: int) -> EndReason | None:
        """Signals came (their numbers on the wake-up pipe): SIGTERM or SIGINT end the session; a
        SIGCHLD may be the compositor's end."""
        try:
            sigs = os.read(rfd, 512)
        except BlockingIOError:
            sigs = b""
        if any(s in sigs for s in (signal.SIGTERM, signal.SIGINT)):
            return EndReason.SHUTDOWN
        return self._reap()

    def _from_daemon(self, sel: selectors.BaseSelector) -> EndReason | None:
        """A message from wrsessd (a Stop ends the session), or its end: the session goes on."""
        try:
            msg = self.chan.recv()
        except protocol.IpcProtocolError as err:
            log.warning("session %s: a bad message from wrsessd: %s", self.job.session_id, err)
            return None
        if msg is None:
            if self.unit is None and scope.systemd_booted():
                log.warning(
                    "session %s: wrsessd went away; the session is in its cgroup, so the "
                    "service manager may end it",
                    self.job.session_id,
                )
            else:
                log.info("session %s: wrsessd went away; the session keeps running", self.job.session_id)
            sel.unregister(self.chan.chan.sock)
            return None
        return msg.reason if isinstance(msg, wp.Stop) else None

    def _reap(self) -> EndReason | None:
        for pid, _status in proctree.reap_children():
            child = self.children.pop(pid, None)
            if child is not None:
                child.returncode = -1  # already reaped: keep Popen from waiting on a reused pid
            if pid == self.compositor_pid:
                return EndReason.COMPOSITOR_EXITED
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


def serve(chan: DaemonChannel) -> int:
    try:
        begin = chan.recv()
    except protocol.IpcProtocolError as err:
        log.error("a bad first message from wrsessd: %s", err)
        return 1
    if not isinstance(begin, wp.Begin):
        return 1
    job = begin.job
    proctree.set_process_name(f"wrsessd-{job.session_class.value[0]}-{job.session_id[:6]}")
    login = PamLogin(chan, job)
    try:
        if not login.authenticate():
            return 0
        try:
            msg = chan.recv(timeout=None)
        except protocol.IpcProtocolError as err:
            log.error("login %s: a bad message from wrsessd: %s", job.session_id, err)
            return 1
        if msg is None or isinstance(msg, wp.Cancel | wp.Finish):
            return 0
        if not isinstance(msg, wp.Start) or not job.open_session:
            return 1
        return run_session(Worker(chan, job, login), msg)
    except Cancelled:
        log.debug("login %s cancelled", job.session_id)
        return 0
    finally:
        if login.handle is not None:
            login.handle.end()  # idempotent: a session's teardown has ended it already


def run_session(worker: Worker, msg: wp.Start) -> int:
    """Start the session, serve it until it ends, tear it down; tell wrsessd each step."""
    job, chan = worker.job, worker.chan
    signal.signal(signal.SIGTERM, worker.request_stop)
    try:
        worker.start(msg)
    except (StartFailed, RuntimeError, pam.PamError, OSError) as err:
        if isinstance(err, pam.PamError):
            text = f"{err.call} failed in PAM service {job.service!r}: {err.message}"
        else:
            text = str(err)
        log.error("session %s for %s could not start: %s", job.session_id, job.user_label, text)
        worker.teardown()
        chan.send(wp.StartFailed(message=text))
        return 0
    assert worker.info is not None
    chan.send(wp.Started(session=worker.info))
    log.info(
        "session %s started: %s session of %s (uid %d), compositor pid %d",
        job.session_id,
        job.session_class.value,
        worker.info.user,
        worker.info.uid,
        worker.info.compositor_pid,
    )
    reason = worker.run()
    log.info("session %s of %s ending (%s)", job.session_id, worker.info.user, reason.value)
    worker.teardown()
    chan.send(wp.Ended(reason=reason))
    log.info("session %s ended; PAM session closed", job.session_id)
    return 0


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
    return serve(DaemonChannel(Channel(sock)))


if __name__ == "__main__":
    sys.exit(main())

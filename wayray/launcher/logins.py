"""wrsessd's logins: a client's ``create_session`` … ``start_session`` run against a session worker
that holds the PAM conversation, with the rate limits and lockouts applied before any password is
asked, and the unlock of an existing session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass

from wayray.launcher import proctree, protocol
from wayray.launcher import worker_protocol as wp
from wayray.launcher.protocol import ErrorType, PeerRole, SessionClass
from wayray.launcher.ratelimit import RateLimiter, token_key, user_key
from wayray.launcher.sessions import SessionTable, sha256
from wayray.launcher.settings import LauncherSettings, env_refusal
from wayray.launcher.state import (
    LiveSession,
    Login,
    LoginKind,
    LoginSlots,
    PeerConnection,
    RequestError,
    Tasks,
)
from wayray.launcher.worker_protocol import ROOT_REFUSED
from wayray.launcher.workers import Jobs, WorkerLink

log = logging.getLogger("wayray.wrsessd")


def new_session_id() -> str:
    return secrets.token_hex(6)


def short(token: str | None) -> str:
    """A token reference shortened for logs (it is already a keyed hash, never the raw token)."""
    return f"{token[:12]}…" if token else "-"


@dataclass(frozen=True)
class Claim:
    """Who asks for a login: a greeter's ticket, or a control client's token, and what it unlocks."""

    greeter: LiveSession | None
    token: str | None
    token_kind: str | None
    rhost: str | None
    unlock_id: str | None


class Logins:
    """The logins in progress on wrsessd's connections (each connection has at most one)."""

    def __init__(
        self,
        settings: LauncherSettings,
        table: SessionTable,
        jobs: Jobs,
        tasks: Tasks,
        *,
        clock: Callable[[], float],
        verbose: bool,
    ) -> None:
        self.settings = settings
        self.table = table
        self.jobs = jobs
        self.tasks = tasks
        self.clock = clock
        self.verbose = verbose
        self.limiter = RateLimiter(settings.rate_limit)
        self.slots = LoginSlots(settings.max_pending_logins)

    # --- create_session ---------------------------------------------------------------------------

    async def create_session(self, conn: PeerConnection, req: protocol.CreateSession) -> protocol.Message:
        if conn.login is not None:
            raise RequestError(
                ErrorType.BAD_REQUEST,
                "a login is already in progress on this connection; cancel_session first",
            )
        claim = self._claim(conn, req)
        if claim.greeter is not None and self.slots.in_use_for(claim.greeter):
            # One login per ticket at a time: parallel ones would each get their password guess in
            # before the rate limit saw the first failure.
            raise RequestError(ErrorType.BAD_REQUEST, "a login with this ticket is already in progress")
        username, target = self._account(claim, req.username)
        self._admit(username, target, claim)
        login = await self._begin(conn, claim, username, target)
        log.info(
            "login %s started for %s with %s token %s from %s%s",
            login.session_id,
            username or "(PAM asks)",
            claim.token_kind or "-",
            short(claim.token),
            claim.rhost or "-",
            f" (unlocking {target.session_id})" if target else "",
        )
        return await self._advance(conn, login)

    def _claim(self, conn: PeerConnection, req: protocol.CreateSession) -> Claim:
        """The three ways of saying who logs in (a greeter's ticket, a control client's ticket, a
        control client's token) as one."""
        if conn.role is PeerRole.GREETER and (
            req.ticket is None or req.token or req.token_kind or req.rhost or req.unlock_session
        ):
            raise RequestError(
                ErrorType.BAD_REQUEST, "a greeter logs in with its ticket (and optionally a user name) only"
            )
        if req.ticket is not None:
            greeter = self.table.greeter_for_ticket(req.ticket)
            info = greeter.info
            return Claim(greeter, info.token, info.token_kind, info.rhost, info.unlock_session)
        if not req.token or not req.token_kind:
            raise RequestError(
                ErrorType.BAD_REQUEST, "create_session needs token and token_kind (or ticket)"
            )
        return Claim(None, req.token, req.token_kind, req.rhost, req.unlock_session)

    def _account(self, claim: Claim, username: str | None) -> tuple[str | None, LiveSession | None]:
        """The user name to log in (None: PAM asks) and, for an unlock, the session it unlocks."""
        if claim.unlock_id is None:
            return username, None
        target = self.table.user_session(claim.unlock_id)
        if username is not None and username != target.info.user:
            raise RequestError(
                ErrorType.BAD_REQUEST,
                f"this login unlocks {target.info.user}'s session; log in as {target.info.user}",
            )
        return target.info.user, target

    def _admit(self, username: str | None, target: LiveSession | None, claim: Claim) -> None:
        """Refuse root and rate-limited tokens or users before anything is asked."""
        if username is not None and target is None and is_root(username):
            log.warning(
                "login for %s with token %s from %s refused: root",
                username,
                short(claim.token),
                claim.rhost or "-",
            )
            raise RequestError(ErrorType.ACCOUNT_ERROR, ROOT_REFUSED)
        wait = self.limiter.retry_after([*token_key(claim.token), *user_key(username)], self.clock())
        if wait is not None:
            log.warning(
                "login for %s with token %s from %s refused: rate limited for %.0f s",
                username or "(unnamed)",
                short(claim.token),
                claim.rhost or "-",
                wait,
            )
            raise RequestError(ErrorType.RATE_LIMITED, too_many(wait), retry_after=round(wait, 1))

    async def _begin(
        self, conn: PeerConnection, claim: Claim, username: str | None, target: LiveSession | None
    ) -> Login:
        """Start the login's worker in a login slot; the login (and its timeout) is the connection's."""
        s = self.settings
        now = self.clock()
        refusal = "too many logins in progress; try again in a moment"
        with self.slots.take(refusal, greeter=claim.greeter) as slot:
            session_id = new_session_id()
            job = self.jobs.job(
                session_id,
                session_class=SessionClass.USER,
                service=s.pam_service,
                user=username,
                authenticate=True,
                open_session=target is None,
                plan=s.user_session,
                token=claim.token,
                token_kind=claim.token_kind,
                rhost=claim.rhost,
                unlock_session=claim.unlock_id,
            )
            try:
                link = await WorkerLink.spawn(job, verbose=self.verbose)
            except OSError as err:
                log.error("cannot start a session worker: %s", err)
                raise RequestError(
                    ErrorType.ERROR, "the session launcher cannot start a login worker"
                ) from err
            login = Login(
                session_id=session_id,
                kind=LoginKind.UNLOCK if target is not None else LoginKind.USER,
                link=link,
                slot=slot,
                token=claim.token,
                token_kind=claim.token_kind,
                rhost=claim.rhost,
                requested_user=username,
                greeter=claim.greeter,
                unlock_target=target,
                deadline=now + s.login_timeout_s,
                checked_user=username,
            )
        login.timer = asyncio.get_running_loop().call_later(
            s.login_timeout_s, lambda: self.tasks.spawn(self._expire(conn, login))
        )
        conn.login = login
        return login

    # --- the conversation -------------------------------------------------------------------------

    async def _expire(self, conn: PeerConnection, login: Login) -> None:
        if conn.login is login:
            log.info("login %s timed out after %g s", login.session_id, self.settings.login_timeout_s)
            await self.abort(conn)
            login.expired = True
            conn.login = login  # kept so the next request on this connection learns why

    async def abort(self, conn: PeerConnection) -> None:
        """End the login on ``conn`` (if any): its worker is cancelled, its slot freed."""
        login = conn.login
        conn.login = None
        if login is None or login.expired:
            return
        login.close()
        await login.link.abort()

    async def _refuse(self, conn: PeerConnection, error: RequestError) -> RequestError:
        """End the login on ``conn`` and give the error to raise."""
        await self.abort(conn)
        return error

    def _check_live(self, conn: PeerConnection) -> Login:
        login = conn.login
        if login is None:
            raise RequestError(ErrorType.BAD_REQUEST, "no login in progress on this connection")
        if login.expired:
            conn.login = None
            raise RequestError(
                ErrorType.ERROR,
                f"the login timed out after {self.settings.login_timeout_s:g} s; start again",
            )
        return login

    async def _advance(self, conn: PeerConnection, login: Login) -> protocol.Message:
        """Run the worker until it needs an answer or has decided, and say what to send the client."""
        msg = await self._from_worker(conn, login)
        if isinstance(msg, wp.Prompt):
            if msg.user and msg.user != login.checked_user:
                await self._check_named(conn, login, msg.user)
            login.awaiting = msg.style
            return protocol.AuthMessage(auth_message_type=msg.style, auth_message=msg.text[:4096])
        if isinstance(msg, wp.AuthOk):
            return await self._authenticated(conn, login, msg.user)
        if isinstance(msg, wp.AuthFailed):
            raise await self._failed(conn, login, msg)
        raise await self._refuse(
            conn, RequestError(ErrorType.ERROR, f"unexpected message {msg.type!r} from the login worker")
        )

    async def _from_worker(self, conn: PeerConnection, login: Login) -> wp.Message:
        """The worker's next message within the login's time and PAM's (``pam_timeout_s``)."""
        remaining = max(0.1, login.deadline - self.clock())
        budget = min(remaining, self.settings.pam_timeout_s)
        try:
            msg = await login.link.recv(timeout=budget)
        except TimeoutError:
            if budget < remaining:
                # Nothing from PAM for pam_timeout_s although nobody is typing: a module hangs (a
                # directory server that does not answer). The worker cannot be cancelled from inside
                # a PAM call, so it is killed.
                log.error(
                    "login %s: the PAM stack (service %s) did not answer in %g s; a module is stuck? "
                    "Killing its worker (pid %d)",
                    login.session_id,
                    self.settings.pam_service,
                    budget,
                    login.link.pid,
                )
                raise await self._refuse(
                    conn,
                    RequestError(
                        ErrorType.ERROR,
                        f"The login service did not answer in {budget:g} s; please try again, and ask an "
                        "administrator to check the logs if it keeps happening.",
                    ),
                ) from None
            msg = None
        if msg is None:
            raise await self._refuse(
                conn, RequestError(ErrorType.ERROR, "the login did not finish (worker timed out or exited)")
            )
        return msg

    async def _check_named(self, conn: PeerConnection, login: Login, named: str) -> None:
        """PAM has just named the user (it asked "login:"): check that user now, before the next
        question — the password — reaches anyone, so the answer never depends on the password."""
        login.checked_user = named
        if login.kind is LoginKind.USER and is_root(named):
            log.warning("login %s refused before the password: root", login.session_id)
            raise await self._refuse(conn, RequestError(ErrorType.ACCOUNT_ERROR, ROOT_REFUSED))
        wait = self.limiter.retry_after(user_key(named), self.clock())
        if wait is not None:
            log.warning(
                "login %s for %s with token %s from %s refused before the password: rate limited for %.0f s",
                login.session_id,
                named,
                short(login.token),
                login.rhost or "-",
                wait,
            )
            raise await self._refuse(
                conn, RequestError(ErrorType.RATE_LIMITED, too_many(wait), retry_after=round(wait, 1))
            )

    async def _authenticated(self, conn: PeerConnection, login: Login, user: str) -> protocol.Message:
        now = self.clock()
        wait = self.limiter.retry_after(user_key(user), now)
        if wait is not None:
            # A stack that named the user only with its verdict (no question after the name): the
            # answer, and what it does to the block, must not depend on the password, so a right
            # one counts as a failure here exactly as a wrong one does below.
            self.limiter.failed([*token_key(login.token), *user_key(user)], now)
            log.warning("login %s for %s refused: rate limited for %.0f s", login.session_id, user, wait)
            raise await self._refuse(
                conn, RequestError(ErrorType.RATE_LIMITED, too_many(wait), retry_after=round(wait, 1))
            )
        if login.unlock_target is not None and user != login.unlock_target.info.user:
            raise await self._refuse(
                conn, RequestError(ErrorType.AUTH_ERROR, "this login must be made by the session's owner")
            )
        self.limiter.succeeded([*token_key(login.token), *user_key(user)])
        login.user = user
        login.authenticated = True
        login.awaiting = None
        log.info("login %s: %s authenticated", login.session_id, user)
        return protocol.Success()

    async def _failed(self, conn: PeerConnection, login: Login, msg: wp.AuthFailed) -> RequestError:
        error_type = msg.error_type
        who = msg.user or login.requested_user
        now = self.clock()
        blocked = self.limiter.retry_after(user_key(who), now) if who else None
        if error_type is ErrorType.AUTH_ERROR:
            self.limiter.failed([*token_key(login.token), *user_key(who)], now)
        if blocked is not None and error_type in (ErrorType.AUTH_ERROR, ErrorType.ACCOUNT_ERROR):
            # The same answer as a right password of a blocked user gets (above).
            log.warning("login %s for %s refused: rate limited for %.0f s", login.session_id, who, blocked)
            return await self._refuse(
                conn, RequestError(ErrorType.RATE_LIMITED, too_many(blocked), retry_after=round(blocked, 1))
            )
        log.warning(
            "login %s for %s with token %s from %s failed: %s",
            login.session_id,
            who or "(unnamed)",
            short(login.token),
            login.rhost or "-",
            msg.status or error_type.value,
        )
        return await self._refuse(conn, RequestError(error_type, msg.message))

    async def post_response(
        self, conn: PeerConnection, req: protocol.PostAuthMessageResponse
    ) -> protocol.Message:
        login = self._check_live(conn)
        if login.awaiting is None:
            raise RequestError(ErrorType.BAD_REQUEST, "no auth_message is waiting for an answer")
        if login.awaiting.is_prompt and req.response is None:
            raise RequestError(
                ErrorType.BAD_REQUEST, f"a {login.awaiting.value} prompt needs a string response"
            )
        login.awaiting = None
        await login.link.send(wp.Answer(response=req.response))
        return await self._advance(conn, login)

    # --- start_session ----------------------------------------------------------------------------

    async def start_session(self, conn: PeerConnection, req: protocol.StartSession) -> protocol.Message:
        login = self._check_live(conn)
        self._check_start(conn, login, req)
        if login.kind is LoginKind.UNLOCK:
            return await self._unlock(conn, login)
        await self._check_session_limit(conn, login)
        return await self._start_user_session(conn, login, req)

    def _check_start(self, conn: PeerConnection, login: Login, req: protocol.StartSession) -> None:
        if not login.authenticated or login.user is None:
            raise RequestError(ErrorType.BAD_REQUEST, "start_session needs a successful login first")
        if conn.role is PeerRole.GREETER and (
            req.env or req.cmd or req.memory_max is not None or req.cpu_quota is not None
        ):
            # The user's session is the user's: a greeter choosing its PATH, XDG_CONFIG_HOME (where
            # the user's session.toml is read) or command would run programs of its choice as the user.
            raise RequestError(
                ErrorType.FORBIDDEN,
                "a greeter cannot choose the environment, command or limits of a user's session",
            )
        if req.cmd and not self.settings.allow_custom_command:
            raise RequestError(
                ErrorType.FORBIDDEN, "custom session commands are disabled (allow_custom_command)"
            )
        for entry in req.env or ():
            if (why := env_refusal(entry)) is not None:
                raise RequestError(ErrorType.BAD_REQUEST, why)

    async def _unlock(self, conn: PeerConnection, login: Login) -> protocol.Message:
        """An unlock login is done: nothing starts; the greeter's job is over."""
        target = login.unlock_target
        assert target is not None
        login.stop_timer()
        await login.link.send(wp.Finish())
        login.link.close()
        login.close()
        conn.login = None
        if login.greeter is not None:
            self.table.consume_ticket(login.greeter)
            self.table.linger(login.greeter)
        log.info("session %s of %s unlocked", target.session_id, login.user)
        self.table.on_event(
            protocol.SessionEvent(
                event=protocol.SessionEventKind.UNLOCKED,
                session=target.info,
                greeter_session=login.greeter.session_id if login.greeter else None,
            )
        )
        return protocol.SessionStarted(session=target.info, resumed=True)

    async def _check_session_limit(self, conn: PeerConnection, login: Login) -> None:
        """The user may have only so many sessions (wrsessd's limit, and the asking server's)."""
        assert login.user is not None
        limits = [self.settings.max_sessions_per_user]
        if login.greeter is not None:
            limits.append(login.greeter.max_user_sessions)
        limit = min((n for n in limits if n is not None), default=None)
        if limit is None:
            return
        count = self.table.user_sessions_of(login.user)
        if count >= limit:
            raise await self._refuse(
                conn,
                RequestError(
                    ErrorType.LIMIT,
                    f"{login.user} already has {count} session{'s' if count != 1 else ''} (the limit is "
                    f"{limit}); end one first",
                ),
            )

    async def _start_user_session(
        self, conn: PeerConnection, login: Login, req: protocol.StartSession
    ) -> protocol.Message:
        login.stop_timer()
        greeter = login.greeter
        greeter_id = greeter.session_id if greeter else None
        if greeter is not None:
            memory_max, cpu_quota = greeter.login_memory_max, greeter.login_cpu_quota
        else:
            memory_max, cpu_quota = req.memory_max, req.cpu_quota
        start = wp.Start(
            env=tuple(merge_env(req.env or (), greeter.session_env if greeter else ())),
            cmd=req.cmd or None,
            replaces=greeter_id,
            memory_max=memory_max,
            cpu_quota=cpu_quota,
        )
        await login.link.send(start)
        try:
            live = await self.await_started(login.link, login.session_id)
        finally:
            # Started or not, this login is over (a failed start has already ended its worker).
            conn.login = None
            login.close()
        if greeter is not None:
            self.table.consume_ticket(greeter)
            self.table.linger(greeter)
        self.table.register(live)
        self.table.on_event(
            protocol.SessionEvent(
                event=protocol.SessionEventKind.STARTED, session=live.info, greeter_session=greeter_id
            )
        )
        return protocol.SessionStarted(session=live.info)

    async def await_started(
        self, link: WorkerLink, session_id: str, ticket: str | None = None
    ) -> LiveSession:
        """The session a worker told to ``start`` started, or ``error`` when it did not."""
        timeout = self.settings.compositor_start_timeout_s + self.settings.stop_timeout_s + 30
        try:
            msg = await link.recv(timeout=timeout)
        except TimeoutError:
            # It may have opened the PAM session and started programs: SIGTERM makes it stop at its next
            # safe point and tear down what it set up (SIGKILL would leave both behind). Its watch reaps it.
            log.error(
                "session %s: the session worker did not start it in %g s; stopping it", session_id, timeout
            )
            link.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(link.pid, signal.SIGTERM)
            self.table.kill_if_stuck(link.pid, link.watch, session_id)
            raise RequestError(
                ErrorType.ERROR, f"session {session_id}: the session did not start in {timeout:g} s"
            ) from None
        if isinstance(msg, wp.Started):
            return LiveSession(
                info=msg.session,
                link=link,
                watch=link.watch,
                worker_start_time=proctree.start_time(link.pid),
                ticket_sha256=sha256(ticket) if ticket else None,
            )
        await link.abort()
        if isinstance(msg, wp.StartFailed):
            raise RequestError(ErrorType.ERROR, f"the session could not start: {msg.message}")
        raise RequestError(
            ErrorType.ERROR, f"session {session_id}: the session worker failed while starting"
        )


def merge_env(requested: tuple[str, ...] | list[str], fixed: tuple[str, ...]) -> list[str]:
    """``requested`` entries, then ``fixed`` ones, which replace requested entries of the same name."""
    names = {e.partition("=")[0] for e in fixed}
    return [e for e in requested if e.partition("=")[0] not in names] + list(fixed)


def is_root(user: str) -> bool:
    """Whether the account ``user`` has uid 0 (root, or another name for it). Unknown: False."""
    try:
        return pwd.getpwnam(user).pw_uid == 0
    except KeyError:
        return False


def too_many(wait: float) -> str:
    return f"Too many failed attempts; try again in {max(1, round(wait))} s."

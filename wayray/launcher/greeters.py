"""wrsessd's greeter sessions (``create_greeter_session``): a compositor and the greeter, run as the
greeter user for a token, with a one-use login ticket for the greeter."""

from __future__ import annotations

import logging
import secrets

from wayray.launcher import protocol
from wayray.launcher import worker_protocol as wp
from wayray.launcher.logins import Logins, new_session_id, short
from wayray.launcher.protocol import ErrorType, SessionClass
from wayray.launcher.settings import env_refusal
from wayray.launcher.state import LiveSession, RequestError
from wayray.launcher.workers import WorkerLink

log = logging.getLogger("wayray.wrsessd")


class Greeters:
    """Starts greeter sessions; they take a login slot while they start (``max_pending_logins``)."""

    def __init__(self, logins: Logins, greeter_uid: int | None) -> None:
        self.logins = logins
        self.settings = logins.settings
        self.table = logins.table
        self.greeter_uid = greeter_uid

    async def create(self, req: protocol.CreateGreeterSession) -> protocol.Message:
        unlock_user = self._check(req)
        refusal = "too many sessions starting; try again in a moment"
        with self.logins.slots.take(refusal):
            live = await self._start(req, unlock_user)
        if (
            req.session_env
            or req.max_user_sessions is not None
            or req.memory_max is not None
            or req.cpu_quota is not None
        ):
            live.session_env = tuple(req.session_env or ())
            live.max_user_sessions = req.max_user_sessions
            live.login_memory_max, live.login_cpu_quota = req.memory_max, req.cpu_quota
            self.table.records.set_greeter_login(
                live.session_id, live.session_env, live.max_user_sessions, req.memory_max, req.cpu_quota
            )
        self.table.register(live)
        log.info(
            "greeter session %s started for %s token %s from %s%s",
            live.session_id,
            req.token_kind,
            short(req.token),
            req.rhost or "-",
            f" (unlocks {req.unlock_session})" if req.unlock_session else "",
        )
        self.table.on_event(
            protocol.SessionEvent(event=protocol.SessionEventKind.STARTED, session=live.info)
        )
        return protocol.SessionStarted(session=live.info)

    def _check(self, req: protocol.CreateGreeterSession) -> str | None:
        """Refuse what cannot be; the user whose session an unlock greeter unlocks."""
        s = self.settings
        if self.greeter_uid is None:
            raise RequestError(ErrorType.ERROR, f"the greeter user {s.greeter_user!r} does not exist")
        unlock_user: str | None = None
        if req.unlock_session is not None:
            unlock_user = self.table.user_session(req.unlock_session).info.user
        for entry in req.env or ():
            if (why := env_refusal(entry)) is not None:
                raise RequestError(ErrorType.BAD_REQUEST, why)
        for entry in req.session_env or ():
            if (why := env_refusal(entry)) is not None:
                raise RequestError(ErrorType.BAD_REQUEST, f"session_env: {why}")
        if req.session_env and req.unlock_session is not None:
            raise RequestError(
                ErrorType.BAD_REQUEST, "an unlock greeter starts no session: session_env makes no sense"
            )
        return unlock_user

    async def _start(self, req: protocol.CreateGreeterSession, unlock_user: str | None) -> LiveSession:
        """Run the greeter service's PAM (which must ask nothing), then start the session."""
        s = self.settings
        session_id = new_session_id()
        ticket = secrets.token_urlsafe(32)
        job = self.logins.jobs.job(
            session_id,
            session_class=SessionClass.GREETER,
            service=s.greeter_pam_service,
            user=s.greeter_user,
            authenticate=False,
            open_session=True,
            plan=s.greeter_session,
            token=req.token,
            token_kind=req.token_kind,
            rhost=req.rhost,
            unlock_session=req.unlock_session,
        )
        link = await WorkerLink.spawn(job, verbose=self.logins.verbose)
        msg = await link.recv(timeout=60)
        if not isinstance(msg, wp.AuthOk):
            await link.abort()
            if isinstance(msg, wp.Prompt):
                raise RequestError(
                    ErrorType.ERROR,
                    f"the greeter PAM service {s.greeter_pam_service!r} asked a question; "
                    "a greeter service must not authenticate (use pam_permit/pam_rootok for auth)",
                )
            detail = msg.message if isinstance(msg, wp.AuthFailed) else "the worker exited"
            raise RequestError(ErrorType.ERROR, f"the greeter session was refused: {detail}")
        greeter_env = {"WAYRAY_SESSD_SOCK": str(s.socket), "WAYRAY_LOGIN_TICKET": ticket}
        if unlock_user is not None:
            greeter_env["WAYRAY_UNLOCK_USER"] = unlock_user  # the greeter shows whose session
        start = wp.Start(
            env=tuple(req.env or ()),
            greeter_env=greeter_env,
            memory_max=req.memory_max,
            cpu_quota=req.cpu_quota,
        )
        await link.send(start)
        return await self.logins.await_started(link, session_id, ticket)

"""The session worker's first phase: the PAM conversation, relayed to wrsessd, and its verdict.

pam_start, pam_authenticate (skipped for greeter sessions) and pam_acct_mgmt — with pam_chauthtok
when the password has expired and changing it is allowed —, each PAM message sent to wrsessd as a
``prompt`` and answered with its ``answer``; then ``auth_ok`` or ``auth_failed``
(:mod:`wayray.launcher.worker_protocol`). The PAM handle stays open for the session (phase 2,
:mod:`wayray.launcher.worker`).
"""

from __future__ import annotations

import logging

from wayray.launcher import pam, protocol, spawn
from wayray.launcher import worker_protocol as wp
from wayray.launcher.channel import Channel
from wayray.launcher.protocol import ErrorType
from wayray.launcher.worker_protocol import ROOT_REFUSED

log = logging.getLogger("wayray.wrsessd.worker")

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

_STYLE_TO_TYPE = {
    pam.MessageStyle.PROMPT_ECHO_OFF: protocol.AuthMessageType.SECRET,
    pam.MessageStyle.PROMPT_ECHO_ON: protocol.AuthMessageType.VISIBLE,
    pam.MessageStyle.TEXT_INFO: protocol.AuthMessageType.INFO,
    pam.MessageStyle.ERROR_MSG: protocol.AuthMessageType.ERROR,
}


class Cancelled(Exception):
    pass


class DaemonChannel:
    """The worker's end of its channel to wrsessd: the messages of :mod:`worker_protocol`."""

    def __init__(self, chan: Channel) -> None:
        self.chan = chan

    @property
    def closed(self) -> bool:
        return self.chan.closed

    def send(self, msg: wp.Message) -> bool:
        """Send one message; False when wrsessd is gone (the caller decides whether that matters)."""
        return self.chan.send(msg.to_json())

    def recv(self, timeout: float | None = None) -> wp.Message | None:
        """The next message, None when wrsessd is gone; IpcProtocolError for one that is not valid."""
        obj = self.chan.recv(timeout)
        return None if obj is None else wp.parse(obj, wp.TO_WORKER)


class PamLogin:
    """Authenticates ``job``'s user: afterwards ``account`` is whom PAM settled on and ``handle`` the
    PAM handle the session is opened on (None without PAM)."""

    def __init__(self, chan: DaemonChannel, job: wp.WorkerJob) -> None:
        self.chan = chan
        self.job = job
        self.handle: pam.PamHandle | None = None
        self.last_pam_error: str | None = None
        self.account: spawn.Account | None = None

    def converse(self, message: pam.Message) -> str | None:
        kind = _STYLE_TO_TYPE[message.style]
        if kind is protocol.AuthMessageType.ERROR:
            self.last_pam_error = message.text
        # When PAM knows whom it is authenticating (it asked "login:", or was told), wrsessd checks
        # that user's lockout now, before anything further — a password above all — is asked.
        prompt = wp.Prompt(style=kind, text=message.text, user=self._pam_user() or None)
        if not self.chan.send(prompt):
            raise pam.ConversationAborted("wrsessd went away")
        try:
            reply = self.chan.recv()
        except protocol.IpcProtocolError as err:
            raise pam.ConversationAborted(f"a bad message from wrsessd: {err}") from None
        if reply is None or isinstance(reply, wp.Cancel):
            raise Cancelled()
        if not isinstance(reply, wp.Answer):
            raise pam.ConversationAborted(f"unexpected {reply.type!r} during the conversation")
        if kind.is_prompt:
            if reply.response is None:
                raise pam.ConversationAborted("no answer to a prompt")
            return reply.response
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
            return self.chan.send(wp.AuthOk(user=self.account.name, uid=self.account.uid))
        try:
            self.account = self._pam_authenticate(job.service)
        except (pam.PamError, KeyError) as err:
            return self._auth_failed(err)
        if self.account.uid == 0 and job.greeter:
            self.chan.send(wp.AuthFailed(error_type=ErrorType.ERROR, message="greeters never run as root"))
            return False
        if self.account.uid == 0:
            # Whatever the PAM stack says: a kiosk is no place for a root session (nor an unlock of one).
            log.warning(
                "login for %s refused: it has uid 0, and WayRay never starts a root session",
                self.account.name,
            )
            self.chan.send(
                wp.AuthFailed(
                    error_type=ErrorType.ACCOUNT_ERROR,
                    message=ROOT_REFUSED,
                    status="root_refused",
                    user=self.account.name,
                )
            )
            return False
        return self.chan.send(wp.AuthOk(user=self.account.name, uid=self.account.uid))

    def _pam_authenticate(self, service: str) -> spawn.Account:
        """pam_start, pam_authenticate (unless a greeter), pam_acct_mgmt (pam_chauthtok when the
        password expired and that is allowed): the account PAM settled on."""
        job = self.job
        self.handle = pam.PamHandle(service, job.user, self.converse)
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
        return spawn.Account.lookup(user)

    def _auth_failed(self, err: pam.PamError | KeyError) -> bool:
        assert self.handle is not None
        user = self.handle.user if self.handle else None
        if isinstance(err, KeyError):
            error_type, message, status = ErrorType.AUTH_ERROR, LOGIN_INCORRECT, "user_unknown"
            log.warning("login for %r refused: PAM accepted a user the system does not know", user)
        else:
            if isinstance(self.handle.conversation_error, Cancelled):
                raise Cancelled()
            status = err.status.value
            error_type, message = self._refusal(err)
            log.info(
                "login for %r refused by %s in %s: %s",
                user or self.job.user_label,
                self.job.service,
                err.call,
                err.message,
            )
        self.chan.send(wp.AuthFailed(error_type=error_type, message=message, status=status, user=user))
        return False

    def _refusal(self, err: pam.PamError) -> tuple[ErrorType, str]:
        """What the person at the kiosk is told about a PAM failure."""
        if err.status in _AUTH_FAILURES:
            incorrect = WRONG_PASSWORD if self.job.unlock_session else LOGIN_INCORRECT
            return ErrorType.AUTH_ERROR, self.last_pam_error or incorrect
        if err.status in _ACCOUNT_FAILURES:
            what = "password change failed" if err.call == "pam_chauthtok" else "account refused"
            return ErrorType.ACCOUNT_ERROR, self.last_pam_error or f"{what.capitalize()}: {err.message}."
        if err.status is pam.Status.CONV_ERR:
            return ErrorType.ERROR, "The login conversation failed."
        return (
            ErrorType.ERROR,
            f"The login service failed ({err.message}); ask an administrator to check the logs.",
        )

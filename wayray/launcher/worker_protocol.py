"""wrsessd's channel to its session workers, sans-IO: every message and field, checked on arrival.

The daemon and each worker (:mod:`wayray.launcher.worker`) talk over a socketpair with the IPC's
framing (:mod:`wayray.common.jsonframe`), in messages declared here with the same schema layer as the
IPC (:mod:`wayray.common.schema`), as greetd types its ``ParentToSessionChild`` and
``SessionChildToParent``. *Requests* go from the daemon to a worker, *responses* back:

- ``begin {job}`` → the PAM conversation: ``prompt`` (answered by ``answer``) until ``auth_ok`` or
  ``auth_failed``;
- then ``start`` → ``started {session}`` or ``start_failed``; ``cancel`` or ``finish`` end a worker
  that is to start nothing;
- a running session ends on ``stop`` (or SIGTERM, or its compositor exiting) → ``ended {reason}``.

Both ends come from the same installation, so the limits are generous (what the IPC let in, and what
the configuration allows); the checks are there so that each side reads fields of the declared types.
``docs/launcher.md`` §5 has the reference generated from this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wayray.common.schema import (
    AnyObject,
    Choice,
    Direction,
    Flag,
    Integer,
    ListOf,
    MapOf,
    Message,
    MessageTable,
    Nested,
    NestedList,
    Number,
    Record,
    Text,
    field,
    record_table,
)
from wayray.launcher.protocol import (
    CPU_QUOTA,
    ENV_ENTRY,
    MAX_MESSAGE_BYTES,
    MEMORY_MAX,
    PAM_ANSWER,
    PID,
    SESSION_ID,
    AuthMessageType,
    EndReason,
    ErrorType,
    IpcProtocolError,
    SessionClass,
    SessionInfo,
)
from wayray.launcher.settings import Component, SessionPlan

#: What the worker and wrsessd tell a login of root, whatever PAM says.
ROOT_REFUSED = "root cannot log in here: WayRay never starts a session as root."

#: Daemon → worker, and worker → daemon.
TO_WORKER = Direction.REQUEST
FROM_WORKER = Direction.RESPONSE

CHANNEL = MessageTable("wrsessd worker channel", error=IpcProtocolError, max_bytes=MAX_MESSAGE_BYTES)

# Internal shapes: what the IPC and the configuration already let through, with room to spare.
WORDS = Text(64 * 1024, allow_empty=True)
NAME = Text(4096, allow_empty=True)
ARGS = ListOf(4096, WORDS)
ENVIRONMENT = ListOf(1024, ENV_ENTRY)


@dataclass(frozen=True, kw_only=True)
class JobComponent(Record):
    """A program the session starts once its compositor is up."""

    name: str = field(NAME, "what it is (`wm`, `panel`, `autostart[0]`, `greeter`)", required=True)
    argv: tuple[str, ...] = field(ARGS, "its command, placeholders not yet expanded", required=True)


@dataclass(frozen=True, kw_only=True)
class WorkerJob(Record):
    """Everything a worker needs, sent in its `begin` (so the worker reads no configuration)."""

    session_id: str = field(SESSION_ID, "the id of the session (or login)", required=True)
    session_class: SessionClass = field(Choice(SessionClass), "`user` or `greeter`", required=True)
    service: str | None = field(NAME, "the PAM service; absent: no PAM at all (greeters, so configured)")
    user: str | None = field(NAME, "the account; absent: PAM asks for the user name")
    authenticate: bool = field(Flag(), "run pam_authenticate (not for greeters)", required=True)
    open_session: bool = field(Flag(), "false for unlock logins: authenticate only", required=True)
    rhost: str | None = field(NAME, "the kiosk's address (PAM_RHOST)")
    pam_tty: str | None = field(NAME, "PAM_TTY, if set")
    token: str | None = field(NAME, "the token reference the session is for")
    token_kind: str | None = field(NAME, "the kind of that token")
    allow_password_change: bool = field(Flag(), "pam_chauthtok when the password expired", required=True)
    compositor: tuple[str, ...] = field(ARGS, "the compositor command (placeholders)", required=True)
    components: tuple[JobComponent, ...] = field(
        NestedList(JobComponent, 4096), "the programs to start after it, in order", required=True
    )
    read_user_session_file: bool = field(Flag(), "read the user's session.toml", required=True)
    user_session_file: str = field(NAME, "where, under XDG_CONFIG_HOME", required=True)
    runtime_dir_base: str = field(NAME, "where XDG_RUNTIME_DIRs are made when PAM made none", required=True)
    state_dir: str = field(NAME, "wrsessd's state directory (session records)", required=True)
    default_path: str = field(NAME, "PATH of the session", required=True)
    umask: int = field(Integer(0, 0o777), "umask of the session's programs", required=True)
    compositor_start_timeout_s: float = field(Number(0), "how long its socket may take", required=True)
    stop_timeout_s: float = field(Number(0), "SIGTERM to SIGKILL when it ends", required=True)
    unlock_session: str | None = field(SESSION_ID, "an unlock login: the session it unlocks")
    session_defaults: dict[str, Any] | None = field(
        AnyObject("session.toml as `settings.session_to_json` writes it"),
        "user sessions: session.toml's further programs and environment",
    )

    @property
    def plan(self) -> SessionPlan:
        return SessionPlan(self.compositor, tuple(Component(c.name, c.argv) for c in self.components))

    @property
    def greeter(self) -> bool:
        return self.session_class is SessionClass.GREETER

    @property
    def user_label(self) -> str:
        return self.user or "(asked by PAM)"


# --- daemon → worker -------------------------------------------------------------------------------


@CHANNEL.message("begin", TO_WORKER, "First, and once: the job. The worker starts the PAM conversation.")
@dataclass(frozen=True, kw_only=True)
class Begin(Message):
    job: WorkerJob = field(Nested(WorkerJob), "what to do", required=True)


@CHANNEL.message("answer", TO_WORKER, "The answer to the last `prompt`, as the client gave it.")
@dataclass(frozen=True, kw_only=True)
class Answer(Message):
    response: str | None = field(PAM_ANSWER, "a string for `visible`/`secret` prompts, else absent")


@CHANNEL.message("cancel", TO_WORKER, "Abandon the login (the worker ends PAM and exits).")
@dataclass(frozen=True, kw_only=True)
class Cancel(Message):
    pass


@CHANNEL.message("finish", TO_WORKER, "An unlock login is done: nothing is started, the worker exits.")
@dataclass(frozen=True, kw_only=True)
class Finish(Message):
    pass


@CHANNEL.message(
    "start",
    TO_WORKER,
    "After `auth_ok`: open the PAM session and start the session. Answered by `started` or `start_failed`.",
)
@dataclass(frozen=True, kw_only=True)
class Start(Message):
    env: tuple[str, ...] = field(ENVIRONMENT, "`NAME=value` entries for its environment", default=())
    cmd: tuple[str, ...] | None = field(ARGS, "a replacement compositor command, used as given")
    replaces: str | None = field(SESSION_ID, "the greeter whose login starts this session")
    memory_max: int | None = field(MEMORY_MAX, "memory ceiling of its scope, bytes")
    cpu_quota: int | None = field(CPU_QUOTA, "CPU ceiling of its scope, percent of one CPU")
    greeter_env: dict[str, str] | None = field(
        MapOf(16, Text(255, r"[A-Za-z_][A-Za-z0-9_]*"), WORDS),
        "greeters: what the greeter (not the compositor) gets: its socket, its ticket, whom it unlocks",
    )


@CHANNEL.message("stop", TO_WORKER, "End the running session (then `ended`).")
@dataclass(frozen=True, kw_only=True)
class Stop(Message):
    reason: EndReason = field(Choice(EndReason), "why", required=True)


# --- worker → daemon -------------------------------------------------------------------------------


@CHANNEL.message("prompt", FROM_WORKER, "PAM says or asks something; a prompt waits for `answer`.")
@dataclass(frozen=True, kw_only=True)
class Prompt(Message):
    style: AuthMessageType = field(Choice(AuthMessageType), "PAM's message style", required=True)
    text: str = field(WORDS, "PAM's text", required=True)
    user: str | None = field(NAME, "the user PAM names by now, so wrsessd can check its lockout first")


@CHANNEL.message("auth_ok", FROM_WORKER, "The account is authenticated and may log in.")
@dataclass(frozen=True, kw_only=True)
class AuthOk(Message):
    user: str = field(NAME, "the account PAM settled on", required=True)
    uid: int = field(PID, "its uid", required=True)


@CHANNEL.message("auth_failed", FROM_WORKER, "The login failed; the worker exits.")
@dataclass(frozen=True, kw_only=True)
class AuthFailed(Message):
    error_type: ErrorType = field(Choice(ErrorType), "for the `error` the client gets", required=True)
    message: str = field(WORDS, "for the person at the kiosk", required=True)
    status: str | None = field(NAME, "PAM's status, for the log")
    user: str | None = field(NAME, "the user PAM named, if any")


@CHANNEL.message("start_failed", FROM_WORKER, "The session could not start; what was set up is undone.")
@dataclass(frozen=True, kw_only=True)
class StartFailed(Message):
    message: str = field(WORDS, "why", required=True)


@CHANNEL.message("started", FROM_WORKER, "The session runs.")
@dataclass(frozen=True, kw_only=True)
class Started(Message):
    session: SessionInfo = field(Nested(SessionInfo), "the session", required=True)


@CHANNEL.message("ended", FROM_WORKER, "The session is over and torn down; the worker exits.")
@dataclass(frozen=True, kw_only=True)
class Ended(Message):
    reason: EndReason = field(Choice(EndReason), "why", required=True)


def parse(obj: Mapping[str, Any], direction: Direction) -> Message:
    """One decoded object as a message of this channel; IpcProtocolError says what is wrong."""
    return CHANNEL.parse(obj, direction)


def markdown_reference() -> str:
    """The reference in docs/launcher.md §5 (a test checks the two agree)."""
    out = CHANNEL.reference(
        {TO_WORKER: "wrsessd → worker", FROM_WORKER: "worker → wrsessd"},
        lambda cls: f"##### `{cls.type}`",
        level=4,
    )
    for nested in (WorkerJob, JobComponent):
        out += [f"#### `{nested.__name__}` object", "", nested.__doc__ or "", "", *record_table(nested), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown_reference(), end="")

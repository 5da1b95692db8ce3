"""wrsessd's IPC, sans-IO: framing, every message and field, and strict validation.

The framing is greetd's: a 32-bit length in native byte order, then that many bytes of UTF-8 JSON
holding one object tagged by ``"type"``. Callers are on the same host (a Unix socket), hence native
order. The request and response sets extend greetd's (``create_session``, ``post_auth_message_response``,
``start_session``, ``cancel_session``; ``success``, ``error``, ``auth_message``) with what WayRay needs:
greeter sessions created for a token, session listing and ending, and a stream of session events.

Every message is a frozen dataclass registered in :data:`MESSAGES` (and the table :data:`IPC`); its
fields carry a :class:`FieldSpec` (what values are valid and what the field means), in the schema
layer every JSON protocol of WayRay's uses (:mod:`wayray.common.schema`; the framing and its readers
are :mod:`wayray.common.jsonframe`'s). That one table drives validation (:func:`parse`), encoding
(:meth:`Message.to_json`) and the spec in ``docs/launcher.md``, which a test checks against it. This
module is stdlib-only (with those two of wayray.common) so wrlogin, wrsrvd and wradm can use it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from wayray.common import jsonframe, schema
from wayray.common.jsonframe import JSONBodyError, decode_object
from wayray.common.schema import (
    Choice,
    Direction,
    Flag,
    Integer,
    ListOf,
    MessageTable,
    Nested,
    NestedList,
    Number,
    Record,
    Text,
    field,
    record_table,
)

PROTOCOL_VERSION = 1

#: Largest JSON body accepted in either direction. Requests are tiny; the largest reply is a session
#: list, which stays far below this even with thousands of sessions.
MAX_MESSAGE_BYTES = 1 << 20
#: Largest request body the daemon accepts (a PAM answer or an environment list is a few hundred bytes).
MAX_REQUEST_BYTES = 64 * 1024


class IpcProtocolError(Exception):
    """A frame or message that breaks the protocol; the connection that sent it is closed."""


# --- closed choices ---------------------------------------------------------------------------------


class PeerRole(enum.StrEnum):
    """Who is on the other end of a connection, decided from the peer's uid (SO_PEERCRED)."""

    #: root or a configured control user (wrsrvd, wradm): may use every request.
    CONTROL = "control"
    #: the unprivileged greeter user (wrlogin): may only log in with the ticket of its greeter session.
    GREETER = "greeter"


class SessionClass(enum.StrEnum):
    USER = "user"
    GREETER = "greeter"


class AuthMessageType(enum.StrEnum):
    """greetd's names for PAM's four message styles."""

    VISIBLE = "visible"  # PAM_PROMPT_ECHO_ON: show the answer while typing
    SECRET = "secret"  # PAM_PROMPT_ECHO_OFF: hide the answer
    INFO = "info"  # PAM_TEXT_INFO: show, answer with a null response
    ERROR = "error"  # PAM_ERROR_MSG: show as an error, answer with a null response

    @property
    def is_prompt(self) -> bool:
        return self in (AuthMessageType.VISIBLE, AuthMessageType.SECRET)


class ErrorType(enum.StrEnum):
    AUTH_ERROR = "auth_error"  # wrong user name or password (greetd's name)
    ACCOUNT_ERROR = "account_error"  # authenticated, but the account may not log in (expired, locked)
    RATE_LIMITED = "rate_limited"  # too many failures for this token or user; see retry_after
    LIMIT = "limit"  # a configured limit (sessions per user, logins in progress) is reached
    BAD_REQUEST = "bad_request"  # malformed or out-of-order request
    FORBIDDEN = "forbidden"  # the caller's role may not make this request
    NOT_FOUND = "not_found"  # no such session
    ERROR = "error"  # anything else: the description says what


class EndReason(enum.StrEnum):
    """Why a session ended (in ``kill_session`` requests and ``ended`` events)."""

    LOGOUT = "logout"  # the user asked
    OPERATOR = "operator"  # wradm / an operator killed it
    POLICY = "policy"  # a session policy (detached or idle timeout) ended it
    REPLACED = "replaced"  # a greeter whose login started a user session
    COMPOSITOR_EXITED = "compositor_exited"  # the session compositor exited on its own
    FAILED = "failed"  # the session could not start or its worker died
    SHUTDOWN = "shutdown"  # the worker was told to stop by a signal (e.g. system shutdown)


class SessionEventKind(enum.StrEnum):
    STARTED = "started"
    ENDED = "ended"
    UNLOCKED = "unlocked"  # a re-authentication for an existing session succeeded


# --- the schema: field kinds and records are wayray.common.schema's --------------------------------

# Shared field shapes.
USER_NAME = Text(256, r"[A-Za-z0-9._][A-Za-z0-9._@-]*\$?")
TOKEN_REF = Text(128, r"[A-Za-z0-9._:+/=-]+")
TOKEN_KIND = Text(32, r"[a-z][a-z0-9_-]*")
TICKET = Text(128, r"[A-Za-z0-9_-]+")
RHOST = Text(255, r"[A-Za-z0-9.:_%\[\]-]+")
SESSION_ID = Text(64, r"[A-Za-z0-9_-]+")
ENV_ENTRY = Text(4096, r"[A-Za-z_][A-Za-z0-9_]*=[^\n]*")
ENV_LIST = ListOf(64, ENV_ENTRY)
ARGV = ListOf(256, Text(4096))
PAM_ANSWER = Text(4096, allow_empty=True)
PATHNAME = Text(4096, allow_empty=True)
PID = Integer(0, 2**31 - 1)
MEMORY_MAX = Integer(1, 2**63 - 1)
CPU_QUOTA = Integer(1, 100_000)
UNIT_NAME = Text(255, r"[A-Za-z0-9:_.\\@-]+\.scope")

#: The IPC's messages by direction and type (:data:`MESSAGES` has them by type).
IPC = MessageTable("wrsessd IPC", error=IpcProtocolError, max_bytes=MAX_MESSAGE_BYTES)


class Message(schema.Message):
    roles: ClassVar[frozenset[PeerRole]]


#: Every message by its ``type``: the one table the parser, the encoder and the docs test use.
MESSAGES: dict[str, type[Message]] = {}

M = TypeVar("M", bound=type[Message])


def message(type_: str, direction: Direction, doc: str, roles: frozenset[PeerRole] = frozenset()) -> Any:
    def register(cls: M) -> M:
        IPC.message(type_, direction, doc)(cls)
        cls.roles = roles
        assert type_ not in MESSAGES, type_
        MESSAGES[type_] = cls
        return cls

    return register


BOTH = frozenset({PeerRole.CONTROL, PeerRole.GREETER})
CONTROL = frozenset({PeerRole.CONTROL})


# --- nested objects --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionInfo(Record):
    """A running session as wrsessd knows it."""

    session_id: str = field(SESSION_ID, "wrsessd's id for the session", required=True)
    session_class: SessionClass = field(Choice(SessionClass), "`user` or `greeter`", required=True)
    user: str = field(USER_NAME, "the account the session runs as", required=True)
    uid: int = field(PID, "that account's uid", required=True)
    token: str | None = field(TOKEN_REF, "the token reference the session was created for")
    token_kind: str | None = field(TOKEN_KIND, "the kind of that token (`badge`, `terminal`)")
    rhost: str | None = field(RHOST, "the kiosk's address, as given to PAM_RHOST")
    wayland_display: str = field(
        Text(255), "name of the compositor's Wayland socket in `runtime_dir`", required=True
    )
    runtime_dir: str = field(PATHNAME, "the session's XDG_RUNTIME_DIR", required=True)
    worker_pid: int = field(PID, "pid of the root session worker that holds the PAM session", required=True)
    compositor_pid: int = field(PID, "pid of the session compositor", required=True)
    started_at: float = field(Number(0), "when the session started (Unix time, seconds)", required=True)
    replaces: str | None = field(SESSION_ID, "the greeter session whose login started this session")
    unlock_session: str | None = field(
        SESSION_ID, "greeter sessions only: the user session this greeter re-authenticates for"
    )
    adopted: bool = field(Flag(), "true when a restarted wrsessd re-adopted the session", default=False)
    unit: str | None = field(
        UNIT_NAME,
        "the systemd scope the session runs in, out of wrsessd's cgroup: logind's `session-N.scope`, "
        "or `wayray-session-<session_id>.scope` (in `wayray.slice`) where logind made none; absent "
        "without systemd",
    )
    memory_max: int | None = field(MEMORY_MAX, "the session's memory ceiling in bytes, if it has one")
    cpu_quota: int | None = field(CPU_QUOTA, "the session's CPU ceiling in percent of one CPU, if any")


# --- requests --------------------------------------------------------------------------------------


@message(
    "create_session",
    Direction.REQUEST,
    "Start a login: runs the PAM conversation for `username` (PAM asks for the name when it is "
    "omitted). Answered by zero or more `auth_message`, each answered with "
    "`post_auth_message_response`, and a final `success` or `error`. A greeter must give `ticket` "
    "and nothing else but `username`; a control client must give `token` and `token_kind`.",
    BOTH,
)
@dataclass(frozen=True, kw_only=True)
class CreateSession(Message):
    username: str | None = field(USER_NAME, "user name; omitted: PAM asks for it (a `visible` prompt)")
    ticket: str | None = field(TICKET, "greeters: the `WAYRAY_LOGIN_TICKET` of their greeter session")
    token: str | None = field(TOKEN_REF, "control: the token reference (never the raw badge) to log in for")
    token_kind: str | None = field(TOKEN_KIND, "control: the kind of that token")
    rhost: str | None = field(RHOST, "control: the kiosk's address, passed to PAM as PAM_RHOST")
    unlock_session: str | None = field(
        SESSION_ID, "control: re-authenticate the owner of this user session instead of starting one"
    )


@message(
    "post_auth_message_response",
    Direction.REQUEST,
    "Answer the last `auth_message`: a string for `visible` and `secret` prompts, null or omitted "
    "for `info` and `error`.",
    BOTH,
)
@dataclass(frozen=True, kw_only=True)
class PostAuthMessageResponse(Message):
    response: str | None = field(PAM_ANSWER, "the answer; never logged")


@message(
    "start_session",
    Direction.REQUEST,
    "After a successful login: open the PAM session and start the user's session (compositor, then "
    "the components of session.toml). Answered by `session_started` or `error`. For an unlock login "
    "nothing is started and the answer names the unlocked session with `resumed: true`.",
    BOTH,
)
@dataclass(frozen=True, kw_only=True)
class StartSession(Message):
    cmd: tuple[str, ...] | None = field(
        ARGV,
        "control: replacement compositor command, used as given; refused unless `allow_custom_command`",
    )
    env: tuple[str, ...] | None = field(
        ENV_LIST,
        "control: extra `NAME=value` entries for the session's environment (reserved names refused)",
    )
    memory_max: int | None = field(
        MEMORY_MAX,
        "control: memory ceiling of the session in bytes (systemd `MemoryMax=` on its scope); a login "
        "through a greeter takes the greeter's",
    )
    cpu_quota: int | None = field(
        CPU_QUOTA,
        "control: CPU ceiling of the session in percent of one CPU (systemd `CPUQuota=` on its scope)",
    )


@message(
    "cancel_session",
    Direction.REQUEST,
    "Abandon the login in progress on this connection (if any). Always answered by `success`.",
    BOTH,
)
@dataclass(frozen=True, kw_only=True)
class CancelSession(Message):
    pass


@message(
    "create_greeter_session",
    Direction.REQUEST,
    "Start a greeter session for a token: the compositor and the greeter run as the greeter user. "
    "The greeter gets `WAYRAY_SESSD_SOCK` and a one-use `WAYRAY_LOGIN_TICKET` in its environment. "
    "Answered by `session_started` or `error`.",
    CONTROL,
)
@dataclass(frozen=True, kw_only=True)
class CreateGreeterSession(Message):
    token: str = field(TOKEN_REF, "the token reference the greeter is shown for", required=True)
    token_kind: str = field(TOKEN_KIND, "the kind of that token", required=True)
    rhost: str | None = field(RHOST, "the kiosk's address (PAM_RHOST)")
    env: tuple[str, ...] | None = field(ENV_LIST, "extra `NAME=value` entries for the greeter session")
    unlock_session: str | None = field(
        SESSION_ID, "make this an unlock greeter: its login re-authenticates that session's owner"
    )
    session_env: tuple[str, ...] | None = field(
        ENV_LIST,
        "extra `NAME=value` entries for the user session this greeter's login starts (wrsrvd: the "
        "link details of the user's compositor); they win over the greeter's own `start_session {env}` "
        "and are never shown to the greeter",
    )
    max_user_sessions: int | None = field(
        Integer(1, 100_000),
        "the most user sessions the user who logs in through this greeter may have (the asking "
        "server's policy); `start_session` beyond it (or beyond wrsessd's own limit) → `error {limit}`",
    )
    memory_max: int | None = field(
        MEMORY_MAX,
        "memory ceiling in bytes of this greeter session and of the user session its login starts "
        "(the asking server's `limits.session_memory_max`): systemd `MemoryMax=` on each one's scope",
    )
    cpu_quota: int | None = field(
        CPU_QUOTA,
        "CPU ceiling in percent of one CPU of this greeter session and of the user session its login "
        "starts (`limits.session_cpu_quota`): systemd `CPUQuota=` on each one's scope",
    )


@message("list_sessions", Direction.REQUEST, "Answered by `session_list`.", CONTROL)
@dataclass(frozen=True, kw_only=True)
class ListSessions(Message):
    pass


@message(
    "kill_session",
    Direction.REQUEST,
    "End a session: every process of it gets SIGTERM, stragglers SIGKILL after the stop timeout, "
    "then the PAM session is closed. Answered by `success` once it has ended, or `error`.",
    CONTROL,
)
@dataclass(frozen=True, kw_only=True)
class KillSession(Message):
    session_id: str = field(SESSION_ID, "the session to end", required=True)
    reason: EndReason | None = field(Choice(EndReason), "why (recorded and sent in the `ended` event)")


@message(
    "subscribe",
    Direction.REQUEST,
    "Turn this connection into an event stream: answered by a `session_list` snapshot, then a "
    "`session_event` for every change. The connection accepts no further requests.",
    CONTROL,
)
@dataclass(frozen=True, kw_only=True)
class Subscribe(Message):
    pass


# --- responses -------------------------------------------------------------------------------------


@message("success", Direction.RESPONSE, "The request succeeded.")
@dataclass(frozen=True, kw_only=True)
class Success(Message):
    pass


@message("error", Direction.RESPONSE, "The request failed; a login in progress is cancelled.")
@dataclass(frozen=True, kw_only=True)
class Error(Message):
    error_type: ErrorType = field(Choice(ErrorType), "what kind of failure", required=True)
    description: str = field(
        Text(4096), "a message for the person at the kiosk or the operator", required=True
    )
    retry_after: float | None = field(Number(0), "`rate_limited`: seconds until another attempt is allowed")


@message(
    "auth_message",
    Direction.RESPONSE,
    "A PAM message to show; answer with `post_auth_message_response`. Make no assumption about "
    "the number or order of prompts (OTP codes, password changes, notices).",
)
@dataclass(frozen=True, kw_only=True)
class AuthMessage(Message):
    auth_message_type: AuthMessageType = field(Choice(AuthMessageType), "how to show it", required=True)
    auth_message: str = field(Text(4096, allow_empty=True), "the text from PAM", required=True)


@message("session_started", Direction.RESPONSE, "A session runs (or, with `resumed`, was unlocked).")
@dataclass(frozen=True, kw_only=True)
class SessionStarted(Message):
    session: SessionInfo = field(Nested(SessionInfo), "the session", required=True)
    resumed: bool = field(Flag(), "true when an existing session was unlocked, not started", default=False)


@message("session_list", Direction.RESPONSE, "Every running session.")
@dataclass(frozen=True, kw_only=True)
class SessionList(Message):
    sessions: tuple[SessionInfo, ...] = field(
        NestedList(SessionInfo, 1_000_000), "the sessions", required=True, default=()
    )


@message(
    "session_event", Direction.RESPONSE, "Sent to subscribers when a session starts, ends or is unlocked."
)
@dataclass(frozen=True, kw_only=True)
class SessionEvent(Message):
    event: SessionEventKind = field(Choice(SessionEventKind), "what happened", required=True)
    session: SessionInfo = field(Nested(SessionInfo), "the session it happened to", required=True)
    reason: EndReason | None = field(Choice(EndReason), "`ended`: why")
    greeter_session: str | None = field(SESSION_ID, "`started`/`unlocked` via a greeter: that greeter")


# --- framing and parsing: wayray.common.jsonframe's ---------------------------------------------------

HEADER_SIZE = jsonframe.HEADER_SIZE
header_length = jsonframe.header_length
IdleTimeout = jsonframe.IdleTimeout


def encode(obj: Mapping[str, Any]) -> bytes:
    return IPC.encode(obj)


def decode_body(body: bytes) -> dict[str, Any]:
    """One frame's body as a JSON object, or IpcProtocolError."""
    try:
        obj = decode_object(body)
    except JSONBodyError as err:
        raise IpcProtocolError(f"message {err.reason}") from None
    if not isinstance(obj.get("type"), str):
        raise IpcProtocolError('message has no string "type"')
    return obj


def _frame_error(err: jsonframe.FrameError) -> IpcProtocolError:
    if isinstance(err, jsonframe.FrameCut):
        where = "a frame header" if err.where == "header" else "a message"
        return IpcProtocolError(f"connection closed in the middle of {where}")
    if isinstance(err, jsonframe.FrameUnfinished):
        return IpcProtocolError(
            f"an unfinished message: the rest of it did not come within {err.timeout:g} s"
        )
    return IpcProtocolError(f"message {err.reason}")


class FrameDecoder:
    """Sans-IO reassembly: feed received bytes, get complete JSON objects out."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._frames = jsonframe.FrameSplitter(max_bytes)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        try:
            bodies = self._frames.feed(data)
        except jsonframe.FrameError as err:
            raise _frame_error(err) from None
        return [decode_body(body) for body in bodies]

    @property
    def pending(self) -> int:
        return self._frames.pending


async def read_message(
    reader: asyncio.StreamReader,
    max_bytes: int,
    *,
    idle_timeout: float | None = None,
    frame_timeout: float | None = None,
) -> dict[str, Any] | None:
    """One framed JSON object from an asyncio stream, None at a clean end of stream; IpcProtocolError on
    anything else (:func:`wayray.common.jsonframe.read_frame` says what the timeouts do)."""
    try:
        body = await jsonframe.read_frame(
            reader, max_bytes, idle_timeout=idle_timeout, frame_timeout=frame_timeout
        )
    except jsonframe.FrameError as err:
        raise _frame_error(err) from None
    return None if body is None else decode_body(body)


def parse(obj: Mapping[str, Any], direction: Direction) -> Message:
    """Validate one decoded object as a message going ``direction``; IpcProtocolError says what is wrong."""
    msg = IPC.parse(obj, direction)
    assert isinstance(msg, Message)
    return msg


def parse_request(obj: Mapping[str, Any]) -> Message:
    return parse(obj, Direction.REQUEST)


def parse_response(obj: Mapping[str, Any]) -> Message:
    return parse(obj, Direction.RESPONSE)


# --- the reference in docs/launcher.md is generated from the table above -----------------------------


def markdown_reference() -> str:
    """The message reference of docs/launcher.md (a test checks the two agree)."""

    def heading(cls: type[schema.Message]) -> str:
        roles = MESSAGES[cls.type].roles
        return f"#### `{cls.type}`" + (
            f" — roles: {', '.join(sorted(r.value for r in roles))}" if roles else ""
        )

    out = IPC.reference({Direction.REQUEST: "Requests", Direction.RESPONSE: "Responses"}, heading)
    out += ["### `SessionInfo` object", "", SessionInfo.__doc__ or "", "", *record_table(SessionInfo)]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown_reference(), end="")

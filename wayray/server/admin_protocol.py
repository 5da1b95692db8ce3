"""wrsrvd's admin socket, sans-IO: every request and answer with its fields, in the schema layer the
other JSON protocols use (:mod:`wayray.common.schema`). ``docs/running.md`` has the reference
generated from this table; ``wayray/server/admin.py`` has the socket's server and its client (wradm).

Framing as wrsessd's IPC (:mod:`wayray.common.jsonframe`): a 32-bit length in native byte order,
then that many bytes of JSON (written ASCII-only), one object with a ``"type"``. Requests are at
most 64 KiB; answers at most 64 MiB (a screenshot). Any failure is answered ``error {description}``.
Stdlib only: wradm imports it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from wayray.common.schema import (
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

MAX_REQUEST = 64 * 1024
MAX_ANSWER = 64 * 1024 * 1024


class AdminError(Exception):
    """A request refused (its ``error`` answer), or an admin connection that failed."""


ADMIN = MessageTable("wrsrvd admin socket", error=AdminError, max_bytes=MAX_ANSWER, ensure_ascii=True)

SESSION_ID = Text(64)
WORD = Text(256, allow_empty=True)
PATH = Text(4096)
LINE = Text(64 * 1024, allow_empty=True)
LINES = ListOf(100_000, LINE)
COUNT = Integer(0, 2**63 - 1)
#: A moment (Unix time) or a duration, as the server wrote it (an integer stays one).
SECONDS = Number(0, keep_ints=True)


class Answer(Message):
    """An answer: every field is written, ``null`` where it has no value."""

    WRITE_NULLS: ClassVar[bool] = True


class Fields(Record):
    """A nested object of an answer."""

    WRITE_NULLS: ClassVar[bool] = True


# --- requests --------------------------------------------------------------------------------------


@ADMIN.message("status", Direction.REQUEST, "How the instance is doing. Answered by `status`.")
@dataclass(frozen=True, kw_only=True)
class Status(Message):
    pass


@ADMIN.message("sessions", Direction.REQUEST, "Every live session. Answered by `sessions`.")
@dataclass(frozen=True, kw_only=True)
class Sessions(Message):
    usage: bool = field(
        Flag(),
        "also what each session has used: CPU time and memory (reads every session's processes or "
        "cgroup, so a little slower)",
        default=False,
    )


@ADMIN.message(
    "kill",
    Direction.REQUEST,
    "End a session (login mode: through wrsessd, which closes its PAM session); its kiosk is told and "
    "shows its idle screen. Answered by `killed`.",
)
@dataclass(frozen=True, kw_only=True)
class Kill(Message):
    session_id: str = field(SESSION_ID, "the session (`wradm sessions` lists them)", required=True)


@ADMIN.message(
    "detach",
    Direction.REQUEST,
    "Take a session off its viewer (SessionEvent DETACHED, then Close NO_ERROR); it keeps running. "
    "Answered by `detached`.",
)
@dataclass(frozen=True, kw_only=True)
class Detach(Message):
    session_id: str = field(SESSION_ID, "the session", required=True)


@ADMIN.message(
    "screenshot",
    Direction.REQUEST,
    "The compositor's own picture of a session's output. Answered by `screenshot`.",
)
@dataclass(frozen=True, kw_only=True)
class Screenshot(Message):
    session_id: str = field(SESSION_ID, "the session", required=True)
    include_cursor: bool = field(Flag(), "draw the cursor into it", default=False)


@ADMIN.message(
    "reload",
    Direction.REQUEST,
    "Read and check the configuration files again (instance mode only); answered once that is done, "
    "by `reloaded` or `reload_refused`.",
)
@dataclass(frozen=True, kw_only=True)
class Reload(Message):
    pass


@ADMIN.message(
    "usb",
    Direction.REQUEST,
    "The USB devices kiosks offered and what the rules said (docs/usb.md). Answered by `usb`.",
)
@dataclass(frozen=True, kw_only=True)
class Usb(Message):
    pass


@ADMIN.message(
    "drain",
    Direction.REQUEST,
    "Drain the instance (`draining` true: it keeps and serves its sessions, takes no new one, and says "
    "so in its pool's announcement) or take it back (false). Kept across restarts. Answered by "
    "`drained`.",
)
@dataclass(frozen=True, kw_only=True)
class Drain(Message):
    draining: bool = field(Flag(), "drain (true) or take new sessions again (false)", required=True)


@ADMIN.message(
    "pool",
    Direction.REQUEST,
    "The members of the instance's pool as it sees them (mDNS and the pool port). Answered by `pool`.",
)
@dataclass(frozen=True, kw_only=True)
class Pool(Message):
    sessions: bool = field(
        Flag(), "also list the pool's session directory (every member's entries)", default=False
    )


# --- answers ---------------------------------------------------------------------------------------


class SessionsStart(enum.StrEnum):
    LOGIN = "login"  # behind a login screen (wrsessd)
    COMMAND = "command"  # the server's command, as wrsrvd's user


@dataclass(frozen=True, kw_only=True)
class LauncherLink(Fields):
    """Login mode: wrsrvd's connection to wrsessd."""

    socket: str = field(PATH, "wrsessd's socket", required=True)
    connected: bool = field(Flag(), "whether wrsrvd is subscribed to wrsessd's events now", required=True)


@dataclass(frozen=True, kw_only=True)
class Policy(Fields):
    """The session policy in effect."""

    detached_timeout_s: float | None = field(SECONDS, "a detached session ends after this long; null: never")
    idle_timeout_s: float | None = field(
        SECONDS, "an idle session is logged out after this long; null: never"
    )
    reauth_on_reattach: bool | None = field(Flag(), "a password is asked when a session's badge comes back")


@dataclass(frozen=True, kw_only=True)
class Digests(Fields):
    """Digests of the running configuration, by what a change of it needs."""

    restart: str = field(WORD, "of what only a restart takes", required=True)
    reload: str = field(WORD, "of what a reload takes", required=True)


@dataclass(frozen=True, kw_only=True)
class PoolStatus(Fields):
    """The instance's pool membership (docs/pools.md)."""

    name: str = field(WORD, "the pool", required=True)
    member: str = field(WORD, "this instance's member id", required=True)
    announced_as: str | None = field(WORD, "its mDNS instance name")
    announcements: int | None = field(COUNT, "announcements made since it started (the first included)")
    shares_directory: bool | None = field(Flag(), "whether it shares the session directory (peers' trust)")
    key_refused: str | None = field(
        LINE,
        "why it takes no badges from the pool: its pool token key is refused (the key file, what to "
        "do); null: not refused",
    )
    refused_members: tuple[str, ...] = field(
        ListOf(100_000, WORD),
        "other members refused at the members' key check, as `NAME (ID)`",
        default=(),
    )


@dataclass(frozen=True, kw_only=True)
class Configuration(Fields):
    """Instance mode: the configuration the instance runs with."""

    digests: Digests = field(
        Nested(Digests), "`wradm apply` compares them with the files: reload or restart", required=True
    )


@ADMIN.message("status", Direction.RESPONSE, "How the instance is doing.")
@dataclass(frozen=True, kw_only=True)
class StatusAnswer(Answer):
    name: str = field(WORD, "the instance", required=True)
    mode: str = field(WORD, "`standalone` or `instance`", required=True)
    sessions_start: SessionsStart | None = field(
        Choice(SessionsStart), "`login`: a login screen first; `command`: the server's command"
    )
    launcher: LauncherLink | None = field(Nested(LauncherLink), "login mode: its link to wrsessd; else null")
    version: str = field(WORD, "WayRay's version", required=True)
    pid: int | None = field(COUNT, "wrsrvd's pid")
    listen: tuple[str, ...] = field(ListOf(64, WORD), "the addresses it listens on", required=True)
    port: int | None = field(Integer(0, 65535), "its UDP port")
    fingerprint: str | None = field(WORD, "its TLS identity's fingerprint")
    sessions: int = field(COUNT, "live sessions", required=True)
    by_state: dict[str, int] | None = field(MapOf(64, Text(64), COUNT), "live sessions by state")
    viewers: int = field(COUNT, "sessions shown on a kiosk now", required=True)
    access_key: bool | None = field(Flag(), "viewers must present the access key")
    access_key_file: str | None = field(PATH, "where that key is; null without one")
    client_ca: str | None = field(PATH, "viewers must present a certificate from this CA; null: none")
    not_responding: tuple[str, ...] | None = field(
        ListOf(1_000_000, SESSION_ID), "sessions whose compositor answers nothing"
    )
    unlocking: int | None = field(COUNT, "unlock screens up at kiosks")
    max_sessions: int = field(COUNT, "the most sessions it keeps", required=True)
    draining: bool | None = field(Flag(), "it takes no new sessions (`wradm server drain`)")
    pool: PoolStatus | None = field(Nested(PoolStatus), "its pool membership; null: none")
    policy: Policy | None = field(Nested(Policy), "the session policy")
    config: Configuration | None = field(
        Nested(Configuration), "instance mode: its configuration; else null"
    )


@dataclass(frozen=True, kw_only=True)
class SessionRow(Fields):
    """A live session as operators see it."""

    id: str = field(SESSION_ID, "the session", required=True)
    state: str = field(
        Text(32), "`active`, `detached`, `greeter`, `unlocking` (its unlock screen is up), …", required=True
    )
    token: str | None = field(WORD, "the token's short digest form (never the token)")
    user: str | None = field(WORD, "whose it is; null: a login screen")
    viewer: str | None = field(WORD, "the viewer that shows it")
    kiosk: str | None = field(WORD, "the host of that viewer")
    since: float | None = field(SECONDS, "when it entered its state")
    launcher_session: str | None = field(WORD, "login mode: wrsessd's id of it")
    linked: bool | None = field(Flag(), "whether its compositor is on its link now")
    responding: bool | None = field(
        Flag(), "whether its compositor answers the link's pings; null when it is not on its link"
    )
    not_responding_since: float | None = field(SECONDS, "since when it answers nothing; else null")
    pid: int | None = field(COUNT, "its compositor's pid")
    wayland_display: str | None = field(WORD, "its Wayland socket's name")
    output: tuple[int, ...] | None = field(ListOf(3, COUNT), "its output: width, height, scale in 120ths")
    created_at: float | None = field(SECONDS, "when it was created")
    changed_at: float | None = field(SECONDS, "when its record last changed")
    sent_bytes: int | None = field(COUNT, "bytes wrsrvd relayed from it to its viewers since wrsrvd started")
    received_bytes: int | None = field(COUNT, "bytes its viewers sent it, the same way")
    cpu_s: float | None = field(SECONDS, "with `usage`: CPU time its processes have used")
    memory_bytes: int | None = field(COUNT, "with `usage`: the memory its processes hold")
    measured_by: str | None = field(
        WORD, "with `usage`: `cgroup` (its own cgroup's counters) or `processes` (its process tree now)"
    )


@ADMIN.message("sessions", Direction.RESPONSE, "Every live session.")
@dataclass(frozen=True, kw_only=True)
class SessionsAnswer(Answer):
    sessions: tuple[SessionRow, ...] = field(
        NestedList(SessionRow, 1_000_000), "the sessions", required=True, default=()
    )


@ADMIN.message("killed", Direction.RESPONSE, "The session was ended.")
@dataclass(frozen=True, kw_only=True)
class Killed(Answer):
    session_id: str = field(SESSION_ID, "the session", required=True)


@ADMIN.message("detached", Direction.RESPONSE, "The session was taken off its viewer; it keeps running.")
@dataclass(frozen=True, kw_only=True)
class Detached(Answer):
    session_id: str = field(SESSION_ID, "the session", required=True)


@ADMIN.message("screenshot", Direction.RESPONSE, "The picture.")
@dataclass(frozen=True, kw_only=True)
class ScreenshotAnswer(Answer):
    png_base64: str = field(Text(MAX_ANSWER), "a PNG, base64", required=True)


@ADMIN.message("reloaded", Direction.RESPONSE, "The instance took the configuration.")
@dataclass(frozen=True, kw_only=True)
class Reloaded(Answer):
    needs_restart: tuple[str, ...] = field(
        LINES, "keys that changed but keep their running value until a restart", default=()
    )
    diagnostics: tuple[str, ...] = field(LINES, "warnings and notes, `file:line:col: …`", default=())


@ADMIN.message(
    "reload_refused",
    Direction.RESPONSE,
    "The files have errors: the running configuration stays.",
)
@dataclass(frozen=True, kw_only=True)
class ReloadRefused(Answer):
    errors: tuple[str, ...] = field(LINES, "the errors, `file:line:col: error: …`", default=())
    diagnostics: tuple[str, ...] = field(LINES, "every diagnostic, notes included", default=())


@dataclass(frozen=True, kw_only=True)
class UsbDeviceRow(Fields):
    """A USB device a kiosk offered, as operators see it (what it says of itself may be anything)."""

    kiosk: str = field(WORD, "the kiosk (its identity's digest, else its address)", required=True)
    busid: str = field(WORD, "where it is plugged in on the kiosk", required=True)
    device: str = field(WORD, "vendor:product, as lsusb prints them", required=True)
    manufacturer: str | None = field(WORD, "what the device reports")
    product: str | None = field(WORD, "what the device reports")
    serial: str | None = field(WORD, "its serial number string")
    session: str | None = field(WORD, "the session the kiosk shows")
    user: str | None = field(WORD, "whose session; null: a login screen")
    state: str = field(
        Text(32),
        "`attached`, `attaching` (the attach helper is at work), or `refused` (the reason says why)",
        required=True,
    )
    reason: str = field(LINE, "the deciding rule, or what keeps it from being attached", required=True)
    since: float | None = field(SECONDS, "when it was last judged")
    port: int | None = field(COUNT, "the vhci_hcd port it is attached on; null: none")


@ADMIN.message("usb", Direction.RESPONSE, "The USB devices kiosks offer.")
@dataclass(frozen=True, kw_only=True)
class UsbAnswer(Answer):
    devices: tuple[UsbDeviceRow, ...] = field(
        NestedList(UsbDeviceRow, 100_000), "the devices", required=True, default=()
    )


@ADMIN.message("drained", Direction.RESPONSE, "The instance drains now, or takes new sessions again.")
@dataclass(frozen=True, kw_only=True)
class Drained(Answer):
    draining: bool = field(Flag(), "whether it drains now", required=True)


@dataclass(frozen=True, kw_only=True)
class PoolMemberRow(Fields):
    """A member of the pool as this instance sees it."""

    id: str = field(WORD, "its member id", required=True)
    name: str | None = field(WORD, "its mDNS instance name")
    addresses: tuple[str, ...] = field(ListOf(64, WORD), "its addresses", default=())
    port: int | None = field(Integer(0, 65535), "its QUIC port")
    fingerprint: str | None = field(WORD, "the fingerprint it announces (a hint, not trust)")
    state: str | None = field(WORD, "`online` or `drain`")
    sessions: int | None = field(COUNT, "sessions it announces")
    capacity: int | None = field(COUNT, "its `max_sessions`")
    load: int | None = field(COUNT, "sessions as a percentage of its capacity, in tens")
    weight: int | None = field(COUNT, "its placement weight")
    last_seen_s: float | None = field(SECONDS, "seconds since its announcement was last seen")
    answers: bool | None = field(Flag(), "whether it answers on the pool port (null: not asked)")
    this: bool | None = field(Flag(), "this instance")
    refused: str | None = field(
        LINE,
        "why it is not taken into the pool: the members' key check refused its pool token key "
        "(this instance: why it takes no badges); null: not refused",
    )


@dataclass(frozen=True, kw_only=True)
class PoolSessionRow(Fields):
    """An entry of the pool's session directory: never a token, only 8 hex digits of its digest."""

    token: str = field(WORD, "8 hex digits of the token's keyed digest", required=True)
    member: str = field(WORD, "the member that holds it", required=True)
    session_id: str | None = field(WORD, "its session there; null while it starts (or is placed)")
    state: str = field(WORD, "`session`, or `pending` (starting, or placed on `member`)", required=True)


@ADMIN.message("pool", Direction.RESPONSE, "The pool's members.")
@dataclass(frozen=True, kw_only=True)
class PoolAnswer(Answer):
    name: str = field(WORD, "the pool", required=True)
    members: tuple[PoolMemberRow, ...] = field(
        NestedList(PoolMemberRow, 100_000), "its members, this one first", required=True, default=()
    )
    sessions: tuple[PoolSessionRow, ...] | None = field(
        NestedList(PoolSessionRow, 10_000_000), "with `sessions`: the directory's entries; else null"
    )


@ADMIN.message("error", Direction.RESPONSE, "The request failed, or was not one.")
@dataclass(frozen=True, kw_only=True)
class Error(Answer):
    description: str = field(LINE, "what went wrong, for the operator", required=True)


def parse_answer(obj: Mapping[str, Any]) -> Message:
    """An answer as a client reads it. Fields this side does not know are ignored (a newer wrsrvd
    may say more); an ``error`` is raised as :class:`AdminError`."""
    answer = ADMIN.parse(obj, Direction.RESPONSE, strict=False)
    if isinstance(answer, Error):
        raise AdminError(answer.description)
    return answer


def markdown_reference() -> str:
    """The reference in docs/running.md (a test checks the two agree)."""
    out = ADMIN.reference(
        {Direction.REQUEST: "Requests", Direction.RESPONSE: "Answers"},
        lambda cls: f"##### `{cls.type}`",
        level=4,
    )
    for nested in (
        LauncherLink,
        Policy,
        PoolStatus,
        Configuration,
        Digests,
        SessionRow,
        PoolMemberRow,
        PoolSessionRow,
        UsbDeviceRow,
    ):
        out += [f"#### `{nested.__name__}` object", "", nested.__doc__ or "", "", *record_table(nested), ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown_reference(), end="")

"""What wrsessd needs to know, as frozen dataclasses the configuration model fills in.

:meth:`LauncherSettings.from_config` makes them from the configuration (``host.toml`` for the
socket, the greeter account and the PAM services; ``session.toml`` for what users' sessions start).
``wrsessd --settings FILE`` may then override any field from a small TOML file with
:func:`load_settings` (docs/launcher.md §9): for tests, and for sites that must change what the
configuration model does not describe (the compositor and greeter commands, timeouts, rate limits).
"""

from __future__ import annotations

import dataclasses
import string
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wayray.common.errors import WayRayError
from wayray.config import Config, SessionConfig
from wayray.launcher.ratelimit import RateLimitSettings

#: Names a compositor or component argument may use as ``{name}``; filled in per session.
PLACEHOLDERS = frozenset({"wayland_display", "session_id", "runtime_dir", "user", "session_class"})

#: Environment names a request may not set: the launcher owns them.
RESERVED_ENV = frozenset(
    {
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "XDG_RUNTIME_DIR",
        "XDG_SESSION_TYPE",
        "XDG_SESSION_CLASS",
        "XDG_SESSION_ID",
        "XDG_SEAT",
        "XDG_VTNR",
        "WAYLAND_DISPLAY",
        "WAYRAY_WAYLAND_DISPLAY",
        "WAYRAY_SESSION_ID",
        "WAYRAY_SESSD_SOCK",
        "WAYRAY_LOGIN_TICKET",
        "WAYRAY_UNLOCK_USER",
        "WAYRAY_WINDOW_MANAGER",
    }
)
RESERVED_ENV_PREFIXES = ("LD_",)


@dataclass(frozen=True)
class Component:
    """One program a session starts after its compositor is up (a session.toml entry)."""

    name: str  # "wm", "panel", "launcher", "notifications", "autostart[0]", "greeter"
    argv: tuple[str, ...]


#: The session compositor wrsessd starts for users and greeters: WayRay's own, from this installation.
#: It gets its link to wrsrvd and its output settings from the session's environment.
DEFAULT_COMPOSITOR = (sys.executable, "-I", "-m", "wayray.server", "session")
#: The greeter component of greeter sessions.
DEFAULT_GREETER = (sys.executable, "-I", "-m", "wayray.greeter")

#: session.toml keys for single programs, in the order they start, and their component names.
SESSION_COMPONENTS = (
    ("window_manager", "wm"),
    ("panel", "panel"),
    ("launcher", "launcher"),
    ("notifications", "notifications"),
)


def session_components(session: SessionConfig) -> tuple[Component, ...]:
    """The components a session.toml asks for, in order (empty commands are left out)."""
    out = [Component(name, getattr(session, key)) for key, name in SESSION_COMPONENTS]
    out += [Component(f"autostart[{i}]", argv) for i, argv in enumerate(session.autostart)]
    return tuple(c for c in out if c.argv)


#: How the session's window manager reaches WayRay's compositor (a JSON array): the compositor starts it
#: itself, on the one Wayland connection that may manage windows (docs/wm-protocol.md §1).
WINDOW_MANAGER_ENV = "WAYRAY_WINDOW_MANAGER"


def is_wayray_compositor(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs WayRay's session compositor (``wrsrvd session`` or ``-m wayray.server
    session``), which starts the session's window manager itself."""
    args = list(argv)
    if "session" not in args:
        return False
    before = args[: args.index("session")]
    return "wayray.server" in before or any(Path(a).name == "wrsrvd" for a in before)


def hand_window_manager(
    plan: SessionPlan, configured: int, compositor: Sequence[str]
) -> tuple[SessionPlan, tuple[str, ...]]:
    """Take session.toml's window manager (a component after the ``configured`` ones) out of the
    programs to start, for the compositor to start, when the compositor is WayRay's: the plan left
    and the window manager's command (empty: nothing to hand over, the plan is unchanged)."""
    index = next((i for i, c in enumerate(plan.components) if i >= configured and c.name == "wm"), None)
    if index is None or not is_wayray_compositor(compositor):
        return plan, ()
    rest = plan.components[:index] + plan.components[index + 1 :]
    return SessionPlan(plan.compositor, rest), plan.components[index].argv


def session_to_json(session: SessionConfig) -> dict[str, Any]:
    """A SessionConfig as JSON (for the session worker, which reads no configuration itself)."""
    return {
        **{key: list(getattr(session, key)) for key, _ in SESSION_COMPONENTS},
        "autostart": [list(a) for a in session.autostart],
        "environment": dict(session.environment),
    }


def session_from_json(obj: dict[str, Any]) -> SessionConfig:
    return SessionConfig(
        **{key: tuple(obj.get(key) or ()) for key, _ in SESSION_COMPONENTS},
        autostart=tuple(tuple(a) for a in obj.get("autostart") or ()),
        environment=types.MappingProxyType(dict(obj.get("environment") or {})),
    )


@dataclass(frozen=True)
class SessionPlan:
    """The session compositor command and the components to start, in order, once it is up.

    Arguments may use the :data:`PLACEHOLDERS`; ``{wayland_display}`` is the socket name the
    compositor must create in the session's XDG_RUNTIME_DIR.
    """

    compositor: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()

    def check(self, what: str) -> None:
        if not self.compositor:
            raise WayRayError(
                f"{what}: no session compositor command is configured",
                hint="set the compositor command (see /usr/share/doc/wayray/launcher.md)",
            )
        for argv in [self.compositor, *(c.argv for c in self.components)]:
            if not argv:
                raise WayRayError(f"{what}: a component has an empty command")
            for arg in argv:
                for _, name, _, _ in string.Formatter().parse(arg):
                    if name is not None and name not in PLACEHOLDERS:
                        raise WayRayError(
                            f"{what}: unknown placeholder {{{name}}} in {arg!r}",
                            hint=f"known: {', '.join(sorted(PLACEHOLDERS))} (write {{{{ for a brace)",
                        )


@dataclass(frozen=True)
class LauncherSettings:
    #: The control socket (when not socket-activated).
    socket: Path = Path("/run/wayray/wrsessd.sock")
    #: Group that owns the socket; its members can connect (wrsrvd's user and the greeter user).
    socket_group: str | None = "wayray"
    socket_mode: int = 0o660
    #: Users besides root allowed control requests (create greeters, list, kill): wrsrvd's user.
    control_users: tuple[str, ...] = ("wayray",)
    #: Root-only directory for session records (a restarted wrsessd re-adopts sessions from it).
    state_dir: Path = Path("/run/wayray/sessd")
    #: PAM service for user logins (/etc/pam.d/<name> or a pam.conf stanza on illumos).
    pam_service: str = "wayray"
    #: PAM service for greeter sessions (account + session stacks only); None: greeters skip PAM.
    greeter_pam_service: str | None = "wayray-greeter"
    #: The unprivileged account greeter sessions run as; never root.
    greeter_user: str = "wayray-greeter"
    #: What a user session runs; the user's own session.toml may override the components.
    user_session: SessionPlan = SessionPlan()
    #: What a greeter session runs (the greeter, wrlogin, is its component).
    greeter_session: SessionPlan = SessionPlan()
    #: Read ~/.config/wayray/session.toml (as the user) to override the user session's components.
    read_user_session_file: bool = True
    #: Where XDG_RUNTIME_DIR is made (as <base>/<uid>, owner the user, mode 0700) when PAM did not.
    runtime_dir_base: Path = Path("/run/user")
    #: PATH for sessions unless PAM's environment (pam_env) sets one.
    default_path: str = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
    session_umask: int = 0o022
    #: Value of PAM_TTY; None leaves it unset (seat-less remote sessions have no tty).
    pam_tty: str | None = None
    #: Let a user whose password expired change it during login (pam_chauthtok).
    allow_password_change: bool = True
    #: Let start_session replace the compositor command (off: greeters cannot pick what runs).
    allow_custom_command: bool = False
    #: Most concurrent user sessions per user; None for no limit.
    max_sessions_per_user: int | None = None
    #: Most logins in their PAM conversation at once (each holds a worker process).
    max_pending_logins: int = 64
    #: Most connections one uid other than root and the control users (that is: the greeter user)
    #: may hold open at once; the greeter user gets one more per running greeter session, since every
    #: login screen keeps one open. Further ones are refused at once with ``error {limit}``.
    max_connections_per_uid: int = 16
    #: A login that has not finished its conversation after this long is cancelled.
    login_timeout_s: float = 300.0
    #: A connection with no login in its conversation that sends nothing for this long is closed
    #: (during a conversation the login's own deadline, login_timeout_s, is what counts).
    idle_timeout_s: float = 60.0
    #: A message whose first byte came must be complete within this long, or its connection is closed.
    frame_timeout_s: float = 10.0
    #: A PAM call (or the PAM stack between two of its questions) that takes longer than this ends
    #: its login: the worker is killed and the login fails with a reason.
    pam_timeout_s: float = 120.0
    #: How long the compositor has to create its Wayland socket.
    compositor_start_timeout_s: float = 30.0
    #: Grace between SIGTERM and SIGKILL when a session ends.
    stop_timeout_s: float = 10.0
    #: A greeter whose login started a user session is ended after this long at the latest.
    greeter_linger_s: float = 30.0
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    #: session.toml: the programs (after ``user_session.components``) and environment of every user
    #: session; each user's own ``session.toml`` overrides it key by key.
    session_defaults: SessionConfig = field(default_factory=SessionConfig)

    @classmethod
    def from_config(cls, config: Config) -> LauncherSettings:
        """The launcher's settings from the configuration model (host.toml and session.toml)."""
        host = config.host
        return cls(
            socket=Path(str(host.launcher_socket)),
            state_dir=Path(str(host.runtime_dir)) / "sessd",
            pam_service=host.pam_service,
            greeter_pam_service=host.greeter_pam_service or None,
            greeter_user=host.greeter_user,
            user_session=SessionPlan(DEFAULT_COMPOSITOR),
            greeter_session=SessionPlan(DEFAULT_COMPOSITOR, (Component("greeter", DEFAULT_GREETER),)),
            session_defaults=config.session,
        )

    def check(self) -> None:
        """Errors an operator can act on, before the daemon starts serving."""
        if not self.socket.is_absolute() or not self.state_dir.is_absolute():
            raise WayRayError("socket and state_dir must be absolute paths")
        if not self.runtime_dir_base.is_absolute():
            raise WayRayError("runtime_dir_base must be an absolute path")
        if self.socket_mode & 0o007:
            raise WayRayError(
                f"socket_mode {self.socket_mode:o} gives access to every local user",
                hint="use 0660 or tighter; give wrsrvd's user and the greeter user the socket group",
            )
        if self.max_connections_per_uid < 1:
            raise WayRayError("max_connections_per_uid must be at least 1")
        for name in ("idle_timeout_s", "frame_timeout_s", "pam_timeout_s", "login_timeout_s"):
            if getattr(self, name) <= 0:
                raise WayRayError(f"{name} must be more than 0 seconds")
        if self.greeter_user == "root":
            raise WayRayError("greeter_user must be an unprivileged account, not root")
        self.user_session.check("user_session")
        self.greeter_session.check("greeter_session")


# --- interim TOML loader (until wayray.config lands) -----------------------------------------------


def _convert(tp: Any, value: object, where: str) -> object:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(args[0], value, where)
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar(value, where)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise WayRayError(f"{where}: expected a list")
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise WayRayError(f"{where}: expected a table")
        return _from_mapping(tp, value, where)
    raise WayRayError(f"{where}: unsupported setting type {tp}")  # pragma: no cover


def _path(value: object, where: str) -> Path:
    if not isinstance(value, str):
        raise WayRayError(f"{where}: expected a path string")
    return Path(value)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise WayRayError(f"{where}: expected true or false")
    return value


def _int(value: object, where: str) -> int:
    if isinstance(value, str) and (where.endswith("_mode") or where.endswith("umask")):
        try:
            value = int(value, 8)  # "0660"; TOML's own 0o660 arrives as an int already
        except ValueError:
            raise WayRayError(f"{where}: expected an octal mode such as 0o660") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WayRayError(f"{where}: expected an integer")
    return value


def _float(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WayRayError(f"{where}: expected a number")
    return float(value)


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise WayRayError(f"{where}: expected a string")
    return value


#: How a setting of each plain type is read from its TOML value (``where`` names it in errors).
_SCALARS: dict[object, Callable[[object, str], object]] = {
    Path: _path,
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
}


def _from_mapping(cls: Any, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where_key = f"{where}.{key}" if where else key
            raise WayRayError(f"unknown setting {where_key!r}", hint=f"known: {', '.join(sorted(names))}")
    values = {
        key: _convert(hints[key], value, f"{where}.{key}" if where else key) for key, value in data.items()
    }
    try:
        return cls(**values)
    except ValueError as err:
        raise WayRayError(f"{where or 'settings'}: {err}") from None


def load_settings(path: Path, base: LauncherSettings | None = None) -> LauncherSettings:
    """Read a settings file (TOML; see docs/launcher.md) over ``base`` (the configuration's settings,
    or the built-in defaults). Errors name the file and the key."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise WayRayError(f"{path}: cannot read settings: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise WayRayError(f"{path}: {err}") from None
    if "session_defaults" in data:
        raise WayRayError(
            f"{path}: session_defaults cannot be set here", hint="what sessions start is set in session.toml"
        )
    try:
        overrides = _from_mapping(LauncherSettings, data, "")
    except WayRayError as err:
        raise WayRayError(f"{path}: {err.message}", hint=err.hint) from None
    given = {k: getattr(overrides, k) for k in data}
    try:
        return dataclasses.replace(base or LauncherSettings(), **given)
    except ValueError as err:
        raise WayRayError(f"{path}: {err}") from None


def env_refusal(entry: str) -> str | None:
    """Why a requested ``NAME=value`` environment entry is refused, or None when it is fine."""
    name = entry.partition("=")[0]
    if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
        return f"environment variable {name} is set by the launcher and cannot be requested"
    return None

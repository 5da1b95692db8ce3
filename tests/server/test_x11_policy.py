"""policy.x11 reaches the session compositor on both of its paths: the command line wrsrvd starts a
standalone session with, and the environment wrsessd's compositor gets in login mode (the compositor
side, no display at all, is tests/compositor/test_xwayland.py)."""

from __future__ import annotations

from pathlib import Path

from wayray.config import PolicyConfig
from wayray.config.model import HostConfig, ServerConfig
from wayray.config.model.servers import SessionStart
from wayray.server.settings import instance_settings
from wayray.server.spawn import SessionSpec, session_argv
from wayray.session.cli import options_from_environment, parser


def _settings(x11: bool, login: bool = False):  # type: ignore[no-untyped-def]
    server = ServerConfig(
        name="lab",
        listen=("127.0.0.1",),
        sessions=SessionStart.LOGIN if login else SessionStart.COMMAND,
    )
    host = HostConfig(launcher_socket=Path("/run/wayray/wrsessd.sock"))  # type: ignore[arg-type]
    return instance_settings(server, PolicyConfig(name="default", x11=x11), host)


def _spec(x11: bool) -> SessionSpec:
    return SessionSpec(
        session_id="s1",
        secret="x" * 32,
        link=Path("/run/l.sock"),
        runtime_dir=Path("/run/u"),
        command=("foot",),
        size=(800, 600),
        scale=1,
        fps=60,
        idle_fps=1,
        video=True,
        orphan_timeout=None,
        log_dir=None,
        x11=x11,
    )


def test_x11_is_on_by_default_and_off_by_policy() -> None:
    assert _settings(True).x11 is True
    assert _settings(False).x11 is False
    assert PolicyConfig(name="default").x11 is True


def test_a_standalone_session_is_started_without_x11_when_the_policy_says_so() -> None:
    off = parser().parse_args(session_argv(_spec(False))[4:])
    on = parser().parse_args(session_argv(_spec(True))[4:])
    assert off.no_x11 is True and on.no_x11 is False


def test_a_login_sessions_compositor_hears_the_policy_through_its_environment() -> None:
    args = parser().parse_args(options_from_environment(["--", "foot"], {"WAYRAY_SESSION_X11": "0"}))
    assert args.no_x11 is True
    args = parser().parse_args(options_from_environment(["--", "foot"], {"WAYRAY_SESSION_X11": "1"}))
    assert args.no_x11 is False


def test_in_login_mode_user_sessions_get_x11_and_login_screens_never() -> None:
    """The environment wrsrvd has wrsessd start each compositor with (docs/link.md §1)."""
    from types import SimpleNamespace

    from wayray.server.admission import Kind
    from wayray.server.logins import Logins

    for x11 in (True, False):
        settings = _settings(x11, login=True)
        fake = SimpleNamespace(table=SimpleNamespace(settings=settings, max_pixels=lambda kind: 1 << 20))
        for kind in Kind:
            env = dict(
                e.split("=", 1) for e in Logins._compositor_env(fake, "s1", "x" * 32, (800, 600), 1, kind)
            )  # type: ignore[arg-type]
            want = "1" if x11 and kind is Kind.SESSION else "0"
            assert env["WAYRAY_SESSION_X11"] == want, (x11, kind)

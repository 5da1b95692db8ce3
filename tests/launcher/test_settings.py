"""wrsessd's settings: the interim TOML loader, checks, and session.toml merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from wayray.common.errors import WayRayError
from wayray.launcher.settings import (
    Component,
    LauncherSettings,
    SessionPlan,
    env_refusal,
    load_settings,
)
from wayray.launcher.spawn import merge_plan, parse_user_session_file

PLAN = SessionPlan(("comp", "--socket", "{wayland_display}"), (Component("wm", ("wm",)),))


def test_load_settings(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        'pam_service = "login"\nsocket_mode = 0o600\nsession_umask = "077"\nmax_sessions_per_user = 2\n'
        '[rate_limit]\nmax_failures = 2\n[user_session]\ncompositor = ["c", "{session_id}"]\n'
        'components = [{name = "wm", argv = ["w"]}]\n'
    )
    s = load_settings(f)
    assert s.pam_service == "login" and s.socket_mode == 0o600 and s.session_umask == 0o077
    assert s.rate_limit.max_failures == 2 and s.rate_limit.window_s == 900.0
    assert s.user_session == SessionPlan(("c", "{session_id}"), (Component("wm", ("w",)),))
    assert s.max_sessions_per_user == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('pam_servce = "x"\n', "unknown setting 'pam_servce'"),
        ("[rate_limit]\nmax_failure = 2\n", "unknown setting 'rate_limit.max_failure'"),
        ('stop_timeout_s = "soon"\n', "stop_timeout_s: expected a number"),
        ('control_users = "wayray"\n', "control_users: expected a list"),
        ("[rate_limit]\nmax_failures = 0\n", "max_failures must be at least 1"),
        ('socket_mode = "rw"\n', "expected an octal mode"),
        ("x = [\n", "s.toml"),
    ],
)
def test_settings_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(WayRayError) as err:
        load_settings(f)
    assert str(f) in err.value.message and message in err.value.message


def test_checks() -> None:
    good = LauncherSettings(user_session=PLAN, greeter_session=PLAN)
    good.check()
    with pytest.raises(WayRayError, match="every local user"):
        LauncherSettings(user_session=PLAN, greeter_session=PLAN, socket_mode=0o666).check()
    with pytest.raises(WayRayError, match="not root"):
        LauncherSettings(user_session=PLAN, greeter_session=PLAN, greeter_user="root").check()
    with pytest.raises(WayRayError, match="no session compositor"):
        LauncherSettings(greeter_session=PLAN).check()
    bad = SessionPlan(("c", "{wayland_socket}"))
    with pytest.raises(WayRayError, match=r"unknown placeholder \{wayland_socket\}") as err:
        LauncherSettings(user_session=bad, greeter_session=PLAN).check()
    assert err.value.hint and "wayland_display" in err.value.hint


def test_requested_environment() -> None:
    assert env_refusal("EDITOR=vi") is None
    assert env_refusal("WAYRAY_LINK=/x") is None
    for name in (
        "HOME",
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "WAYRAY_LOGIN_TICKET",
    ):
        assert env_refusal(f"{name}=x") is not None


def test_user_session_file_merge() -> None:
    system = SessionPlan(
        ("comp",),
        (
            Component("wm", ("wm",)),
            Component("panel", ("waybar",)),
            Component("autostart[0]", ("nm-applet",)),
        ),
    )
    overrides = parse_user_session_file(
        'panel = ""\nlauncher = "fuzzel --x"\nautostart = [["foot"], "mako -c x"]\n'
    )
    plan = merge_plan(system, overrides)
    assert plan.compositor == ("comp",)
    assert plan.components == (
        Component("wm", ("wm",)),
        Component("launcher", ("fuzzel", "--x")),
        Component("autostart[0]", ("foot",)),
        Component("autostart[1]", ("mako", "-c", "x")),
    )
    assert merge_plan(system, parse_user_session_file('wm = ["river"]\n')).components[0] == Component(
        "wm", ("river",)
    )
    with pytest.raises(ValueError, match="unknown key 'compositor'"):
        parse_user_session_file('compositor = "evil"\n')


def test_every_setting_is_documented() -> None:
    import dataclasses

    doc = (REPO / "docs" / "launcher.md").read_text()
    for f in dataclasses.fields(LauncherSettings):
        assert f"| `{f.name}` |" in doc, f"{f.name} missing from docs/launcher.md §9"

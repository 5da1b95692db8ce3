"""wrsessd's settings: from the configuration, the --settings overrides, checks, session.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from wayray import config
from wayray.common.errors import WayRayError
from wayray.launcher.settings import (
    DEFAULT_COMPOSITOR,
    Component,
    LauncherSettings,
    SessionPlan,
    env_refusal,
    load_settings,
    session_components,
    session_from_json,
    session_to_json,
)

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


def _config(tmp_path: Path, files: dict[str, str]) -> config.Config:
    etc = tmp_path / "etc" / "wayray"
    etc.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return config.load(tmp_path)


def test_settings_from_the_configuration_and_overrides_on_top(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        {
            "host.toml": '[host]\nruntime_dir = "/run/wr"\ngreeter_user = "greet"\n'
            'pam_service = "wr-login"\ngreeter_pam_service = ""\n',
            "session.toml": '[session]\npanel = "waybar"\nautostart = ["foot", ["mako", "-c", "x y"]]\n'
            'environment = { GTK_THEME = "Adwaita:dark" }\n',
        },
    )
    s = LauncherSettings.from_config(cfg)
    assert (s.socket, s.state_dir) == (Path("/run/wr/wrsessd.sock"), Path("/run/wr/sessd"))
    assert (s.greeter_user, s.pam_service, s.greeter_pam_service) == ("greet", "wr-login", None)
    assert s.user_session.compositor == DEFAULT_COMPOSITOR and s.user_session.components == ()
    assert [c.name for c in s.greeter_session.components] == ["greeter"]
    assert session_components(s.session_defaults) == (
        Component("panel", ("waybar",)),
        Component("autostart[0]", ("foot",)),
        Component("autostart[1]", ("mako", "-c", "x y")),
    )
    # What the worker gets survives its JSON trip.
    assert session_from_json(session_to_json(s.session_defaults)) == s.session_defaults
    s.check()

    f = tmp_path / "over.toml"
    f.write_text('stop_timeout_s = 3.0\n[greeter_session]\ncompositor = ["c"]\n')
    over = load_settings(f, s)
    assert over.stop_timeout_s == 3.0 and over.greeter_session == SessionPlan(("c",))
    assert over.greeter_user == "greet" and over.session_defaults == s.session_defaults  # kept
    f.write_text("[session_defaults]\npanel = []\n")
    with pytest.raises(WayRayError, match="session_defaults cannot be set here"):
        load_settings(f, s)


def test_a_users_session_file_overrides_key_by_key(tmp_path: Path) -> None:
    system = '[session]\npanel = "waybar"\nwindow_manager = "river"\nautostart = ["nm-applet"]\n'
    cfg = _config(tmp_path, {"session.toml": system + 'environment = { A = "1", B = "2" }\n'})
    user, problems = config.load_user_session(
        cfg.session,
        '[session]\npanel = ""\nautostart = [["foot"], "mako -c x"]\nenvironment = { B = "3" }\n'
        'compositor = "evil"\n',
        "/home/alice/.config/wayray/session.toml",
    )
    assert session_components(user) == (
        Component("wm", ("river",)),
        Component("autostart[0]", ("foot",)),
        Component("autostart[1]", ("mako", "-c", "x")),
    )
    assert dict(user.environment) == {"A": "1", "B": "3"}
    assert [d.key for d in problems] == ["session"] and "unknown key 'compositor'" in problems[0].format()


def test_every_setting_is_documented() -> None:
    import dataclasses

    doc = (REPO / "docs" / "launcher.md").read_text()
    for f in dataclasses.fields(LauncherSettings):
        assert f"| `{f.name}` |" in doc, f"{f.name} missing from docs/launcher.md §9"


def test_wayrays_compositor_is_handed_the_window_manager_to_start_itself() -> None:
    from wayray.launcher.settings import hand_window_manager, is_wayray_compositor

    assert is_wayray_compositor(DEFAULT_COMPOSITOR)
    assert is_wayray_compositor(("/usr/bin/wrsrvd", "session", "--socket", "x"))
    assert not is_wayray_compositor(("sway",)) and not is_wayray_compositor(("wrsrvd", "compositor"))
    components = (
        Component("panel", ("waybar",)),
        Component("wm", ("wr-wm-tiling",)),
        Component("x", ("y",)),
    )
    plan = SessionPlan(DEFAULT_COMPOSITOR, components)
    rest, wm = hand_window_manager(plan, 0, DEFAULT_COMPOSITOR)
    assert wm == ("wr-wm-tiling",)
    assert rest.components == (components[0], components[2])
    # Another compositor: the window manager starts as one of the session's programs, as before.
    assert hand_window_manager(plan, 0, ("sway",)) == (plan, ())
    # A configured component that happens to be called "wm" is not session.toml's window manager.
    assert hand_window_manager(plan, 2, DEFAULT_COMPOSITOR) == (plan, ())

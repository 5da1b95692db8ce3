"""encoder.bitrate, encoder.zstd_level, encoder.adaptive and encoder.video_scaling reach the session
compositor on both of
its paths: the command line wrsrvd starts a standalone session with, and the environment wrsessd's
compositor gets in login mode. (What the values do to the bytes: tests/codec/test_rate.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

from wayray.config import PolicyConfig
from wayray.config.model import HostConfig, ServerConfig
from wayray.config.model.servers import EncoderSettings, SessionStart, VideoScaling
from wayray.server.admission import Kind
from wayray.server.logins import Logins
from wayray.server.settings import instance_settings
from wayray.server.spawn import SessionSpec, session_argv
from wayray.session.cli import options_from_environment, parser


def _settings(encoder: EncoderSettings, login: bool = False):  # type: ignore[no-untyped-def]
    server = ServerConfig(
        name="lab",
        listen=("127.0.0.1",),
        sessions=SessionStart.LOGIN if login else SessionStart.COMMAND,
        encoder=encoder,
    )
    host = HostConfig(launcher_socket=Path("/run/wayray/wrsessd.sock"))  # type: ignore[arg-type]
    return instance_settings(server, PolicyConfig(name="default"), host)


SLOW_LINK = EncoderSettings(
    bitrate=2_000_000, zstd_level=12, adaptive=False, video_scaling=VideoScaling.ALWAYS
)


def test_the_defaults_are_the_encoders_measured_ones() -> None:
    args = parser().parse_args(["--", "foot"])
    assert (args.bitrate, args.zstd_level, args.no_adapt, args.video_scaling) == (
        8_000_000,
        5,
        False,
        "auto",
    )
    s = _settings(EncoderSettings())
    assert (s.video_bitrate, s.zstd_level, s.adaptive, s.video_scaling) == (8_000_000, 5, True, "auto")


def test_a_standalone_session_is_started_with_the_instances_encoder_settings() -> None:
    s = _settings(SLOW_LINK)
    spec = SessionSpec(
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
        video_bitrate=s.video_bitrate,
        zstd_level=s.zstd_level,
        adaptive=s.adaptive,
        video_scaling=s.video_scaling,
    )
    args = parser().parse_args(session_argv(spec)[4:])
    assert (args.bitrate, args.zstd_level, args.no_adapt, args.video_scaling) == (
        2_000_000,
        12,
        True,
        "always",
    )
    on = parser().parse_args(session_argv(dataclasses.replace(spec, adaptive=True))[4:])
    assert on.no_adapt is False


def test_a_login_sessions_compositor_hears_them_through_its_environment() -> None:
    settings = _settings(SLOW_LINK, login=True)
    fake = SimpleNamespace(table=SimpleNamespace(settings=settings, max_pixels=lambda kind: 1 << 20))
    env = dict(
        e.split("=", 1)
        for e in Logins._compositor_env(fake, "s1", "x" * 32, (800, 600), 1, Kind.SESSION)  # type: ignore[arg-type]
    )
    args = parser().parse_args(options_from_environment(["--", "foot"], env))
    assert (args.bitrate, args.zstd_level, args.no_adapt, args.video_scaling) == (
        2_000_000,
        12,
        True,
        "always",
    )
    # The command line wins over the environment, as for every other option.
    args = parser().parse_args(options_from_environment(["--bitrate", "500000", "--", "foot"], env))
    assert args.bitrate == 500_000


def test_bad_values_on_the_session_command_line_are_refused_with_the_option_named() -> None:
    import pytest

    for argv in (
        ["--bitrate", "fast"],
        ["--bitrate", "10"],
        ["--zstd-level", "30"],
        ["--video-scaling", "x"],
    ):
        with pytest.raises(SystemExit) as err:
            parser().parse_args([*argv, "--", "foot"])
        assert err.value.code == 2

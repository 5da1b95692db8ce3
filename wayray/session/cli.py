"""``wrsrvd session``: the session compositor process that wrsrvd (or wrsessd) starts for each session.

    wrsrvd session [--link PATH] [--session-id ID] [--size WxH] [--scale N] [--refresh HZ]
                   [--idle-fps N] [--socket NAME] [--decorations client|server] [--no-video] [--no-x11]
                   [--bitrate BPS] [--zstd-level N] [--no-adapt]
                   [--orphan-timeout S] [--screenshot PATH] [--subreaper] [--log FILE]
                   [-- COMMAND [ARGS...]]

The link's details come from the arguments or the environment (``WAYRAY_LINK``,
``WAYRAY_LINK_SESSION``, ``WAYRAY_LINK_SERVER_UID``); the per-session secret only from the inherited
pipe ``WAYRAY_LINK_SECRET_FD`` names (docs/link.md §1). The Wayland
socket is ``--socket``, else ``WAYRAY_WAYLAND_DISPLAY`` (wrsessd's compositor contract), else the first
free ``wayray-N`` in ``$XDG_RUNTIME_DIR``.

The output and encoder options may come from the environment too (:data:`ENV_OPTIONS`): when wrsessd
starts the compositor, its command is fixed by the launcher's configuration, and wrsrvd passes its
instance's settings in the session's environment. An option on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from wayray.codec import EncoderSettings
from wayray.codec.settings import VIDEO_SCALE_MODES
from wayray.common.errors import UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.sizes import OUTPUT_SIZE
from wayray.compositor.limits import check_output_size, fit_output_size, set_max_pixels
from wayray.compositor.session import Decorations
from wayray.config import AudioPolicy

#: Environment variables standing for options (wrsrvd in launcher mode sets them; argv wins).
ENV_OPTIONS = (
    ("WAYRAY_SESSION_SIZE", "--size"),
    ("WAYRAY_SESSION_SCALE", "--scale"),
    ("WAYRAY_SESSION_REFRESH", "--refresh"),
    ("WAYRAY_SESSION_IDLE_FPS", "--idle-fps"),
    ("WAYRAY_SESSION_ORPHAN_TIMEOUT", "--orphan-timeout"),
    ("WAYRAY_SESSION_MAX_PIXELS", "--max-pixels"),
    ("WAYRAY_SESSION_AUDIO", "--audio"),
    ("WAYRAY_SESSION_AUDIO_BITRATE", "--audio-bitrate"),
    ("WAYRAY_SESSION_BITRATE", "--bitrate"),
    ("WAYRAY_SESSION_ZSTD_LEVEL", "--zstd-level"),
    ("WAYRAY_SESSION_VIDEO_SCALING", "--video-scaling"),
)
#: The session's window manager, a JSON array (wrsessd passes session.toml's window_manager in it).
WINDOW_MANAGER_ENV = "WAYRAY_WINDOW_MANAGER"
#: "0" stands for --no-video.
ENV_VIDEO = "WAYRAY_SESSION_VIDEO"
#: "0" stands for --no-x11 (policy.x11 off).
ENV_X11 = "WAYRAY_SESSION_X11"
#: "0" stands for --no-adapt (encoder.adaptive off).
ENV_ADAPT = "WAYRAY_SESSION_ADAPT"


def options_from_environment(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` with the options the environment gives (and argv does not) put in front of it."""
    given = set(argv[: argv.index("--")] if "--" in argv else argv)
    given |= {a.partition("=")[0] for a in given}
    extra: list[str] = []
    for name, flag in ENV_OPTIONS:
        value = env.get(name)
        if value and flag not in given:
            extra += [flag, value]
    if env.get(ENV_VIDEO) == "0" and "--no-video" not in given:
        extra.append("--no-video")
    if env.get(ENV_X11) == "0" and "--no-x11" not in given:
        extra.append("--no-x11")
    if env.get(ENV_ADAPT) == "0" and "--no-adapt" not in given:
        extra.append("--no-adapt")
    return extra + argv


def _bitrate(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bit rate in bit/s (e.g. 8000000)") from None
    if not 10_000 <= value <= 10**12:
        raise argparse.ArgumentTypeError(f"bit rate {value} is out of range (10000 to 10^12 bit/s)")
    return value


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    """encoder.bitrate, encoder.zstd_level, encoder.adaptive, encoder.video_scaling."""
    p.add_argument(
        "--bitrate",
        type=_bitrate,
        default=8_000_000,
        metavar="BPS",
        help="video bit rate of a whole-screen video, in bit/s (8000000; encoder.bitrate)",
    )
    p.add_argument(
        "--zstd-level",
        type=int,
        choices=range(1, 23),
        default=5,
        metavar="N",
        help="zstd level of small lossless regions such as text, 1 to 22 (5; encoder.zstd_level)",
    )
    p.add_argument(
        "--no-adapt",
        action="store_true",
        help="do not adapt the video bit rate and frame rate to the viewer's link (encoder.adaptive)",
    )
    p.add_argument(
        "--video-scaling",
        choices=VIDEO_SCALE_MODES,
        default="auto",
        help="big video regions at half size for a viewer that scales them up: when encoding cannot "
        "keep up (auto), always or never (encoder.video_scaling)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrsrvd session",
        description="Run one WayRay session: a headless compositor with COMMAND inside, encoding its "
        "frames for the viewer wrsrvd attaches. Started by wrsrvd or wrsessd, not by hand "
        "(`wrsrvd compositor` runs a compositor alone).",
    )
    p.add_argument("--link", metavar="PATH", help="wrsrvd's link socket (default: $WAYRAY_LINK)")
    p.add_argument("--session-id", metavar="ID", help="the registry's session id ($WAYRAY_LINK_SESSION)")
    p.add_argument(
        "--size", type=OUTPUT_SIZE, default=(1280, 720), metavar="WxH", help="output size (1280x720)"
    )
    p.add_argument("--scale", type=int, default=1, choices=(1, 2, 3, 4), help="output scale (1)")
    p.add_argument("--refresh", type=float, default=60.0, metavar="HZ", help="frame rate while viewed (60)")
    p.add_argument(
        "--idle-fps", type=float, default=1.0, metavar="N", help="frame rate while nobody views it (1)"
    )
    p.add_argument("--socket", metavar="NAME", help="Wayland socket name ($WAYRAY_WAYLAND_DISPLAY)")
    p.add_argument("--decorations", choices=("client", "server"), default="client")
    p.add_argument("--no-video", action="store_true", help="send everything losslessly (no H.264)")
    _add_encoder_options(p)
    p.add_argument(
        "--no-x11",
        action="store_true",
        help="no X display for X11 programs (default: one, served by Xwayland from the first X client)",
    )
    p.add_argument(
        "--orphan-timeout",
        type=float,
        default=24 * 3600.0,
        metavar="S",
        help="end the session when wrsrvd stays unreachable this long (86400; 0: never)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="never make the output larger than N pixels, whatever a viewer asks (16384x16384)",
    )
    p.add_argument("--screenshot", type=Path, metavar="PATH", help="write a PNG here on SIGUSR1")
    p.add_argument(
        "--window-manager",
        metavar="COMMAND",
        help="the session's window manager, started by the compositor as the one client that may "
        "manage windows (docs/wm-protocol.md); default: $WAYRAY_WINDOW_MANAGER (a JSON array, as "
        "wrsessd passes session.toml's window_manager), else the built-in floating one",
    )
    p.add_argument(
        "--audio",
        choices=[str(a) for a in AudioPolicy],
        default=str(AudioPolicy.PLAYBACK),
        help="the session's sound (/usr/share/doc/wayray/audio.md): off starts no sound server; playback "
        "(the default) and playback+microphone start one, with a sink WayRay and a source WayRay microphone",
    )
    p.add_argument(
        "--audio-bitrate", type=int, default=96, metavar="KBPS", help="Opus bit rate in kbit/s (96)"
    )
    p.add_argument(
        "--subreaper",
        action="store_true",
        help="keep the session's programs together: a parent process adopts those that leave the "
        "session (nohup, setsid) and ends them with it (wrsrvd passes this; wrsessd does it itself)",
    )
    p.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="write the session's output (this process's log and its programs' output) to FILE, at most "
        "4 MiB, the part before kept as FILE.old (implies --subreaper)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    return p


@cli_entry("wrsrvd session")
def main(argv: list[str] | None = None) -> int:
    from wayray.session.process import SessionOptions, link_settings_from_environment, run_session

    args = parser().parse_args(
        options_from_environment(list(sys.argv[1:] if argv is None else argv), dict(os.environ))
    )
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if command and shutil.which(command[0]) is None:
        raise UsageError(f"{command[0]}: command not found")
    if args.max_pixels is not None:
        if args.max_pixels < 320 * 200:
            raise UsageError(f"--max-pixels {args.max_pixels}: at least {320 * 200} (320x200)")
        set_max_pixels(args.max_pixels)
        args.size = fit_output_size(args.size[0], args.size[1], args.scale)
    try:
        check_output_size(args.size[0], args.size[1], args.scale)
    except WayRayError as err:
        raise UsageError(err.message) from None
    if args.refresh <= 0 or args.idle_fps < 0:
        raise UsageError("--refresh must be positive and --idle-fps not negative")
    if not 16 <= args.audio_bitrate <= 256:
        raise UsageError(f"--audio-bitrate {args.audio_bitrate}: from 16 to 256 kbit/s")
    if args.log is not None and not args.log.is_absolute():
        raise UsageError(f"--log {args.log}: give an absolute path")
    if args.subreaper or args.log is not None:
        from wayray.session.keeper import split

        # From here on this is the session compositor; the keeper stays behind as its parent. It gets
        # no part of the secret: it closes the pipe that carries it. (A session forked from the
        # session parent split off its keeper before its own code ran: this does nothing then.)
        secret_fd = os.environ.get("WAYRAY_LINK_SECRET_FD", "")
        split(args.log, close_fds=(int(secret_fd),) if secret_fd.isdigit() else ())
    from wayray.session import memory

    memory.one_arena()  # before any thread starts (the keeper, split off above, has none)
    env = dict(os.environ)
    link = link_settings_from_environment(
        env,
        link=args.link,
        session_id=args.session_id,
        orphan_timeout=args.orphan_timeout or None,
    )
    for name in ("WAYRAY_LINK_SECRET", "WAYRAY_LINK_SECRET_FD"):
        os.environ.pop(name, None)  # children never see the secret, nor a number for a closed descriptor
    runtime = env.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.isdir(runtime):
        raise WayRayError(
            "XDG_RUNTIME_DIR is not set or not a directory", hint="wrsrvd sets it for its sessions"
        )
    window_manager = _window_manager(args.window_manager, env)
    setup("wrsrvd-session", verbose=args.verbose)
    opts = SessionOptions(
        link=link,
        command=tuple(command),
        runtime_dir=Path(runtime),
        size=args.size,
        scale=args.scale,
        refresh_hz=args.refresh,
        # 0 means "no frames while detached": the compositor needs a rate, so one an hour.
        idle_hz=args.idle_fps or 1 / 3600,
        socket_name=args.socket or env.get("WAYRAY_WAYLAND_DISPLAY") or None,
        decorations=Decorations(args.decorations),
        encoder=EncoderSettings(
            video=not args.no_video,
            video_bitrate=args.bitrate,
            video_min_bitrate=min(100_000, args.bitrate),
            video_fps=max(1, round(args.refresh)),
            zstd_level_small=args.zstd_level,
            adaptive=not args.no_adapt,
            video_scale_mode=args.video_scaling,
        ),
        screenshot=args.screenshot,
        audio=AudioPolicy(args.audio),
        audio_bitrate=args.audio_bitrate,
        x11=not args.no_x11,
        window_manager=window_manager,
    )
    return asyncio.run(run_session(opts, env))


def _window_manager(option: str | None, env: dict[str, str]) -> tuple[str, ...]:
    """--window-manager (a command line), else $WAYRAY_WINDOW_MANAGER (a JSON array of strings), which
    is taken out of the environment the session's programs get."""
    given = env.pop(WINDOW_MANAGER_ENV, None)
    os.environ.pop(WINDOW_MANAGER_ENV, None)
    if option is not None:
        try:
            return tuple(shlex.split(option))
        except ValueError as err:
            raise UsageError(f"--window-manager {option!r}: {err}") from None
    if not given:
        return ()
    try:
        argv = json.loads(given)
    except ValueError:
        argv = None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise UsageError(
            f"{WINDOW_MANAGER_ENV} is not a JSON array of strings",
            hint='wrsessd sets it from session.toml\'s window_manager, e.g. ["wr-wm-tiling"]',
        )
    return tuple(argv)

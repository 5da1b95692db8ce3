"""``wrsrvd compositor``: run one session compositor by hand, with a command inside it.

    wrsrvd compositor [--size WxH] [--scale N] [--screenshot PATH] [--no-x11]
                      [--window-manager COMMAND] -- COMMAND [ARGS...]

The command runs with WAYLAND_DISPLAY and XDG_RUNTIME_DIR pointing at the compositor (and DISPLAY
at its X display, served by Xwayland from the first X client, unless --no-x11); the
compositor exits when it does, with its exit status. SIGUSR1 writes a PNG of the output to PATH.
SIGTERM or Ctrl-C stops the command (SIGTERM, then SIGKILL after 5 s) and the compositor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from wayray.common.errors import EXIT_FAILURE, UsageError, WayRayError, cli_entry
from wayray.common.log import setup
from wayray.common.sizes import OUTPUT_SIZE
from wayray.compositor.limits import check_output_size

log = logging.getLogger("wayray.compositor.cli")

STOP_GRACE = 5.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrsrvd compositor",
        description="Run a WayRay session compositor (headless Wayland) with COMMAND inside it.",
        epilog="Example: wrsrvd compositor --size 1280x720 --screenshot /tmp/s.png -- foot\n"
        "then `kill -USR1 <pid>` writes the screenshot.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--size",
        type=OUTPUT_SIZE,
        default=(1280, 720),
        metavar="WxH",
        help="output size in pixels (1280x720)",
    )
    p.add_argument("--scale", type=int, default=1, choices=(1, 2, 3, 4), help="output scale (1)")
    p.add_argument("--refresh", type=float, default=60.0, metavar="HZ", help="target frame rate (60)")
    p.add_argument("--socket", metavar="NAME", help="Wayland socket name (first free wayray-N)")
    p.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="write a PNG of the output here on SIGUSR1"
    )
    p.add_argument(
        "--decorations",
        choices=("client", "server"),
        default="client",
        help="preferred decoration mode (client)",
    )
    p.add_argument(
        "--no-x11",
        action="store_true",
        help="no X display for X11 programs (default: one, served by Xwayland from the first X client)",
    )
    p.add_argument(
        "--window-manager",
        metavar="COMMAND",
        help="a window manager speaking wayray_wm_v1 (/usr/share/doc/wayray/wm-protocol.md), e.g. "
        "wr-wm-tiling; default: the built-in floating one",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="debug logging (-vv: also libwayland's protocol trace)",
    )
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]", help="what to run inside"
    )
    return p


@cli_entry("wrsrvd")
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no COMMAND given", hint="wrsrvd compositor -- foot")
    if shutil.which(command[0]) is None:
        raise UsageError(f"{command[0]}: command not found")
    window_manager: tuple[str, ...] = ()
    if args.window_manager is not None:
        try:
            window_manager = tuple(shlex.split(args.window_manager))
        except ValueError as err:
            raise UsageError(f"--window-manager {args.window_manager!r}: {err}") from None
        if not window_manager or shutil.which(window_manager[0]) is None:
            raise UsageError(
                f"--window-manager {args.window_manager!r}: command not found",
                hint="wr-wm-tiling is WayRay's own tiling window manager",
            )
    args.window_manager = window_manager
    try:
        check_output_size(args.size[0], args.size[1], args.scale)
    except WayRayError as err:
        raise UsageError(err.message) from None
    if args.refresh <= 0:
        raise UsageError(f"--refresh {args.refresh}: the frame rate must be positive")
    setup("wrsrvd", verbose=args.verbose)
    if args.verbose >= 2:
        os.environ["WAYLAND_DEBUG"] = "server"  # read by wl_display_create; not passed to clients
    return asyncio.run(_run(args, command))


async def _run(args: argparse.Namespace, command: list[str]) -> int:
    from wayray.compositor.session import SessionCompositor

    own_runtime: tempfile.TemporaryDirectory[str] | None = None
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.isdir(runtime):
        own_runtime = tempfile.TemporaryDirectory(prefix="wayray-run-")
        os.chmod(own_runtime.name, 0o700)
        runtime = own_runtime.name
        log.info("XDG_RUNTIME_DIR is not set or not a directory; using %s", runtime)
    comp = SessionCompositor(
        size=args.size,
        scale=args.scale,
        refresh_hz=args.refresh,
        socket_name=args.socket,
        runtime_dir=runtime,
        decorations=args.decorations,
        x11=not args.no_x11,
        window_manager=args.window_manager,
    )
    loop = asyncio.get_running_loop()
    if args.screenshot is not None:
        path: Path = args.screenshot

        def shot() -> None:
            if not comp.running:
                log.warning("SIGUSR1 before the compositor was up; no screenshot")
                return
            try:
                comp.screenshot(path)
                log.info("screenshot written to %s", path)
            except OSError as err:
                log.error("cannot write the screenshot to %s: %s", path, err)

        # Installed before the socket exists: whoever sees the socket may signal at once.
        loop.add_signal_handler(signal.SIGUSR1, shot)
    try:
        await comp.start()
        env = comp.client_env()
        try:
            proc = await asyncio.create_subprocess_exec(*command, env=env)
        except OSError as err:
            raise WayRayError(f"cannot run {command[0]}: {err}") from err
        log.info("running %s (pid %d) on %s", " ".join(command), proc.pid, comp.socket_name)
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            log.info("stopping %s", command[0])
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), STOP_GRACE)
            except TimeoutError:
                proc.kill()
                await waiter
        stopper.cancel()
        rc = waiter.result()
        log.info("%s exited with status %d", command[0], rc)
        return rc if rc >= 0 else 128 - rc if rc > -128 else EXIT_FAILURE
    finally:
        await comp.close()
        if own_runtime is not None:
            own_runtime.cleanup()


if __name__ == "__main__":
    sys.exit(main())

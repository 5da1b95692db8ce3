"""What the benchmarks that run Debian's xpra as a peer share (bench/web_vs_xpra.py, bench/audio_peers.py):
an environment that keeps xpra's files in the bench's own directory, a free X display number, and
making sure the Xvfb xpra started for a display is gone after its server."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

#: xpra starts its helpers (the sound query, the sound processes, its encoders) as `python3.11
#: /usr/bin/xpra`, found on PATH: the system's interpreter first, or a pyenv shim would run them
#: without Debian's gi modules.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DROP = ("PULSE_", "DISPLAY", "WAYLAND_", "DBUS_", "XAUTHORITY")


def environment(directory: Path, home: Path, runtime: Path) -> dict[str, str]:
    """The environment for an xpra server or client whose files stay under ``directory``: its HOME,
    its XDG_RUNTIME_DIR and its X authority file (xpra writes to ~/.Xauthority of the real home
    otherwise)."""
    xauthority = directory / "Xauthority"
    xauthority.touch(mode=0o600)  # xpra takes XAUTHORITY only if the file exists; else the user's home's
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), LANG="C.UTF-8", PATH=SYSTEM_PATH,
               XAUTHORITY=str(xauthority))  # fmt: skip
    return env


def free_display(start: int = 170, avoid: int | None = None) -> int:
    for n in range(start, 400):
        if (
            n != avoid
            and not Path(f"/tmp/.X{n}-lock").exists()
            and not Path(f"/tmp/.X11-unix/X{n}").exists()
        ):
            return n
    raise SystemExit("no free X display number")


def end_xvfb(display: int) -> None:
    """Ends the Xvfb xpra started for ``display`` if it outlived its server (xpra runs it in a session
    of its own); only that process, found by its own command line."""
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0] == f"Xvfb-for-Xpra-:{display}":
            try:
                p.terminate()
                p.wait(10)
            except psutil.TimeoutExpired:
                p.kill()
            except psutil.Error:
                pass

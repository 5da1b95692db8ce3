"""The README's demo: what `./tools/demo` runs.

It starts the WayRay server in standalone mode (`wrsrvd --standalone -- foot`, the embedded default
configuration, on a free UDP port of 127.0.0.1, its state in a temporary directory), then a viewer
that presents the server's access key: a window when a Wayland display and
the window backend are there, else the headless viewer. The viewer types `echo Hello from WayRay`
into foot through the session, writes a snapshot of what it shows and prints where; then everything
keeps running until Ctrl-C (or `--once`: stop right after the snapshot, for CI), which stops the
viewer, ends the session and stops the server.

`./tools/demo --config` shows the appliance side instead: the configuration checked, explained and
rendered into systemd units and SMF manifests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import wayray
from wayray.admin import cli as wradm
from wayray.common.errors import WayRayError, cli_entry

EXAMPLES = Path(wayray.__file__).resolve().parent.parent / "etc" / "wayray"
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0

DEMO_SCRIPT = """\
# wait until foot is up and drawn, then use it
settle 1000
type echo Hello from WayRay
key Return
settle 700
"""


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise WayRayError(f"{name} is not installed here", hint="run ./tools/bootstrap")
    return found


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the display demo ------------------------------------------------------------------------------


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="wayray-demo-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("WAYRAY_", "NOTIFY_"))}
        runtime = self.env.get("XDG_RUNTIME_DIR")
        if not runtime or not os.path.isdir(runtime):
            xdg = self.tmp / "xdg"
            xdg.mkdir(mode=0o700)
            self.env["XDG_RUNTIME_DIR"] = str(xdg)
        self.server: subprocess.Popen[str] | None = None
        #: The demo server's access key (in its own state directory, not your standalone server's).
        self.key_file = self.tmp / "state" / "access.key"
        self.client: subprocess.Popen[bytes] | None = None
        self.banner: list[str] = []

    def run(self) -> int:
        args = self.args
        window = not args.headless and self._window_possible()
        port = args.port or _free_port()
        snapshot = (args.snapshot or Path(tempfile.gettempdir()) / "wayray-demo.png").resolve()
        print(f"WayRay demo: a standalone server running foot, and a viewer ({self.tmp})", flush=True)
        self._start_server(port)
        fingerprint = self._fingerprint()
        print("".join(f"  {line}" for line in self.banner), end="", flush=True)
        script = self.tmp / "demo-script.txt"
        script.write_text(DEMO_SCRIPT)
        viewer = [
            _tool("wrclient"),
            f"127.0.0.1:{port}",
            "--fingerprint",
            fingerprint,
            "--token",
            "wayray-demo",
            # The server asks every viewer for its key; this one is the demo's, not your own server's.
            "--access-key-file",
            str(self.key_file),
            "--script",
            str(script),
            "--snapshot",
            str(snapshot),
            "--timeout",
            "60",
        ]
        if window:
            print("\nopening a WayRay window on your Wayland display", flush=True)
            viewer += ["--keep-open"] if not args.once else []
        else:
            print("\nno Wayland window here: using the headless viewer", flush=True)
            viewer += ["--headless"]
        print("$ " + " ".join(["wrclient", *viewer[1:]]), flush=True)
        self.client = subprocess.Popen(
            viewer,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=open(self.tmp / "wrclient.log", "wb"),  # noqa: SIM115
        )
        assert self.client.stdout is not None
        for raw in self.client.stdout:
            line = raw.decode(errors="replace")
            print(f"  {line}", end="", flush=True)
            if "snapshot written" in line:
                break
        if not snapshot.exists():
            code = self.client.wait()
            log = (self.tmp / "wrclient.log").read_text(errors="replace")
            raise WayRayError(f"the viewer failed (exit {code}):\n{log[-3000:]}")
        print(f"\nthe session, as the viewer shows it: {snapshot}", flush=True)
        if args.once:
            self.client.wait(60)
            return 0
        print(
            f"\nstill serving: connect another viewer with\n"
            f"  wrclient 127.0.0.1:{port} --fingerprint {fingerprint} --access-key-file {self.key_file} "
            "--token wayray-demo --headless --snapshot /tmp/again.png\n"
            "(the same token shows the same session; Ctrl-C stops everything)",
            flush=True,
        )
        try:
            while self.server is not None and self.server.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
        return 0

    def _window_possible(self) -> bool:
        from wayray.client.backends import wayland_backend_available, wayland_display_available

        return wayland_display_available(self.env) is None and wayland_backend_available() is None

    def _start_server(self, port: int) -> None:
        argv = [
            _tool("wrsrvd"),
            "--standalone",
            "--port",
            str(port),
            "--listen",
            "127.0.0.1",
            "--state-dir",
            str(self.tmp / "state"),
            "--runtime-dir",
            str(self.tmp / "run"),
        ]
        if os.geteuid() == 0:
            print("(running as root: passing --allow-root; the session runs as root too)", flush=True)
            argv.append("--allow-root")
        argv += ["--", "foot"]
        self.server = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=open(self.tmp / "wrsrvd.log", "wb"),  # noqa: SIM115
            text=True,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops the server in order
        )
        assert self.server.stdout is not None
        threading.Thread(target=self._read_banner, args=(self.server.stdout,), daemon=True).start()

    def _read_banner(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.banner.append(line)

    def _fingerprint(self) -> str:
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            text = "".join(self.banner)
            m = re.search(r"fingerprint\s+(sha256:[0-9a-f]{64})", text)
            if m and "Ctrl-C" in text:
                return m[1]
            if self.server is not None and self.server.poll() is not None:
                break
            time.sleep(0.05)
        log = (self.tmp / "wrsrvd.log").read_text(errors="replace")
        raise WayRayError(f"wrsrvd did not start:\n{log[-3000:]}")

    def stop(self) -> None:
        if self.client is not None and self.client.poll() is None:
            self.client.send_signal(signal.SIGTERM)
            try:
                self.client.wait(15)
            except subprocess.TimeoutExpired:
                self.client.kill()
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGINT)  # standalone: Ctrl-C ends the sessions too
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- the configuration walkthrough ------------------------------------------------------------------


def _step(title: str, argv: list[str]) -> int:
    print(f"\n$ wradm {' '.join(argv)}    # {title}", flush=True)
    return wradm.main(argv)


def _listing(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_symlink():
            print(f"    {rel} -> {path.readlink()}")
        elif path.is_file():
            print(f"    {rel}")


#: The walkthrough's step that makes the operator's one edit (``[server.main] enabled = true``).
ENABLE: list[str] = []


def _enable_main(servers: Path) -> None:
    """The edit the shipped servers.toml asks for: ``enabled = false`` to ``true`` in [server.main]."""
    text = servers.read_text(encoding="utf-8")
    head, sep, rest = text.partition("[server.main]\n")
    edited = rest.replace("enabled = false", "enabled = true", 1)
    if not sep or edited == rest:
        raise WayRayError(f"{servers}: no `enabled = false` in [server.main] to change")
    servers.write_text(head + sep + edited, encoding="utf-8")
    print(f"\n$ edit {servers}    # the one edit: [server.main] enabled = true")


def config_walkthrough(keep: bool) -> int:
    if not EXAMPLES.is_dir():
        raise WayRayError(
            f"{EXAMPLES}: shipped examples not found", hint="run the demo from a source checkout"
        )
    tmp = Path(tempfile.mkdtemp(prefix="wayray-demo-"))
    try:
        empty = tmp / "empty"
        empty.mkdir()
        root = tmp / "root"
        shutil.copytree(EXAMPLES, root / "etc" / "wayray")
        out = tmp / "out"
        print(f"WayRay demo: the appliance configuration (temporary tree: {tmp})")
        steps = [
            ("nothing configured: the embedded defaults", ["--root", str(empty), "check"]),
            ("the shipped examples: as installed, they serve nothing", ["--root", str(root), "check"]),
            ("", ENABLE),
            ("after the one edit", ["--root", str(root), "check"]),
            (
                "where each value of server 'main' comes from",
                ["--root", str(root), "show", "--origin", "server.main"],
            ),
            (
                "systemd units",
                ["--root", str(root), "render", "--target", "systemd", "--out", str(out / "systemd")],
            ),
            (
                "SMF manifests and site profile",
                ["--root", str(root), "render", "--target", "smf", "--out", str(out / "smf")],
            ),
            (
                "what `apply` would do under systemd",
                ["--root", str(root), "apply", "--target", "systemd", "--dry-run"],
            ),
        ]
        for title, step in steps:
            if step is ENABLE:
                _enable_main(root / "etc" / "wayray" / "servers.toml")
                continue
            code = _step(title, step)
            if code != 0:
                raise WayRayError(f"`wradm {' '.join(step)}` failed with exit status {code}")
        for target in ("systemd", "smf"):
            print(f"\n{target} files written:")
            _listing(out / target)
        print(
            "\ndone. `./tools/test tests/supervisor` checks such files with systemd-analyze and the SMF DTD."
        )
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp)
    return 0


@cli_entry("wayray-demo")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--once", action="store_true", help="stop after the snapshot (CI)")
    parser.add_argument(
        "--headless", action="store_true", help="use the headless viewer even with a display"
    )
    parser.add_argument("--snapshot", type=Path, metavar="PATH", help="where to write the snapshot")
    parser.add_argument("--port", type=int, metavar="P", help="UDP port (default: a free one)")
    parser.add_argument("--config", action="store_true", help="show the configuration walkthrough instead")
    parser.add_argument("--keep", action="store_true", help="keep the temporary files and print where")
    args = parser.parse_args(argv)
    if args.config:
        return config_walkthrough(args.keep)
    demo = Demo(args)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return demo.run()
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        demo.stop()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())

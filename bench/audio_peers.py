"""The peers of ``bench/audio_mouth_to_ear.py`` (issue 13 §5): the same clicks, the same kiosk sound
server, the same two recorders, through PulseAudio's own network tunnel and through xpra.

- **tunnel**: a "session" PulseAudio whose default sink is ``module-tunnel-sink`` to the kiosk's
  PulseAudio (which loads ``module-native-protocol-tcp``), as an operator would forward a remote
  host's sound with PulseAudio alone: raw PCM over TCP, no codec. The mouth is the tunnel sink's
  monitor, the ear the kiosk's speaker.
- **xpra**: Debian's xpra 3.1.3 (``apt-get install xpra``; its sound forwarding needs
  ``python3-gst-1.0``, ``gstreamer1.0-plugins-base``, ``gstreamer1.0-plugins-good`` and
  ``gstreamer1.0-pulseaudio``: the bench says what is missing), ``xpra start`` with its own per-session
  PulseAudio, the clicks played by the session's command; ``xpra attach`` (its GTK client, on an Xvfb
  of its own as it needs a display) plays into the kiosk's PulseAudio. The mouth is xpra's
  ``Xpra-Speaker`` monitor. Codec: xpra's own choice (printed).

Each returns what WayRay's run returns: latencies (ms), CPU while silent and while playing (% of one
core, by process group), and the bytes per second on the link (through a counting TCP relay).
Nothing of xpra's code is used here: its server and client run unchanged.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench import xpra_peer
from bench.relays import Traffic, relay

#: After the player is done: the slowest path's last clicks still to come (as bench/audio_mouth_to_ear.py).
TAIL_S = 8.0


def group_cpu(groups: dict[str, Callable[[], list[int]]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group's processes."""
    out = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids():
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[name] = total
    return out


def tree(pid: int, keep: Callable[[str], bool] = lambda name: True) -> list[int]:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
    out = []
    for p in procs:
        try:
            if keep(p.name()):
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


def phases(
    groups: dict[str, Callable[[], list[int]]],
    traffic: Traffic | None,
    seconds: float,
    start_playing: Callable[[], None],
) -> dict[str, Any]:
    """CPU and link bytes over ``seconds`` of silence, then while playing (from 1 s after the start)."""
    out: dict[str, Any] = {}
    for phase in ("silent", "playing"):
        if phase == "playing":
            start_playing()
            time.sleep(1.0)
        c0, t0 = group_cpu(groups), time.monotonic()
        time.sleep(seconds)
        c1, t1 = group_cpu(groups), time.monotonic()
        out[f"cpu_{phase}"] = {k: 100 * (c1[k] - c0[k]) / (t1 - t0) for k in c0}
        if traffic is not None:
            out[f"bytes_per_s_{phase}"] = traffic.bytes(t0, t1, True) / (t1 - t0)
            out[f"bytes_per_s_{phase}_back"] = traffic.bytes(t0, t1, False) / (t1 - t0)
    return out


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise SystemExit(f"waited {timeout:g} s for {what}")


def pactl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pactl", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=30
    )


def plain_pulseaudio(directory: Path, script: str) -> subprocess.Popen[bytes]:
    """A PulseAudio of the bench's own in ``directory``, configured by ``script`` (as KioskSound's)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "server.pa").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DBUS_SESSION_BUS"))}
    env.update(PULSE_RUNTIME_PATH=str(directory), PULSE_STATE_PATH=str(directory))
    return subprocess.Popen(
        ["pulseaudio", "-n", "-F", str(directory / "server.pa"), "--daemonize=no", "--exit-idle-time=-1",
         "--use-pid-file=no", "--disable-shm=yes", "--realtime=no", "--log-target=stderr",
         "--log-level=error"],
        env=env, stdin=subprocess.DEVNULL, stderr=open(directory / "pulseaudio.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def tunnel_run(tmp: Path, clicks: Path, kiosk: Any, recorder: Any, seconds: float) -> dict[str, Any]:
    """PulseAudio's module-tunnel-sink from a "session" PulseAudio to the kiosk's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        tcp_port = s.getsockname()[1]
    loaded = pactl(kiosk.env, "load-module", "module-native-protocol-tcp", f"port={tcp_port}",
                   "listen=127.0.0.1", "auth-anonymous=1")  # fmt: skip
    if loaded.returncode != 0:
        raise SystemExit(f"the kiosk's PulseAudio did not take module-native-protocol-tcp: {loaded.stderr}")
    traffic = Traffic()
    port = relay(tcp_port, traffic, udp=False)
    sdir = tmp / "tunnel-session"
    senv = {"PULSE_SERVER": f"unix:{sdir / 'native'}", "PULSE_COOKIE": str(sdir / "cookie")}
    session = plain_pulseaudio(
        sdir,
        f"load-module module-native-protocol-unix socket={sdir / 'native'} auth-anonymous=1 "
        "auth-cookie-enabled=0\n"
        f"load-module module-tunnel-sink server=tcp:127.0.0.1:{port} sink=speaker sink_name=tunnel\n"
        "set-default-sink tunnel\n",
    )
    recorders, player = [], None
    try:
        wait_for(lambda: pactl(senv, "info").returncode == 0, "the tunnel's PulseAudio")
        wait_for(lambda: kiosk.players() >= 1, "the tunnel to play into the kiosk's speaker")
        groups = {
            "session PulseAudio (tunnel sink)": lambda: [session.pid],
            "kiosk PulseAudio": lambda: [kiosk._server.pid],
        }
        mouth = recorder(senv, "tunnel.monitor")
        ear = recorder(kiosk.env, "speaker.monitor")
        recorders += [mouth, ear]
        time.sleep(1.0)

        def play() -> None:
            nonlocal player
            player = subprocess.Popen(["paplay", str(clicks)], env={**os.environ, **senv})

        out = phases(groups, traffic, seconds, play)
        for phase in ("silent", "playing"):  # the session's PulseAudio is the relay's client: swap
            k = f"bytes_per_s_{phase}"
            out[k], out[f"{k}_back"] = out[f"{k}_back"], out[k]
        assert player is not None
        player.wait(600)
        time.sleep(TAIL_S)
        out["said"], out["heard"] = mouth.onsets(), ear.onsets()
        out["codec"] = "none (s16le 48 kHz stereo PCM)"
        return out
    finally:
        for r in recorders:
            r.stop()
        stop(player)
        stop(session)


def xpra_missing(env: dict[str, str]) -> str | None:
    """What xpra's sound forwarding needs and is not installed (None: all there). Also builds the
    GStreamer registry of ``env`` (GST_REGISTRY), which xpra's sound query would otherwise build
    within its own time limit, and give up under load ("failed to query sound subsystem")."""
    if shutil.which("xpra") is None:
        return "xpra (apt-get install xpra)"
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None); "
        "missing = [n for n in ('opusenc', 'opusdec', 'pulsesrc', 'pulsesink', 'oggmux') "
        "if Gst.ElementFactory.find(n) is None]; print(' '.join(missing))"
    )
    got = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True, env=env)
    if got.returncode != 0:
        return "python3-gst-1.0 (apt-get install python3-gst-1.0)"
    if got.stdout.strip():
        return (
            f"GStreamer elements {got.stdout.strip()} (apt-get install gstreamer1.0-plugins-base "
            "gstreamer1.0-plugins-good gstreamer1.0-pulseaudio)"
        )
    for tool in ("Xvfb",):
        if shutil.which(tool) is None:
            return "Xvfb (apt-get install xvfb)"
    return None


def xpra_run(
    tmp: Path, clicks: Path, kiosk: Any, recorder: Any, seconds: float, codec: str | None = None
) -> dict[str, Any]:
    """xpra's speaker forwarding: its server's PulseAudio → GStreamer → the link → ``xpra attach``."""
    xdir = tmp / "xpra"
    xdir.mkdir(mode=0o700)
    registry = {"GST_REGISTRY": str(xdir / "gst-registry.bin")}
    missing = xpra_missing({**os.environ, **registry})
    if missing is not None:
        raise SystemExit(f"xpra's sound cannot be measured here: {missing} is missing")
    home = xdir / "home"
    home.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    traffic = Traffic()
    front = relay(port, traffic, udp=False)
    script = xdir / "session.sh"
    script.write_text(
        f'#!/bin/sh\nenv > "{xdir}/session-env.txt"\n'
        f'while [ ! -e "{xdir}/go" ]; do sleep 0.05; done\n'
        f'paplay "{clicks}"; touch "{xdir}/done"\nexec sleep 3600\n'
    )
    script.chmod(0o755)
    sxdg, cxdg = xdir / "server-xdg", xdir / "client-xdg"
    for d in (sxdg, cxdg):
        d.mkdir(mode=0o700)
    display = xpra_peer.free_display(180)
    client_display: int | None = None
    server = client = xvfb = None
    recorders = []
    try:
        server = subprocess.Popen(
            ["xpra", "start", f":{display}", "--daemon=no", f"--bind-tcp=127.0.0.1:{port}",
             f"--socket-dirs={xdir}", "--mdns=no", "--pulseaudio=yes", "--speaker=on", "--microphone=off",
             "--notifications=no", "--dbus-launch=", "--dbus-proxy=no", "--dbus-control=no",
             "--systemd-run=no", "--webcam=no", "--printing=no", "--file-transfer=no", "--html=off",
             f"--start-child={script}", "--exit-with-children=no",
             *([f"--speaker-codec={codec}"] if codec else [])],
            env={**xpra_peer.environment(xdir, home, sxdg), **registry}, cwd=xdir, stdin=subprocess.DEVNULL,
            stdout=open(xdir / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
        )  # fmt: skip
        wait_for(lambda: b"xpra is ready" in (xdir / "server.log").read_bytes() or server.poll() is not None,
                 "xpra's server")  # fmt: skip
        if server.poll() is not None:
            raise SystemExit(f"xpra did not start: {(xdir / 'server.log').read_text()[-3000:]}")
        env_file = xdir / "session-env.txt"
        text = wait_for(lambda: env_file.exists() and env_file.read_text(), "the session's command")
        session_env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        if "PULSE_SERVER" not in session_env:
            raise SystemExit(
                f"xpra gave its session no PULSE_SERVER: {(xdir / 'server.log').read_text()[-3000:]}"
            )
        senv = {"PULSE_SERVER": session_env["PULSE_SERVER"]}
        if "PULSE_COOKIE" in session_env:
            senv["PULSE_COOKIE"] = session_env["PULSE_COOKIE"]
        wait_for(lambda: pactl(senv, "info").returncode == 0, "xpra's PulseAudio")
        client_display = xpra_peer.free_display(180, avoid=display)
        xvfb = subprocess.Popen(
            ["Xvfb", f":{client_display}", "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: Path(f"/tmp/.X11-unix/X{client_display}").exists(), "the client's Xvfb")
        client = subprocess.Popen(
            ["xpra", "attach", f"tcp://127.0.0.1:{front}/", "--speaker=on", "--microphone=off",
             "--webcam=no", "--tray=no", "--notifications=no", "--opengl=no", "--mdns=no",
             "--printing=no", "--file-transfer=no", "--clipboard=no",
             *([f"--speaker-codec={codec}"] if codec else [])],
            env={**xpra_peer.environment(xdir, home, cxdg), **registry, **kiosk.env,
                 "DISPLAY": f":{client_display}"},
            cwd=xdir, stdin=subprocess.DEVNULL, stdout=open(xdir / "client.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(
            lambda: kiosk.players() >= 1 or client.poll() is not None, "xpra's client to play", timeout=180
        )
        if client.poll() is not None:
            raise SystemExit(f"xpra attach ended: {(xdir / 'client.log').read_text()[-3000:]}")
        app = {"sh", "paplay", "sleep", "Xsession", "xmessage", "Xvfb"}  # Xvfb: the pictures' side
        sp, cp = server.pid, client.pid
        groups = {
            "xpra server (its PulseAudio, sound process)": lambda: tree(sp, lambda n: n not in app),
            "xpra client (sound process)": lambda: tree(cp),
            "kiosk PulseAudio": lambda: [kiosk._server.pid],
        }
        mouth = recorder(senv, "Xpra-Speaker.monitor")
        ear = recorder(kiosk.env, "speaker.monitor")
        recorders += [mouth, ear]
        time.sleep(1.0)
        out = phases(groups, traffic, seconds, lambda: (xdir / "go").touch())
        wait_for(lambda: (xdir / "done").exists(), "the clicks to be played", timeout=600)
        time.sleep(TAIL_S)
        out["said"], out["heard"] = mouth.onsets(), ear.onsets()
        log = (xdir / "client.log").read_text(errors="replace") + (xdir / "server.log").read_text(
            errors="replace"
        )
        used = [line for line in log.splitlines() if "sound source using" in line]
        codecs = sorted(
            {line.split(" using ", 1)[1].strip() for line in used if "codec" in line or "format" in line}
        )
        out["codec"] = "; ".join(codecs) or "see " + str(xdir / "client.log")
        return out
    finally:
        for r in recorders:
            r.stop()
        stop(client)
        stop(server)
        stop(xvfb)
        xpra_peer.end_xvfb(display)

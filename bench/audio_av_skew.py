"""Picture–sound skew on loopback: a flash-and-click clip played in a session, seen and heard at a kiosk.

    .venv/bin/python -m bench.audio_av_skew [--flashes 30] [--period 1.0]

Real processes: ``wrsrvd --standalone`` whose session runs bench/av_flash_client.py (a Wayland window
that turns white and plays a click at the same moment, then black again, once a period; under the
clicks a quiet bed, so the sound never stops, as with a film), and a ``wrclient --headless
--play-audio --stats`` whose sound server is a PulseAudio of its own (tests/e2e/kiosk_sound.py: a null
sink "speaker"). Everything runs on one machine, so one clock (CLOCK_MONOTONIC) times every hop:

- commit: the flash client flushed the white frame's commit to the compositor (its own log);
- mouth: the click's first sample reached the session's sink (``parec`` at 10 ms on its monitor, each
  chunk stamped on arrival, as bench/audio_mouth_to_ear.py does);
- eye: the headless viewer presented the first frame after the commit (its ``--stats`` ``shown_at``);
- ear: the click's first sample reached the kiosk's speaker (``parec`` at 10 ms on its monitor; the
  two recorders' own 10 ms cancel in ear − mouth).

Skew at the kiosk = ear − eye (positive: the sound comes after the picture). It holds the session
program's own sound delay (mouth − commit: its pacat's buffer and pipe, which a player compensates
for from what PulseAudio reports); WayRay's share is (ear − mouth) − (eye − commit). The load average
is printed with the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.audio_mouth_to_ear import TAIL_S, Recorder
from bench.av_player_clip import write_clip

CLIENT = Path(__file__).with_name("av_flash_client.py")
#: How long after its commit a flash's click may be heard and still count as this flash's (tones repeat
#: every 25 flashes; a loaded kiosk's buffers have been seen to hold half a second).
HEAR_WITHIN_S = 5.0


def session_script(flashes: int, period: float, log: Path, player: str | None, tmp: Path) -> str:
    """The session's command: the flash program, or ``player`` playing bench/av_player_clip.py's film
    (both wait for $HOME/go; LOG.done is made when the flashes are over)."""
    head = '#!/bin/sh\nenv > "$HOME/session-env.txt"\n'
    if player is None:
        return head + f'exec "{sys.executable}" "{CLIENT}" {flashes} {period} "{log}" "$HOME/go"\n'
    clip = tmp / "clip.mkv"
    write_clip(clip, flashes, period)
    argv = {
        "mpv": "mpv --no-config --vo=wlshm --ao=pulse --hwdec=no --no-osc --osd-level=0 --really-quiet "
        f'"{clip}"',
    }[player]
    return head + (
        'while [ ! -e "$HOME/go" ]; do sleep 0.05; done\n'
        f'{argv} > "$HOME/player.log" 2>&1\n'
        f'touch "{log}.done"\nexec sleep 3600\n'
    )


def run(
    tmp: Path, flashes: int, period: float, kiosk: Any, av_sync: bool = True, player: str | None = None
) -> dict[str, Any]:
    from tests.e2e.harness import Client, Harness, eventually

    h = Harness(tmp)
    recorders: list[Recorder] = []
    stats = tmp / "stats.json"
    log = h.home / "flashes.txt"
    try:
        script = h.write_script("session.sh", session_script(flashes, period, log, player, tmp))
        script.chmod(0o755)
        srv = h.server([str(script)])
        argv = h.client_argv(
            srv, "--play-audio", "--stats", str(stats), *(() if av_sync else ("--no-av-sync",))
        )
        with open(tmp / "viewer.out", "wb") as out, open(tmp / "viewer.err", "wb") as err:
            proc = subprocess.Popen(
                argv, env={**h.env, **kiosk.env}, cwd=h.home, stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True,
            )  # fmt: skip
        viewer = Client(proc, tmp / "viewer.out", tmp / "viewer.err")
        h.clients.append(viewer)
        srv.wait_linked()
        env_file = h.home / "session-env.txt"
        text = str(eventually(lambda: env_file.exists() and env_file.read_text(), "the session's command"))
        session_env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        mouth = Recorder({"PULSE_SERVER": session_env["PULSE_SERVER"]}, "wayray.monitor")
        ear = Recorder(kiosk.env, "speaker.monitor")
        recorders += [mouth, ear]
        if player is None:  # the bed plays from the start (a player's sound starts with its film)
            eventually(lambda: kiosk.players() == 1, "the kiosk to play")
        time.sleep(1.0)  # both recorders running
        (h.home / "go").touch()
        done = Path(f"{log}.done")
        eventually(done.exists, "the flashes to end", timeout=60 + 2 * flashes * period)
        time.sleep(TAIL_S)  # the last click through the kiosk's buffers, however long they have grown
        said, heard = mouth.onsets(), ear.onsets()
        viewer.signal(2)
        viewer.wait()
        data = json.loads(stats.read_text())
        lines = log.read_text().splitlines() if log.exists() else []
        commits = [(int(k), float(t)) for k, t in (line.split() for line in lines)]
        return {"commits": commits, "said": said, "heard": heard, "shown": data.get("shown_at", []),
                "audio": data.get("audio", {})}  # fmt: skip
    finally:
        for r in recorders:
            r.stop()
        said = h.home / "player.log"
        if player is not None and said.exists():
            print(f"  {player} said: {said.read_text(errors='replace').strip()[-2000:] or 'nothing'}")
        h.cleanup()


def first_after(times: list[float], t: float, within: float) -> float | None:
    return next((u for u in sorted(times) if 0 <= u - t < within), None)


def analyse(r: dict[str, Any], period: float) -> list[dict[str, float]]:
    """Per flash: the four times' differences (ms); a flash not both seen and heard is left out. The
    picture is the first frame presented after the commit, within a period (the next flash's)."""
    rows = []
    for k, commit in r["commits"]:
        tone = k % 25
        mouth = first_after([t for t, j in r["said"] if j == tone], commit, HEAR_WITHIN_S)
        ear = first_after([t for t, j in r["heard"] if j == tone], commit, HEAR_WITHIN_S)
        eye = first_after(r["shown"], commit, period)
        if mouth is None or ear is None or eye is None:
            missing = [
                n for n, v in (("session sink", mouth), ("kiosk speaker", ear), ("viewer", eye)) if v is None
            ]
            print(f"  flash {k}: nothing at the {' nor the '.join(missing)}")
            continue
        rows.append({
            "skew": (ear - eye) * 1000, "picture": (eye - commit) * 1000, "app": (mouth - commit) * 1000,
            "m2e": (ear - mouth) * 1000, "wayray_skew": ((ear - mouth) - (eye - commit)) * 1000,
        })  # fmt: skip
    return rows


def analyse_player(r: dict[str, Any], flashes: int, period: float) -> list[dict[str, float]]:
    """A player's film: no commit times, so each click heard at the kiosk is paired with the frame
    that started its flash (a frame shown after a gap of more than half a period: the frame ending a
    flash comes FLASH_S after the one starting it), the nearest within 0.4 of a period, and with the
    same click at the session's sink."""
    shown = sorted(r["shown"])
    starts = [t for i, t in enumerate(shown) if i > 0 and t - shown[i - 1] > period / 2]
    rows = []
    for ear, tone in r["heard"]:
        eye = min(starts, key=lambda t: abs(t - ear), default=None)
        mouth = max((t for t, j in r["said"] if j == tone and 0 <= ear - t < HEAR_WITHIN_S), default=None)
        if eye is None or abs(ear - eye) > 0.4 * period or mouth is None:
            print(f"  click at {ear:.3f} (tone {tone}): no flash shown near it, or not heard at the sink")
            continue
        rows.append({"skew": (ear - eye) * 1000, "m2e": (ear - mouth) * 1000})
    if len(rows) != flashes:
        print(f"  {len(rows)} clicks paired with a flash, of {flashes} flashes in the film")
    return rows


def describe(values: list[float]) -> str:
    v = sorted(values)
    p5, p95 = v[round(0.05 * (len(v) - 1))], v[round(0.95 * (len(v) - 1))]
    median = statistics.median(v)
    return f"median {median:+.0f} ms, p5 {p5:+.0f}, p95 {p95:+.0f}, min {v[0]:+.0f}, max {v[-1]:+.0f}"


def main() -> None:
    from tests.e2e.kiosk_sound import KioskSound

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flashes", type=int, default=30)
    p.add_argument("--period", type=float, default=1.0, help="seconds from one flash to the next")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every flash's figures here")
    p.add_argument(
        "--no-av-sync",
        dest="av_sync",
        action="store_false",
        help="the viewer does not ask for lip sync (wrclient --no-av-sync): the pictures are not held back",
    )
    p.add_argument(
        "--player",
        choices=["mpv"],
        help="a real player plays a flash-and-click film (bench/av_player_clip.py) instead of the flash "
        "program: it keeps its own pictures with its sound as players do, so the skew is WayRay's",
    )
    args = p.parse_args()
    if args.player and shutil.which(args.player) is None:
        raise SystemExit(f"{args.player} is not installed: apt-get install {args.player} (bench/README.md)")
    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores; {args.flashes} flashes; "
        f"lip sync {'on' if args.av_sync else 'off'}; {args.player or 'the flash program'}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="wayray-avskew-"))
    kiosk = KioskSound(tmp / "kiosk").start()
    load = os.getloadavg()[0]
    try:
        result = run(tmp, args.flashes, args.period, kiosk, args.av_sync, args.player)
    finally:
        kiosk.stop()
    print(f"load average {load:.1f} (end {os.getloadavg()[0]:.1f})")
    if args.player:
        rows = analyse_player(result, args.flashes, args.period)
    else:
        rows = analyse(result, args.period)
        print(f"{len(rows)} of {len(result['commits'])} flashes seen and heard")
    if rows:
        for key, what in (
            ("skew", "skew at the kiosk (ear - eye; + = sound late)"),
            ("picture", "picture: commit -> presented at the viewer"),
            ("app", "the program's own sound delay: commit -> session sink"),
            ("m2e", "sound: session sink -> kiosk speaker"),
            ("wayray_skew", "WayRay's share of the skew ((ear - mouth) - (eye - commit))"),
        ):
            if key in rows[0]:
                print(f"  {what}: {describe([row[key] for row in rows])}")
    audio = result["audio"]
    playback = audio.get("playback", {})
    print(
        f"  viewer: capture -> received median {audio.get('latency_ms_median')} ms; jitter buffer "
        f"{playback.get('buffer_ms')} ms (depth median {playback.get('depth_ms_median')} ms); sink buffer "
        f"{playback.get('sink_latency_ms')} ms (most {playback.get('sink_latency_ms_max')}); "
        f"late {playback.get('late')}, underruns {playback.get('underruns')}; delay reported for lip sync "
        f"{playback.get('delay_ms')} ms"
    )
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": rows, "audio": audio}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Adaptive encoding over a slow link: a full-screen video with a terminal on top, typed into while the
video plays, through a throttling relay, with the session's adaptation off (before) and on (after).

    .venv/bin/python -m bench.adaptive_link [--rates 2M,20M] [--rtt-ms 50] [--modes off,on]

Each run: ``wrsrvd --standalone`` with ``tests/e2e/clients/video.py`` (a panning photo-like picture
filling the 1280x720 output) and foot on top of it, a headless ``wrclient`` at 1280x720 connected
through ``bench.throttle.ThrottledRelay`` (the rate each way, ``--rtt-ms`` round trip, a 200 ms
drop-tail queue), ``WAYRAY_TRACE`` on in every process. After a warm-up the viewer types ``--keys``
characters 250 ms apart while the video plays. From the trace files (one clock for the machine):

- frames/s shown by the viewer during the typing;
- keypress → pixels: from the key leaving the viewer to the frame with foot's echo presented there
  (the trace joins a key to the first frame taken after foot's own commit);
- queue growth: each frame's delay from the session handing it to the link to the viewer presenting
  it, and how many frames were in flight (handed over, not yet presented), every 2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.e2e_remote import _env, _fingerprint, _free_port, _stop_wayray, percentile
from bench.throttle import ThrottledRelay
from bench.trace_hops import read_traces

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
VIDEO = str(REPO / "tests" / "e2e" / "clients" / "video.py")
WARM_S = 15.0
GAP_MS = 250


def _app(seconds: float) -> list[str]:
    return ["sh", "-c", f"{sys.executable} {VIDEO} {seconds:g} 1280 720 & sleep 2; exec foot -W 80x20 sh"]


def _rate(text: str) -> float:
    units = {"k": 1e3, "M": 1e6, "G": 1e9}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def frame_times(directory: Path) -> dict[str, dict[str, int]]:
    frames: dict[str, dict[str, int]] = defaultdict(dict)
    for path in directory.glob("*.trace"):
        for line in path.read_text().splitlines():
            f = line.split()
            if len(f) >= 3 and f[2].startswith("f") and f[1] in ("link_sent", "presented"):
                frames[f[2]].setdefault(f[1], int(f[0]))
    return frames


def run(rate: float, rtt: float, adapt: bool, keys: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="wradapt-", dir="/tmp"))
    traces = tmp / "traces"
    traces.mkdir()
    env = _env(tmp)
    env["WAYRAY_TRACE"] = str(traces)
    port = _free_port()
    video_s = WARM_S + keys * GAP_MS / 1000 + 3
    argv = [
        str(BIN / "wrsrvd"), "--standalone", "--port", str(port), "--listen", "127.0.0.1",
        "--state-dir", str(tmp / "state"), "--runtime-dir", str(tmp / "run"),
        *(["--allow-root"] if os.geteuid() == 0 else []), *([] if adapt else ["--no-adapt"]),
        "--", *_app(video_s),
    ]  # fmt: skip
    srv = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=open(tmp / "wrsrvd.log", "wb"), text=True,  # noqa: SIM115
        start_new_session=True,
    )  # fmt: skip
    client: subprocess.Popen[bytes] | None = None
    relay: ThrottledRelay | None = None
    try:
        fingerprint = _fingerprint(srv, tmp)
        relay = ThrottledRelay(port, rate_bps=rate, rtt_s=rtt)
        relay.start()
        script = tmp / "script.txt"
        lines = [f"wait {int(WARM_S * 1000)}"] + [f"type x\nwait {GAP_MS}" for _ in range(keys)] + ["wait 1"]
        script.write_text("\n".join(lines) + "\n")
        stats = tmp / "stats.json"
        client = subprocess.Popen(
            [str(BIN / "wrclient"), f"127.0.0.1:{relay.port}", "--fingerprint", fingerprint, "--headless",
             "--token", "bench", "--access-key-file", str(tmp / "state" / "access.key"), "--size",
             "1280x720", "--script", str(script), "--stats", str(stats), "--timeout", "300"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "wrclient.log", "wb"),  # noqa: SIM115
        )  # fmt: skip
        if client.wait(400) != 0:
            raise RuntimeError((tmp / "wrclient.log").read_text()[-3000:])
        return _figures(traces, stats, relay, tmp)
    finally:
        if relay is not None:
            relay.stop()
        _stop_wayray(tmp, srv, client, None, [])
        shutil.rmtree(tmp, ignore_errors=True)


def _figures(traces: Path, stats: Path, relay: ThrottledRelay, tmp: Path) -> dict[str, object]:
    import json

    data = json.loads(stats.read_text())
    types = [m["monotonic"] for m in data["script_marks"] if m["command"] == "type"]
    t0, t1 = types[0], types[-1] + GAP_MS / 1000
    shown = [t for t in data["shown_at"] if t0 <= t <= t1]
    keys, unanswered = read_traces(traces)
    lat = [(k["presented"] - k["viewer_send"]) / 1e6 for k in keys.values()]
    frames = frame_times(traces)
    ns0 = int(t0 * 1e9)
    delays = []  # (seconds since the typing started, delay ms) per frame presented in the window
    sent_presented = []
    for f in frames.values():
        if "link_sent" in f and "presented" in f:
            sent_presented.append((f["link_sent"], f["presented"]))
            if t0 <= f["presented"] / 1e9 <= t1:
                delays.append(((f["presented"] - ns0) / 1e9, (f["presented"] - f["link_sent"]) / 1e6))
    timeline = []
    t = t0
    while t <= t1:
        at = int(t * 1e9)
        in_flight = sum(1 for s, p in sent_presented if s <= at < p)
        near = [d for s, d in delays if t - t0 <= s < t - t0 + 2]
        timeline.append((t - t0, in_flight, max(near) if near else float("nan")))
        t += 2.0
    logs = "".join(p.read_text(errors="replace") for p in (tmp / "state" / "sessions").glob("*"))
    rates = [line.split("video at ")[1].split(",")[0] for line in logs.splitlines() if "video at " in line]
    return {
        "fps": len(shown) / (t1 - t0),
        "lat": lat,
        "unanswered": unanswered,
        "delays": [d for _, d in delays],
        "timeline": timeline,
        "dropped": relay.down.dropped,
        "h264": data["regions"].get("H264", 0),
        "rates": rates,
    }


def report(name: str, r: dict[str, object]) -> str:
    lat: list[float] = r["lat"]  # type: ignore[assignment]
    delays: list[float] = r["delays"]  # type: ignore[assignment]
    out = [
        f"  {name}: {r['fps']:.1f} frames/s; keypress→pixels median "
        f"{statistics.median(lat) if lat else float('nan'):.0f} ms, p95 {percentile(lat, 95):.0f} ms "
        f"(n={len(lat)}, {r['unanswered']} keys without an echo frame); frame delay (link → presented) "
        f"median {statistics.median(delays) if delays else float('nan'):.0f} ms, max "
        f"{max(delays) if delays else float('nan'):.0f} ms; relay drops {r['dropped']}; "
        f"H.264 regions {r['h264']}",
        "    every 2 s: frames in flight / worst frame delay ms: "
        + ", ".join(f"{n}/{d:.0f}" for _, n, d in r["timeline"]),  # type: ignore[attr-defined]
    ]
    if r["rates"]:
        out.append(f"    video rates chosen (Mbit/s): {' '.join(r['rates'][:12])}")  # type: ignore[index]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2M,20M", help="link rates (2M,20M)")
    parser.add_argument("--rtt-ms", type=float, default=50.0, help="round trip added by the relay (50)")
    parser.add_argument("--modes", default="off,on", help="adaptation off (before), on (after)")
    parser.add_argument("--keys", type=int, default=40, help="characters typed while the video plays")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start")  # fmt: skip
    for rate_text in args.rates.split(","):
        print(f"== {rate_text}bit/s, {args.rtt_ms:g} ms round trip")
        for mode in args.modes.split(","):
            r = run(_rate(rate_text), args.rtt_ms / 1000, mode == "on", args.keys)
            print(report(f"adaptation {mode}", r), flush=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")


if __name__ == "__main__":
    main()

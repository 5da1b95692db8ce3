"""Where a keypress's milliseconds go: every hop from the viewer's key to the frame that shows its echo.

    .venv/bin/python -m bench.trace_hops [--keys 60] [--gap-ms 80]

Runs ``wrsrvd --standalone -- foot`` and a headless ``wrclient`` (real QUIC on 127.0.0.1, no relay in
between) with ``WAYRAY_TRACE`` set, types ``--keys`` characters into foot's shell, then lines up the
trace files every process wrote (``wayray.common.trace``; one clock for the machine) and prints, per
hop, the median and 95th percentile of the time since the previous hop, and of the whole way.

The hops, in order (the process in brackets):

    viewer_send   [wrclient] the key goes to QUIC
    frontdoor_in  [wrsrvd]   the front door has decoded it
    session_in    [session]  the session process has read it from the link
    delivered     [session]  the seat has sent it to the focused client
    committed     [session]  a client's next commit with new content (the echo, as a rule)
    composited    [session]  the compositor's next frame has drawn that commit
    taken         [session]  the display pump has copied that frame out
    encode_start  [session]  encoding begins
    encoded       [session]  the frame update is encoded (and serialized)
    link_sent     [session]  it is handed to the link
    relayed       [wrsrvd]   the front door queues it on the viewer's QUIC connection, untouched
    viewer_in     [wrclient] the viewer has the whole update
    decoded       [wrclient] decoded into the viewer's picture
    presented     [wrclient] shown (headless: handed to the backend)

A key whose echo never came (nothing committed after it) is counted apart. "committed" is the first
commit with new content after the key, whichever client made it: with one foot typing, that is the
echo.
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

from bench.e2e_remote import _env, _fingerprint, _free_port, _start_wrsrvd, _stop_wayray, percentile

BIN = Path(sys.executable).parent
KEY_HOPS = ["viewer_send", "frontdoor_in", "session_in", "delivered", "committed", "composited", "taken",
            "encode_start"]  # fmt: skip
FRAME_HOPS = ["encoded", "link_sent", "relayed", "viewer_in", "decoded", "presented"]
HOPS = KEY_HOPS + FRAME_HOPS


def read_traces(directory: Path) -> tuple[dict[str, dict[str, int]], int]:
    """Per keypress, the time (ns) it reached each hop; and how many keys never reached a frame."""
    keys: dict[str, dict[str, int]] = defaultdict(dict)
    frames: dict[str, dict[str, int]] = defaultdict(dict)
    frame_of: dict[str, str] = {}
    for path in directory.glob("*.trace"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            ns, hop, ident = int(fields[0]), fields[1], fields[2]
            if hop == "frame" and len(fields) == 4:
                frame_of.setdefault(ident, fields[3])
            elif ident.startswith("f"):
                frames[ident].setdefault(hop, ns)
            else:
                keys[ident].setdefault(hop, ns)
    whole: dict[str, dict[str, int]] = {}
    unanswered = 0
    for ident, hops in keys.items():
        if "viewer_send" not in hops:
            continue
        frame = frame_of.get(ident)
        if frame is None:
            unanswered += 1
            continue
        merged = dict(hops)
        merged.update(frames.get(frame, {}))
        if all(h in merged for h in HOPS):
            whole[ident] = merged
        else:
            unanswered += 1
    return whole, unanswered


def report(whole: dict[str, dict[str, int]], unanswered: int) -> str:
    out = [f"keys traced end to end: {len(whole)}; without an answering frame: {unanswered}", ""]
    out.append(f"  {'hop':14s} {'since previous: median':>22s} {'p95':>8s}   {'since the key: median':>21s}")
    for prev, hop in zip(HOPS, HOPS[1:], strict=False):
        step = [(t[hop] - t[prev]) / 1e6 for t in whole.values()]
        total = [(t[hop] - t["viewer_send"]) / 1e6 for t in whole.values()]
        out.append(
            f"  {hop:14s} {statistics.median(step):19.3f} ms {percentile(step, 95):6.3f} ms"
            f"   {statistics.median(total):18.3f} ms"
        )
    total = [(t["presented"] - t["viewer_send"]) / 1e6 for t in whole.values()]
    out += ["", f"  keypress → presented: median {statistics.median(total):.2f} ms, "
            f"p95 {percentile(total, 95):.2f} ms, max {max(total):.2f} ms (n={len(total)})"]  # fmt: skip
    return "\n".join(out)


def run(keys: int, gap_ms: int) -> tuple[dict[str, dict[str, int]], int]:
    tmp = Path(tempfile.mkdtemp(prefix="wrtrace-", dir="/tmp"))
    traces = tmp / "traces"
    traces.mkdir()
    env = _env(tmp)
    env["WAYRAY_TRACE"] = str(traces)
    port = _free_port()
    srv = _start_wrsrvd(tmp, env, port, "typing", 1.0)
    client: subprocess.Popen[bytes] | None = None
    try:
        fingerprint = _fingerprint(srv, tmp)
        script = tmp / "script.txt"
        lines = ["settle 1500", "wait 300"] + [f"type x\nwait {gap_ms}" for _ in range(keys)]
        script.write_text("\n".join(lines + ["settle 800", "wait 1"]) + "\n")
        client = _wrclient(tmp, env, port, fingerprint, script)
        if client.wait(300) != 0:
            raise RuntimeError((tmp / "wrclient.log").read_text()[-3000:])
        return read_traces(traces)
    finally:
        _stop_wayray(tmp, srv, client, None, [])
        shutil.rmtree(tmp, ignore_errors=True)


def _wrclient(
    tmp: Path, env: dict[str, str], port: int, fingerprint: str, script: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "wrclient"), f"127.0.0.1:{port}", "--fingerprint", fingerprint, "--headless",
         "--token", "bench", "--access-key-file", str(tmp / "state" / "access.key"), "--size", "1280x720",
         "--script", str(script), "--timeout", "120"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "wrclient.log", "wb"),  # noqa: SIM115
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=60, help="characters to type (60)")
    parser.add_argument("--gap-ms", type=int, default=80, help="time between two keys (80 ms)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start")  # fmt: skip
    whole, unanswered = run(args.keys, args.gap_ms)
    if not whole:
        sys.exit("no key was traced end to end: see the processes' logs (run with WAYRAY_LOG_LEVEL=debug)")
    print(report(whole, unanswered))


if __name__ == "__main__":
    main()

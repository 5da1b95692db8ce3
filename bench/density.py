"""How many typists one host holds: keypress → pixels with many sessions, some typed in, some scrolling.

    .venv/bin/python -m bench.density [--sessions 50] [--typists 2,4,6,8,10,12,16,20] [--scrollers 2]
                                      [--keys 40] [--gap-ms 200] [--size 1920x1080] [--bound-ms 8]

Issue 15's density figure. ``wrsrvd --standalone -- foot`` on this host; ``--sessions`` sessions are
started (each by a headless viewer that uses it once and leaves: detached, idle). Then
``--scrollers`` viewers attach to sessions of their own and scroll a long document (``less`` in foot,
one wheel notch every ``--scroll-ms``) for the rest of the run, and in rounds ``N`` typists (one headless
viewer each, on sessions of their own) type ``--keys`` letters ``--gap-ms`` apart at the same time,
as N people typing. Every viewer runs on this host too (real QUIC on 127.0.0.1), so the viewers' own
work shares the cores with the server's: on a real site the kiosks do that work.

First the idle cost: the server side's CPU (wrsrvd, every session process and its sound server) over
``--idle`` seconds with every session detached. Per round: every typist's keypress → pixels (the
viewer's ``--stats``: from the key going out to the first frame shown after it), all typists together:
median, p95, max; the host's CPU busy (of all its cores, ``/proc/stat``), the server side's CPU (wrsrvd
and every session process) and the viewers' over the round. The last line says how many typists held the
bound (``--bound-ms`` at the 95th percentile, 8 ms in the issue), and which rounds did not: a round a
little over the bound is followed by the next (a p95 near the bound moves from run to run); one over
twice the bound ends the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FOOT = ["foot", "--window-size-chars=100x30", "sh"]
#: What a scrolling viewer reads: a long listing in ``less``, scrolled by the wheel.
READ = "seq -f 'line %g of a long document that someone reads while scrolling' 1 1000000 | less"
WORDS = "the quick brown fox jumps over the lazy dog "


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def host_busy() -> tuple[float, float]:
    """Busy and total jiffies of all cores (``/proc/stat``'s first line)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def cpu_by_pid(pids: list[int], seen: dict[int, float]) -> None:
    """Each live process's CPU seconds so far into ``seen`` (a process that has exited keeps the last
    figure read while it lived: its CPU is not lost from a sum taken after its end)."""
    import psutil

    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seen[pid] = t.user + t.system


def _children(pid: int) -> list[Any]:
    import psutil

    try:
        return list(psutil.Process(pid).children())
    except psutil.Error:
        return []


def run(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    from tests.e2e.harness import Harness, eventually, processes_with_link

    h = Harness(tmp)
    rounds: list[dict[str, Any]] = []
    try:
        srv = h.server(FOOT, extra=["--size", args.size])
        eventually(lambda: "session parent ready" in srv.log_text(), "the session parent ready", 120)
        # Each session is used once (the pointer moved): a used session does not count against the
        # per-source limit of unused sessions, so one source may start them all.
        use = h.write_script("use.txt", "settle\nmove 10 10\nsettle\n")
        started = time.monotonic()
        for i in range(args.sessions):
            r = h.run_client(
                srv, "--script", str(use), "--size", args.size, token=f"dens-{i:03d}", timeout=600
            )
            if r.returncode != 0:
                raise SystemExit(f"session {i} did not start:\n{r.stderr[-2000:]}")
            print(f"\r  {i + 1} of {args.sessions} sessions started", end="", flush=True)
        print(f" in {time.monotonic() - started:.0f} s", flush=True)
        eventually(
            lambda: len(s := srv.sessions()) == args.sessions and all(x["state"] == "detached" for x in s),
            "every session detached",
            120,
        )
        link = h.short / "run" / "link.sock"
        assert srv.proc is not None
        wrsrvd = srv.proc.pid
        server_pids = lambda: [wrsrvd, *processes_with_link(link)]  # noqa: E731

        # The idle cost: every session detached, nobody typing, after they have settled.
        time.sleep(args.idle)
        pids = server_pids()
        sound = [c.pid for p in pids for c in _children(p) if c.name() == "pulseaudio"]
        idle0, t0 = cpu_seconds(pids + sound), time.monotonic()
        time.sleep(args.idle)
        idle = (cpu_seconds(pids + sound) - idle0) / (time.monotonic() - t0)
        print(
            f"  idle: the {args.sessions} detached sessions (wrsrvd, session processes, sound servers) use "
            f"{idle * 100:.1f} % of a core together ({idle * 100 / args.sessions:.2f} % each)",
            flush=True,
        )

        # Each scroller turns the wheel one notch every --scroll-ms in a long document in ``less``
        # (foot turns each notch into lines scrolled), for as long as the rounds last.
        width, height = (int(x) for x in args.size.split("x"))
        middle = f"{width // 2} {height // 2}"  # over foot's window (placed in the middle)
        notches = "".join(f"scroll 1\nwait {args.scroll_ms}\n" for _ in range(600_000 // args.scroll_ms))
        for k in range(args.scrollers):
            script = h.write_script(
                f"scroll-{k}.txt", f'settle\ntype "{READ}"\nkey Return\nsettle\nmove {middle}\n{notches}'
            )
            h.start_client(srv, "--script", str(script), "--size", args.size, token=f"dens-{k:03d}")
        time.sleep(3)  # the scrolling under way

        first = args.scrollers
        for n in args.typists:
            if first + n > args.sessions:
                print(f"  ({n} typists need {first + n} sessions; there are {args.sessions})")
                break
            typed = "".join(WORDS[(i + len(rounds) * 7) % len(WORDS)] for i in range(args.keys))
            lines = ["settle 1000"]
            for letter in typed:
                lines += [f'type "{letter}"', f"wait {args.gap_ms}"]
            lines += ["settle 500", "key ctrl+u", "settle 300"]
            script = h.write_script(f"type-{n}.txt", "\n".join(lines) + "\n")
            typists = []
            for i in range(n):
                stats = tmp / f"type-{n}-{i}.json"
                c = h.start_client(
                    srv, "--script", str(script), "--size", args.size, "--stats", str(stats),
                    token=f"dens-{first + i:03d}",
                )  # fmt: skip
                typists.append((c, stats))
            # The round: from the typists' start to their end.
            viewer_pids = lambda: [c.proc.pid for c in h.clients if c.proc.poll() is None]  # noqa: E731
            busy0, total0 = host_busy()
            cpu0, t0 = cpu_seconds(server_pids()), time.monotonic()
            view0: dict[int, float] = {}
            cpu_by_pid(viewer_pids(), view0)
            # Every viewer sampled until it ends (a typist's CPU is lost once it has exited): each
            # keeps its last figure; a typist's last 0.2 s at most is missed.
            view1 = dict(view0)
            while any(c.proc.poll() is None for c, _ in typists):
                cpu_by_pid(viewer_pids(), view1)
                time.sleep(0.2)
            cpu_by_pid(viewer_pids(), view1)
            for c, _ in typists:
                code = c.wait(600)
                if code != 0:
                    raise SystemExit(f"a typist failed ({code}):\n{c.stderr()[-2000:]}")
            busy1, total1 = host_busy()
            cpu1, t1 = cpu_seconds(server_pids()), time.monotonic()
            lat: list[float] = []
            for _, stats in typists:
                data = json.loads(stats.read_text())
                lat += data["key_to_pixels_ms"][: args.keys]  # the typed letters, not the ctrl+u after
            rounds.append(
                {
                    "typists": n,
                    "keys": len(lat),
                    "expected_keys": n * args.keys,
                    "median": statistics.median(lat) if lat else float("nan"),
                    "p95": percentile(lat, 0.95) if lat else float("nan"),
                    "max": max(lat, default=float("nan")),
                    "host_busy": (busy1 - busy0) / max(1.0, total1 - total0),
                    "server_cpu": (cpu1 - cpu0) / (t1 - t0),
                    "viewer_cpu": sum(v - view0.get(pid, 0.0) for pid, v in view1.items()) / (t1 - t0),
                    "load": os.getloadavg()[0],
                }
            )
            show(rounds[-1], args.bound_ms)
            if rounds[-1]["p95"] > 2 * args.bound_ms:  # saturated: more typists only wait longer
                break
        return rounds
    finally:
        h.cleanup()


def show(r: dict[str, Any], bound: float) -> None:
    verdict = "held" if r["p95"] <= bound else "OVER"
    print(
        f"  {r['typists']:>2} typists: keypress→pixels median {r['median']:5.1f} ms  "
        f"p95 {r['p95']:5.1f} ms  max {r['max']:6.1f} ms  (n={r['keys']} of {r['expected_keys']});  "
        f"host CPU busy "
        f"{r['host_busy'] * 100:3.0f} % (server side {r['server_cpu']:4.2f} cores, viewers "
        f"{r['viewer_cpu']:4.2f});  load {r['load']:.1f}"
        f"  [{verdict} the {bound:g} ms bound]",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=50, help="sessions on the host (50)")
    p.add_argument("--typists", default="2,4,6,8,10,12,16,20", help="typists per round, in order")
    p.add_argument("--scrollers", type=int, default=2, help="viewers flooding their terminal (2)")
    p.add_argument("--scroll-ms", type=int, default=100, help="between a scroller's wheel notches (100)")
    p.add_argument("--keys", type=int, default=40, help="keys each typist types per round (40)")
    p.add_argument("--gap-ms", type=int, default=200, help="between one typist's keys (200: 5 keys/s)")
    p.add_argument("--size", default="1920x1080", help="every session's output size (1920x1080)")
    p.add_argument(
        "--idle", type=float, default=10.0, help="seconds idle before and while the idle CPU is taken"
    )
    p.add_argument("--bound-ms", type=float, default=8.0, help="keypress→pixels p95 to hold (8)")
    args = p.parse_args()
    args.typists = [int(x) for x in args.typists.split(",") if x]
    sys.path.insert(0, str(REPO))
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    print(
        f"{args.sessions} sessions ({args.size}, foot), {args.scrollers} scrolling; typists type "
        f"{args.keys} keys {args.gap_ms} ms apart\nmachine: {cpu}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.1f} at the start",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="wr-density-") as tmp:
        rounds = run(args, Path(tmp))
    held = [r["typists"] for r in rounds if r["p95"] <= args.bound_ms]
    over = [r["typists"] for r in rounds if r["p95"] > args.bound_ms]
    if held:
        print(
            f"the host held {max(held)} typists at ≤ {args.bound_ms:g} ms p95 (the most that held; "
            + (
                f"rounds over the bound: {', '.join(map(str, over))} typists)"
                if over
                else "every round held)"
            )
        )
    else:
        print(f"no round held ≤ {args.bound_ms:g} ms p95")


if __name__ == "__main__":
    main()

"""Memory of idle standalone sessions, as wrsrvd starts them: each 1920x1080 with foot in it, started
by a headless viewer that then leaves (the session stays, detached), measured after they have been
idle. Issue 15's figure: a session's compositor PSS (its keeper and its compositor process; foot's
own memory apart), with the session parent (forked, copy-on-write) and without it (exec).

    .venv/bin/python -m bench.session_memory [--sessions 10] [--idle 10] [--mode fork|exec|both]

``WAYRAY_SESSION_KEEPER=python`` in its environment measures sessions with the Python keeper (the
fallback where the compiled one is not built; wayray/session/keeper.py).

PSS (proportional set size, ``/proc/PID/smaps_rollup``) divides each shared page among the processes
that map it, so the figures of processes that share pages add up to what they hold together; RSS
counts a shared page in every process. The session parent's own PSS is printed apart (shared by all
sessions it forked; divided by the number of sessions it is a few MiB each).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def private(pid: int) -> int:
    return kib(pid, "Private_Clean") + kib(pid, "Private_Dirty")


def measure(mode: str, sessions: int, idle: float, tmp: Path, smaps: Path | None = None) -> dict[str, Any]:
    import psutil

    from tests.e2e.harness import Harness, WrServer, eventually

    h = Harness(tmp)
    try:
        srv = WrServer(h, FOOT, port=h.port, extra=["--size", "1920x1080"])
        h.servers.append(srv)
        env = dict(h.env, WAYRAY_SESSION_PARENT="0" if mode == "exec" else "1")
        if os.environ.get("WAYRAY_SESSION_KEEPER"):  # the keeper to measure (python: the fallback)
            env["WAYRAY_SESSION_KEEPER"] = os.environ["WAYRAY_SESSION_KEEPER"]
        srv.start(env=env)
        if mode == "fork":
            eventually(lambda: "session parent ready" in srv.log_text(), "the session parent ready", 120)
        # The viewer moves the pointer once: a session someone used does not count against the
        # per-source limit of unused sessions (admission.unused_sessions_per_source, 16), so one
        # source may start more than 16; past 30 the rate limit makes the viewers wait and retry.
        script = tmp / "use.txt"
        script.write_text(f"settle\nmove 10 10\nsettle\nsnapshot {tmp / 's.png'}\n")
        for i in range(sessions):
            r = h.run_client(
                srv, "--script", str(script), "--size", "1920x1080", token=f"mem-{i:03d}", timeout=600
            )
            if r.returncode != 0:
                raise SystemExit(f"a session did not start:\n{r.stderr[-2000:]}")
        eventually(
            lambda: len(s := srv.sessions()) == sessions and all(x["state"] == "detached" for x in s),
            "every session detached",
            120,
        )
        time.sleep(idle)
        compositors = [s["pid"] for s in srv.sessions()]
        per_session, foot, rss = [], [], []
        parts: dict[str, list[float]] = {
            "keeper": [],
            "keeper private": [],
            "compositor": [],
            "compositor private": [],
        }
        parents: set[int] = set()
        for pid in compositors:
            comp = psutil.Process(pid)
            keeper = comp.ppid()
            per_session.append((kib(pid, "Pss") + kib(keeper, "Pss")) / 1024)
            rss.append(kib(pid, "Rss") / 1024)
            parts["keeper"].append(kib(keeper, "Pss") / 1024)
            parts["keeper private"].append(private(keeper) / 1024)
            parts["compositor"].append(kib(pid, "Pss") / 1024)
            parts["compositor private"].append(private(pid) / 1024)
            if smaps is not None and pid == compositors[0]:
                smaps.mkdir(parents=True, exist_ok=True)
                for name, who in (("keeper", keeper), ("compositor", pid)):
                    (smaps / f"{mode}-{name}.smaps").write_text(Path(f"/proc/{who}/smaps").read_text())
            foot.append(sum(kib(c.pid, "Pss") for c in comp.children() if c.name() == "foot") / 1024)
            parents.add(psutil.Process(keeper).ppid())
        assert srv.proc is not None
        parent = [p for p in parents if p not in (1, srv.proc.pid)]
        parent_pss = sum(kib(p, "Pss") for p in parent) / 1024 if parent else 0.0
        return {
            "mode": mode,
            "sessions": len(compositors),
            "pss": per_session,
            "rss": rss,
            "parts": parts,
            "foot": foot,
            "parent_pss": parent_pss,
            "forked": "forked from the session parent" in srv.log_text(),
        }
    finally:
        h.cleanup()


def show(r: dict[str, Any]) -> None:
    pss, med = r["pss"], statistics.median
    print(
        f"{r['mode']:<5} n={r['sessions']:<3} session (keeper + compositor) PSS median {med(pss):5.1f} MiB"
        f"  p95 {percentile(pss, 0.95):5.1f}  min {min(pss):5.1f}  max {max(pss):5.1f};  compositor RSS "
        f"median {med(r['rss']):5.1f} MiB;  foot PSS median {med(r['foot']):4.1f} MiB"
        + (f";  the session parent {r['parent_pss']:.1f} MiB PSS" if r["parent_pss"] else ""),
        flush=True,
    )
    print(
        "      "
        + ";  ".join(f"{name} {statistics.median(v):5.1f}" for name, v in r["parts"].items())
        + " MiB (medians; PSS, and private pages clean + dirty)",
        flush=True,
    )
    if r["mode"] == "fork" and not r["forked"]:
        print("  (no session was forked from the session parent: check wrsrvd's log)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--idle", type=float, default=10.0, help="seconds the sessions stay idle first (10)")
    p.add_argument("--mode", choices=("fork", "exec", "both"), default="both")
    p.add_argument(
        "--smaps", type=Path, metavar="DIR", help="copy one session's keeper and compositor smaps here"
    )
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    print(
        f"idle 1920x1080 foot sessions, {args.sessions} at once, {args.idle:g} s idle; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for mode in ("exec", "fork") if args.mode == "both" else (args.mode,):
        with tempfile.TemporaryDirectory(prefix="wr-bench-") as tmp:
            show(measure(mode, args.sessions, args.idle, Path(tmp), args.smaps))


if __name__ == "__main__":
    main()

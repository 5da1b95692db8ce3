"""Failover of a pool (docs/pools.md §7): from a member's death to its kiosk showing a new session on
another member, over many tries.

    sudo .venv/bin/python -m bench.pool_failover [--tries 20] [--keep DIR]

Real processes in network namespaces joined by a bridge (as tests/pool/test_drain_failover.py): three
``wrsrvd --standalone`` members sharing the session directory, with empty sessions (the compositor's
background), and one headless pool kiosk (``wrclient --kiosk --pool``) that knows nothing but the
pool's name and its members' fingerprints. Each try: a new badge at the kiosk, its member SIGKILLed
with its sessions (as when its host goes), and the time from the kill to the kiosk's state file
showing a session of another member (read every 20 ms); then the dead member is started again and
the next try waits until every member answers the others. ``--keep`` keeps the members' and the
kiosk's logs (millisecond time stamps: the kiosk's "gave up", its dial, the member's claim and the
session's start show where the time goes).

Each try is split in two, read from the new holder's log: from the kill to the new session's start
being logged ("started session": the kiosk has given its member up, reached another, and the members
have agreed the dead one is gone and placed the badge) — the pool's part — and from there to the
kiosk's state file showing it (the session's compositor coming up, the attach, the first frame).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import re
import signal
import statistics
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from tests.e2e.harness import Harness, eventually, kill_sessions
from tests.pool.netns import lan
from tests.pool.rig import MemberServer
from tests.pool.test_drain_failover import holder, pool_kiosk, three_members
from wayray.pool.lan import LEASE_TTL


def everyone_answers(members: list[MemberServer]) -> bool:
    return all(sum(r["answers"] and not r["this"] for r in m.admin("pool")["members"]) == 2 for m in members)


def percentile(s: list[float], q: float) -> float:
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def started_at(srv: MemberServer, session_id: str) -> float:
    """When ``srv`` logged the start of ``session_id`` (wall clock, from the log's time stamp)."""
    m = re.search(
        rf"^(\S+ \S+) \S+ INFO wayray\.server: started session {session_id} ", srv.log_text(), re.M
    )
    assert m is not None, f"no start of session {session_id} in {srv.host.name}'s log"
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def summary(what: str, s: list[float]) -> str:
    s = sorted(s)
    return (
        f"{what}: median {statistics.median(s):.2f} s   p90 {percentile(s, 0.9):.2f} s   "
        f"max {s[-1]:.2f} s   min {s[0]:.2f} s   (n={len(s)})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=20)
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep the members' and the kiosk's logs in DIR")
    args = p.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (
        (
            tempfile.TemporaryDirectory() if args.keep is None else contextlib.nullcontext(str(args.keep))
        ) as tmp,
        lan() as net,
    ):
        h = Harness(Path(tmp))
        kiosk = None
        took: list[float] = []
        placed: list[float] = []
        try:
            members = three_members(h, net)
            kiosk = pool_kiosk(h, net.add("kiosk"), "kiosk", members)
            for n in range(args.tries):
                kiosk.insert(f"bench-failover-{n}")
                shown = kiosk.wait_session(timeout=120)["session_id"]
                victim = holder(members, shown)
                died_wall = time.time()
                victim.signal(signal.SIGKILL)
                kill_sessions(victim.runtime / "link.sock")
                died = time.monotonic()
                while True:
                    st = kiosk.state()
                    if st["state"] == "session" and st["session_id"] not in (None, shown):
                        break
                    assert time.monotonic() - died < 120, f"try {n}: no failover in 120 s"
                    time.sleep(0.02)
                took.append(time.monotonic() - died)
                alive = [m for m in members if m is not victim]
                placed.append(started_at(holder(alive, st["session_id"]), st["session_id"]) - died_wall)
                print(
                    f"try {n + 1}: {took[-1]:.2f} s (the new session started {placed[-1]:.2f} s in)",
                    flush=True,
                )
                kiosk.remove()
                kiosk.wait_idle()
                victim.proc.wait(30)  # type: ignore[union-attr]
                victim.start()
                eventually(lambda: everyone_answers(members), "every member to answer the others again")
                # A member that just started decides no new claim for 3 lease TTLs (docs/pools.md §7):
                # the next try's badge must not meet that (it measures a failover, not a restart).
                time.sleep(3 * LEASE_TTL)
            print(summary("failover", took))
            print(summary("  kill to the new session's start (the pool's part)", placed))
            print(
                summary(
                    "  the new session's start to the kiosk showing it",
                    [t - p for t, p in zip(took, placed, strict=True)],
                )
            )
        finally:
            if kiosk is not None:
                kiosk.stop()
            h.cleanup()
            for srv in h.servers:
                with suppress(OSError):
                    kill_sessions(srv.runtime / "link.sock")


if __name__ == "__main__":
    main()

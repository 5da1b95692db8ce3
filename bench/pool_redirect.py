"""Badge-in to the first complete frame when the kiosk reached the wrong member of a pool (docs/pools.md
§4), beside the same badge-in at the right member.

    sudo .venv/bin/python -m bench.pool_redirect [--tries 50] [--keep DIR]

Real processes in network namespaces joined by a bridge (as tests/pool): two ``wrsrvd --standalone``
members with foot sessions, sharing the session directory over their pool port, and one headless
kiosk (``wrclient --kiosk --headless``) that knows only member B. B is drained, so the badge's session
is placed on A; every later badge-in at the kiosk goes to B, which finds the session on A in the
directory and redirects the kiosk there. Measured inside the kiosk, as bench/badge_in.py does: from
the badge event to the session's picture being complete (its state file's ``presented_at`` and
``picture_at``, CLOCK_MONOTONIC). That covers QUIC + TLS to B, the Hello, B's claim at the digest's
home, the Redirect, QUIC + TLS to A, the Hello, Attach and the keyframe.

A second row measures a kiosk of the pool (``--pool lab``, members found by mDNS) at B: it dials A
ahead while B looks the badge up (docs/pools.md §4), so the Redirect finds A's handshake made; the
row says in how many badge-ins it was ready. Such a kiosk remembers where a Redirect sent the badge
and goes straight there at the badge's next badge-in, so this row's every try is a new kiosk process
(started, its members found by mDNS, then the badge: the first badge-in of a kiosk). A third row is
the same pool kiosk's later badge-ins of the badge (straight to A), a fourth the badge-in at A with
no redirect.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from tests.conftest import script
from tests.e2e.harness import Harness, eventually, kill_sessions
from tests.e2e.kiosk import KioskProc
from tests.pool.netns import lan
from tests.pool.rig import MemberServer, member, member_identity, sharing


def badge_ins(kiosk: KioskProc, badge: str, tries: int) -> list[float]:
    kiosk.insert(badge)  # the first one starts the session: not measured
    kiosk.wait_session(timeout=120)
    kiosk.remove()
    kiosk.wait_idle()
    took = []
    for _ in range(tries):
        kiosk.insert(badge)
        st = kiosk.wait_session(timeout=120)
        took.append(st["picture_at"] - st["presented_at"])
        kiosk.remove()
        kiosk.wait_idle()
    return took


def first_badge_ins(start: Callable[[int], KioskProc], badge: str, tries: int) -> tuple[list[float], int]:
    """Each try a new kiosk (``start``), its first badge-in measured; and how many found the
    redirect's target dialled ahead."""
    took, ready = [], 0
    for n in range(tries):
        kiosk = start(n)
        try:
            kiosk.insert(badge)
            st = kiosk.wait_session(timeout=120)
            took.append(st["picture_at"] - st["presented_at"])
            ready += kiosk.log_text().count("its handshake was made while")
            kiosk.remove()
            kiosk.wait_idle()
        finally:
            kiosk.stop()
    return took, ready


def row(what: str, took: list[float]) -> str:
    s = sorted(took)
    p90 = s[min(len(s) - 1, round(0.90 * (len(s) - 1)))]
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return (
        f"{what:34s} median {statistics.median(s) * 1e3:7.1f} ms   p90 {p90 * 1e3:7.1f} ms   "
        f"p95 {p95 * 1e3:7.1f} ms   (n={len(s)})"
    )


def kiosk_at(
    h: Harness, host: object, name: str, srv: MemberServer, other: MemberServer, *, pool: bool = False
) -> KioskProc:
    """A kiosk that knows ``srv`` (and trusts ``other`` too); ``pool``: it also finds the members by
    mDNS (``--pool lab``), dialling the one that takes new sessions first and the other ahead."""
    extra = ("--fingerprint", other.fingerprint, "--access-key-file", str(h.tmp / "pool-access.key"))
    return KioskProc(
        h.tmp, name, f"{srv.host.address}:{srv.port}", srv.fingerprint, env=h.env,
        extra=(*extra, *(("--pool", "lab") if pool else ())),
        wrapper=tuple(host.command([script("wrclient")])),  # type: ignore[attr-defined]
    ).start()  # fmt: skip


def drained(srv: MemberServer) -> bool:
    return any(not m["this"] and m["state"] == "drain" for m in srv.admin("pool")["members"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=50)
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the members' and the kiosks' logs in DIR (made; millisecond time stamps: each phase of "
        "a badge-in shows as a line, docs/benchmarks.md reads them)",
    )
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
        kiosks: list[KioskProc] = []
        try:
            hosts = [net.add("srva"), net.add("srvb")]
            pins = [member_identity(h, x) for x in hosts]
            a, b = (member(h, x, extra=sharing(h, pins)) for x in hosts)
            eventually(lambda: sum(not m["this"] and m["answers"] for m in b.admin("pool")["members"]) == 1,
                       "the members to see each other")  # fmt: skip
            b.admin("drain", draining=True)
            eventually(lambda: drained(a), "A to see B drained")
            wrong = kiosk_at(h, net.add("kiosk1"), "wrong", b, a)
            kiosks.append(wrong)
            redirected = badge_ins(wrong, "bench-pool-badge", args.tries)
            assert b.sessions() == [] and len(a.sessions()) == 1
            wrong.stop()
            # A kiosk of the pool: A drained now, so it dials B first (the member that takes new
            # sessions), and A ahead while B looks the badge up.
            b.admin("drain", draining=False)
            a.admin("drain", draining=True)
            eventually(lambda: drained(b), "B to see A drained")
            pool_host = net.add("kiosk3")

            def fresh(n: int) -> KioskProc:
                k = kiosk_at(h, pool_host, f"pooled{n}", b, a, pool=True)
                for srv in (a, b):  # both members found by mDNS before the badge comes
                    eventually(lambda s=srv: f"at {s.host.address} port {s.port}" in k.log_text(),
                               "the kiosk to find the members")  # fmt: skip
                return k

            ahead, used = first_badge_ins(fresh, "bench-pool-badge", args.tries)
            pooled = fresh(args.tries)
            kiosks.append(pooled)
            remembered = badge_ins(pooled, "bench-pool-badge", args.tries)
            straight = pooled.log_text().count("going straight to the member")
            assert b.sessions() == [] and len(a.sessions()) == 1
            pooled.stop()
            right = kiosk_at(h, net.add("kiosk2"), "right", a, b)
            kiosks.append(right)
            direct = badge_ins(right, "bench-pool-badge", args.tries)
            print(row("badge-in at B, redirected to A", redirected))
            print(row("pool kiosk at B, A dialled ahead", ahead) + f"   (handshake ready: {used})")
            print(row("the same, later badge-ins", remembered) + f"   (straight to A: {straight})")
            print(row("badge-in at A (no redirect)", direct))
        finally:
            for k in kiosks:
                k.stop()
            h.cleanup()
            for srv in h.servers:
                with suppress(OSError):
                    kill_sessions(srv.runtime / "link.sock")


if __name__ == "__main__":
    main()

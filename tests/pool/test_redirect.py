"""One session directory across the pool (docs/pools.md §3, §4), with real wrsrvd members in network
namespaces joined by a bridge, finding each other by real mDNS and asking each other over the pool
port (mutual TLS): a badge whose session is on A, presented at a kiosk that reached B, is redirected
to A and shows the same session; the same badge presented at A and at B at the same instant gets one
session, never two."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import pytest

from tests.conftest import script
from tests.e2e.harness import Harness, differing_pixels, eventually, kill_sessions, png_pixels
from tests.e2e.kiosk import KioskProc
from tests.pool.netns import Host, Lan
from tests.pool.rig import MemberServer, kiosk_argv, member, member_identity, run_kiosk_script, sharing
from tests.pool.test_drain_failover import one_shot

pytestmark = pytest.mark.slow

BADGE = "pool-redirect-4410"


def two_members(harness: Harness, net: Lan, command: list[str] | None = None) -> tuple[MemberServer, ...]:
    hosts = [net.add("srva"), net.add("srvb")]
    pins = [member_identity(harness, h) for h in hosts]
    a, b = (member(harness, h, extra=sharing(harness, pins), command=command) for h in hosts)
    for srv, other in ((a, "srvb"), (b, "srva")):  # each has found the other by mDNS
        eventually(lambda s=srv, o=other: f"on {o} at" in s.log_text(), f"{srv.host.name} to find {other}")
    return a, b


def run_kiosk(
    harness: Harness, net_host: object, srv: MemberServer, *args: str
) -> subprocess.CompletedProcess[str]:
    # A generous wait for the first frame (a safety net: the kiosk reconnects while a loaded member
    # or its directory is slow; wrclient's own default is 30 s). A caller's --timeout comes later.
    return subprocess.run(
        kiosk_argv(harness, net_host, f"{srv.host.address}:{srv.port}", "--fingerprint", srv.fingerprint,  # type: ignore[arg-type]
                   "--token", BADGE, "--timeout", "120", *args),  # fmt: skip
        env=harness.env, cwd=harness.home, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_badge_that_reaches_the_wrong_member_is_redirected_to_its_session(
    harness: Harness, net: Lan
) -> None:
    a, b = two_members(harness, net)
    k1, k2 = net.add("kiosk1"), net.add("kiosk2")
    marker = harness.home / "typed-at-kiosk-1"
    script = harness.write_script(
        "k1.txt", f"settle 1000\ntype echo pooled > {marker}\nkey Return\nsettle 700\n"
    )
    stats1 = harness.tmp / "kiosk1.json"
    where = (f"{a.host.address}:{a.port}", "--fingerprint", a.fingerprint, "--token", BADGE)
    first = run_kiosk_script(harness, k1, [a, b], script, *where, "--stats", str(stats1))
    assert first.returncode == 0, first.stderr[-3000:]
    # A new session placed on the other member starts there: it is not placed again (a ping-pong).
    assert json.loads(stats1.read_text())["redirects"] <= 1
    assert marker.read_text() == "pooled\n"
    # Placement put the new session on A or B (weighted random); kiosk 2 reaches the other one.
    holder, other = (a, b) if a.sessions() else (b, a)
    (session,) = holder.sessions()
    # Kiosk 2 knows only the other member, which finds the badge's session in the directory.
    shot = harness.tmp / "kiosk2.png"
    stats = harness.tmp / "kiosk2.json"
    second = run_kiosk(harness, k2, other, "--snapshot", str(shot), "--settle", "700", "--stats", str(stats))
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(stats.read_text())["redirects"] == 1
    assert json.loads(stats.read_text())["session_id"] == session["id"]
    assert other.sessions() == [], "a second session was started for the badge"
    assert [s["id"] for s in holder.sessions()] == [session["id"]]
    assert f"sends this viewer to {holder.host.address}:{holder.port}" in second.stderr
    # The same session: kiosk 2 shows exactly its member's picture of it (the command typed at kiosk 1).
    after = eventually(lambda: (s := holder.session())["state"] == "detached" and s, "the session detached")
    assert differing_pixels(png_pixels(shot), holder.screenshot(after["id"])) == 0
    assert "this badge's session is on" in other.log_text()


def test_one_badge_at_two_members_at_the_same_instant_gets_one_session(harness: Harness, net: Lan) -> None:
    a, b = two_members(harness, net, command=["sleep", "3600"])
    k1, k2 = net.add("kiosk1"), net.add("kiosk2")
    badges = [f"double-badge-{n:02d}" for n in range(5)]
    for badge in badges:
        go = threading.Barrier(2)
        results: list[subprocess.CompletedProcess[str]] = []
        threads = [
            threading.Thread(target=present, args=(harness, k, s, badge, go, results))
            for k, s in ((k1, a), (k2, b))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sessions = len(a.sessions()) + len(b.sessions())
        assert sessions == badges.index(badge) + 1, f"{badge}: {sessions} sessions: " + " / ".join(
            r.stderr[-1500:] for r in results
        )


def present(
    harness: Harness,
    host: Host,
    srv: MemberServer,
    badge: str,
    go: threading.Barrier,
    results: list[subprocess.CompletedProcess[str]],
) -> None:
    where = f"{srv.host.address}:{srv.port}"
    shot = str(harness.tmp / f"{badge}-{srv.host.name}.png")
    argv = kiosk_argv(
        harness, host, where, "--fingerprint", srv.fingerprint, "--token", badge, "--snapshot", shot
    )
    go.wait()
    run = subprocess.run(
        argv, env=harness.env, cwd=harness.home, capture_output=True, text=True, timeout=300
    )
    results.append(run)


def pooled_kiosk_at_the_other(
    harness: Harness, net: Lan
) -> tuple[MemberServer, MemberServer, dict[str, object], KioskProc]:
    """Two members, the badge's session on one (the holder, drained then), and a kiosk of the pool
    that knows the other member's address (it dials it first) and has found both by mDNS."""
    a, b = two_members(harness, net, command=["sleep", "3600"])
    k1, k2 = net.add("kiosk1"), net.add("kiosk2")
    one_shot(harness, k1, a, BADGE)
    holder, other = (a, b) if a.sessions() else (b, a)
    (session,) = holder.sessions()
    # The holder drained: a kiosk of the pool dials the member that takes new sessions first.
    holder.admin("drain", draining=True)
    eventually(
        lambda: any(r["state"] == "drain" for r in other.admin("pool")["members"] if not r["this"]),
        "the other member to see the holder drained",
    )
    kiosk = KioskProc(
        harness.tmp, "pooled", f"{other.host.address}:{other.port}", other.fingerprint, env=harness.env,
        extra=("--fingerprint", holder.fingerprint, "--pool", "lab",
               "--access-key-file", str(harness.tmp / "pool-access.key")),
        wrapper=tuple(k2.command([script("wrclient")])),
    ).start()  # fmt: skip
    try:
        for srv in (holder, other):
            eventually(
                lambda s=srv: f"at {s.host.address} port {s.port}" in kiosk.log_text(),
                f"the kiosk to find {srv.host.name}",
            )
    except BaseException:
        kiosk.stop()
        raise
    return holder, other, session, kiosk


def test_a_pool_kiosk_redirected_finds_the_members_handshake_made_ahead(harness: Harness, net: Lan) -> None:
    """A kiosk of the pool dials the other members while the member it reached looks the badge up;
    the Redirect then says its Hello over the handshake already made to the member it names (the
    second handshake was most of a redirect's cost), and the badge finds its one session there."""
    holder, other, session, kiosk = pooled_kiosk_at_the_other(harness, net)
    try:
        kiosk.insert(BADGE)
        shown = kiosk.wait_session()
        assert shown["session_id"] == session["id"]
        log = kiosk.log_text()
        assert f"sends this viewer to {holder.host.address}:{holder.port}" in log
        assert log.count("its handshake was made while the first member looked the badge up") == 1, log[
            -3000:
        ]
        assert other.sessions() == [] and [s["id"] for s in holder.sessions()] == [session["id"]]
        assert BADGE not in log and all(BADGE not in m.log_text() for m in (holder, other))
    finally:
        kiosk.stop()


def test_a_pool_kiosk_goes_straight_to_where_a_badge_was_sent_lately(harness: Harness, net: Lan) -> None:
    """The badge's next badge-in at the same kiosk goes straight to the member a Redirect sent it to
    (no second redirect: the member reached is not asked); once that member is gone, the badge still
    gets a session, from the member the kiosk reaches (docs/pools.md §4)."""
    holder, other, session, kiosk = pooled_kiosk_at_the_other(harness, net)
    try:
        for _ in range(2):
            kiosk.insert(BADGE)
            assert kiosk.wait_session()["session_id"] == session["id"]
            kiosk.remove()
            kiosk.wait_idle()
        log = kiosk.log_text()
        assert log.count("sends this viewer to") == 1, log[-3000:]
        assert (
            log.count(f"{holder.host.address}:{holder.port}: going straight to the member this badge") == 1
        )
        assert "presents token" not in other.log_text().rsplit("redirected to", 1)[1]
        assert other.sessions() == [] and [s["id"] for s in holder.sessions()] == [session["id"]]
        # The member remembered dies with its sessions: the badge gets a new session on the other.
        holder.signal(signal.SIGKILL)
        kill_sessions(holder.runtime / "link.sock")
        kiosk.insert(BADGE)
        again = kiosk.wait_session(timeout=120)
        assert again["session_id"] != session["id"]
        assert [s["id"] for s in other.sessions()] == [again["session_id"]]
        assert BADGE not in kiosk.log_text() and BADGE not in other.log_text()
    finally:
        kiosk.stop()

"""A digest's home dies (docs/pools.md §3.2): with the LAN directory each badge's digest is decided by
one member, its *home* (rendezvous hashing over the members alive), which need not be the member that
holds the badge's session. Three real members in network namespaces (real mDNS, the pool port); a
badge's session on A while its home is C; C is SIGKILLed (its host gone). The digest's home is then
B, which never heard of the badge: A must have claimed its session again at B, so that the badge at a
kiosk that reaches B is redirected to A's session (the same picture, no second session anywhere), and
a badge without a session presented at two kiosks at once (one reaching A, one B) still gets one."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from itertools import count

import pytest

from tests.e2e.harness import Harness, differing_pixels, eventually, kill_sessions, png_pixels
from tests.pool.netns import Host, Lan
from tests.pool.rig import FOOT, MemberServer, kiosk_argv, run_kiosk_script
from tests.pool.test_drain_failover import holder, member_id, three_members
from wayray.config.model.policies import SessionTokenKind
from wayray.pool.lan import rendezvous_home
from wayray.server.tokens import TokenHasher

pytestmark = pytest.mark.slow


def homed_at_c_then_b(harness: Harness, ids: list[str], prefix: str) -> Iterator[tuple[str, str]]:
    """Badges (and their digests under the pool's key) whose home is C among A, B and C, and B once
    C is gone: computed from the members' ids as every member computes it (wayray.pool.lan)."""
    hasher = TokenHasher((harness.tmp / "pool-token.key").read_bytes())
    a, b, c = ids
    for n in count():
        badge = f"{prefix}-{n}"
        digest = hasher.ref(SessionTokenKind.BADGE, badge).digest
        if rendezvous_home(ids, digest) == c and rendezvous_home([a, b], digest) == b:
            yield badge, digest


def kiosk_run(
    harness: Harness, host: Host, srv: MemberServer, badge: str, name: str, *args: str
) -> subprocess.CompletedProcess[str]:
    argv = kiosk_argv(harness, host, f"{srv.host.address}:{srv.port}", "--fingerprint", srv.fingerprint,
                      "--token", badge, "--stats", str(harness.tmp / f"{name}.json"), *args)  # fmt: skip
    return subprocess.run(
        argv, env=harness.env, cwd=harness.home, capture_output=True, text=True, timeout=300
    )


def answers(srv: MemberServer, member: str) -> list[bool]:
    """Whether ``srv`` lists ``member`` as answering (empty: not listed)."""
    return [r["answers"] for r in srv.admin("pool")["members"] if r["id"] == member]


def present(
    harness: Harness,
    host: Host,
    srv: MemberServer,
    badge: str,
    name: str,
    go: threading.Barrier,
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """The badge at a kiosk that reaches ``srv``, when the other thread is ready too."""
    shot = str(harness.tmp / f"{name}.png")
    go.wait()
    runs[name] = kiosk_run(harness, host, srv, badge, name, "--snapshot", shot)


def stats(harness: Harness, name: str) -> dict[str, object]:
    found: dict[str, object] = json.loads((harness.tmp / f"{name}.json").read_text())
    return found


def test_a_badge_whose_home_died_still_finds_its_session_on_another_member(
    harness: Harness, net: Lan
) -> None:
    members = three_members(harness, net, command=FOOT)
    a, b, c = members
    ids = [member_id(m) for m in members]
    badges = homed_at_c_then_b(harness, ids, "home-death-badge")
    badge, digest = next(badges)
    k1, k2 = net.add("kiosk1"), net.add("kiosk2")

    # The badge's session goes to A (B and C drained), and its entry to its home, C.
    for srv in (b, c):
        srv.admin("drain", draining=True)
    eventually(lambda: [r["state"] for r in a.admin("pool")["members"] if not r["this"]] == ["drain"] * 2,
               "A to see B and C drained")  # fmt: skip
    marker = harness.home / "typed-before-the-home-died"
    script = harness.write_script(
        "home-death.txt", f"settle 1000\ntype echo at-home > {marker}\nkey Return\nsettle 700\n"
    )
    where = (f"{a.host.address}:{a.port}", "--fingerprint", a.fingerprint, "--token", badge)
    first = run_kiosk_script(
        harness, k1, [a, b, c], script, *where, "--stats", str(harness.tmp / "first.json")
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert marker.read_text() == "at-home\n"
    (session,) = a.sessions()
    assert stats(harness, "first")["session_id"] == session["id"]
    listed = {r["token"]: r["member"] for r in c.admin("pool", sessions=True)["sessions"]}
    assert listed.get(digest[:8]) == ids[0], "the test's digest is not the server's: its homes mean nothing"
    b.admin("drain", draining=False)  # B takes new sessions again (C stays drained until it dies)

    # C, the badge's home, dies with its host; A and B find it gone.
    c.signal(signal.SIGKILL)
    kill_sessions(c.runtime / "link.sock")
    eventually(lambda: not c.proc or c.proc.poll() is not None, "C to die")
    for srv in (a, b):
        eventually(lambda s=srv: answers(s, ids[2]) in ([], [False]), f"{srv.host.name} to find C dead")

    # The badge at a kiosk that reaches B (the digest's home now): redirected to A's one session.
    shot = harness.tmp / "after-home-died.png"
    second = kiosk_run(harness, k2, b, badge, "second", "--snapshot", str(shot), "--settle", "700")
    assert second.returncode == 0, second.stderr[-3000:]
    got = stats(harness, "second")
    assert (got["session_id"], got["redirects"]) == (session["id"], 1), got
    assert b.sessions() == [], "the badge got a second session on B, its new home"
    assert [s["id"] for s in a.sessions()] == [session["id"]]
    after = eventually(lambda: (s := a.session())["state"] == "detached" and s, "A's session detached")
    assert differing_pixels(png_pixels(shot), a.screenshot(after["id"])) == 0, (
        "kiosk 2 showed another picture"
    )

    # Badges without a session, homed at C before, presented at two kiosks at once (A and B): one
    # session each, never two.
    for n in range(3):
        other, _ = next(badges)
        go = threading.Barrier(2)
        runs: dict[str, subprocess.CompletedProcess[str]] = {}
        threads = [
            threading.Thread(
                target=present, args=(harness, k, s, other, f"double-{n}-{s.host.name}", go, runs)
            )
            for k, s in ((k1, a), (k2, b))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        said = " / ".join(f"{name}: {run.stderr[-1500:]}" for name, run in runs.items())
        # Each kiosk showed the badge's one session (or had it moved to the other kiosk, which
        # took it a moment later: one session shows at one kiosk at a time).
        shown = {stats(harness, name)["session_id"] for name in runs} - {None}
        assert len(shown) == 1, f"{other}: the kiosks were shown {shown}: {said}"
        assert len(a.sessions()) + len(b.sessions()) == n + 2, f"{other}: a second session: {said}"
        assert holder([a, b], shown.pop()) in (a, b)
    for srv in (a, b):
        assert "home-death-badge" not in srv.log_text()

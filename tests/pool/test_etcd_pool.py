"""Real wrsrvd members whose session directory is a real three-member etcd cluster (docs/pools.md
§11): the members run in network namespaces joined by a bridge and find each other by mDNS; etcd runs
on the bridge, reached over mutual TLS. A badge whose session is on one member, presented at a kiosk
that reached the other, is redirected to it and shows the same session; an etcd member is killed and
the next badge-in still finds the session (nothing lost)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import Harness, eventually
from tests.pool.etcd_rig import EtcdCluster, etcd_cluster
from tests.pool.netns import Host, Lan
from tests.pool.rig import (
    FOOT,
    MemberServer,
    kiosk_argv,
    member,
    member_identity,
    start_client,
    wradm,
    wradm_until,
)
from tests.pool.test_drain_failover import holder, one_shot
from tests.pool.test_redirect import BADGE, run_kiosk

pytestmark = pytest.mark.slow


def etcd_pool_args(harness: Harness, hosts: list[Host], etcd: EtcdCluster, key: Path | None) -> list[str]:
    """What makes ``hosts`` one pool whose session directory is ``etcd`` (the members' identities
    made here), with ``key`` as the pool's token key file when given."""
    tls = ",".join(str(p) for p in (etcd.ca.path, etcd.client.cert, etcd.client.key))
    args = [arg for h in hosts for arg in ("--pool-peer", member_identity(harness, h))]
    args += ["--pool-directory", etcd.url, "--pool-etcd-tls", tls]
    return args if key is None else [*args, "--pool-key-file", str(key)]


def test_a_badge_is_redirected_to_its_session_through_etcd_and_an_etcd_member_may_die(
    harness: Harness, net: Lan
) -> None:
    with etcd_cluster(harness.tmp / "etcd", 3, address=net.root_address()) as etcd:
        hosts = [net.add("srva"), net.add("srvb")]
        extra = etcd_pool_args(harness, hosts, etcd, harness.tmp / "pool-token.key")
        a, b = (
            member(harness, h, extra=extra, command=["foot", "--window-size-chars=80x24", "sh"])
            for h in hosts
        )
        for srv, other in ((a, "srvb"), (b, "srva")):
            eventually(lambda s=srv: "sharing the session directory in etcd" in s.log_text(), "etcd joined")
            eventually(
                lambda s=srv, o=other: f"on {o} at" in s.log_text(), f"{srv.host.name} to find {other}"
            )
        k1, k2 = net.add("kiosk1"), net.add("kiosk2")
        first = run_kiosk(harness, k1, a, "--snapshot", str(harness.tmp / "k1.png"), "--settle", "500")
        assert first.returncode == 0, first.stderr[-3000:]
        holder, other = (a, b) if a.sessions() else (b, a)
        (session,) = holder.sessions()
        assert other.sessions() == []
        for round_ in ("before", "after"):
            if round_ == "after":
                etcd.kill(etcd.members[0])  # every member's first endpoint
            stats = harness.tmp / f"kiosk2-{round_}.json"
            shot = str(harness.tmp / f"kiosk2-{round_}.png")
            second = run_kiosk(
                harness, k2, other, "--snapshot", shot, "--settle", "500", "--stats", str(stats)
            )
            assert second.returncode == 0, second.stderr[-3000:]
            assert json.loads(stats.read_text())["redirects"] == 1, round_
            assert json.loads(stats.read_text())["session_id"] == session["id"], round_
            assert other.sessions() == [], f"{round_}: a second session was started for the badge"
            assert [s["id"] for s in holder.sessions()] == [session["id"]]
            eventually(lambda: holder.session()["state"] == "detached", "the session detached")
        assert "this badge's session is on" in other.log_text()


def test_a_member_with_another_token_key_takes_no_badge_and_says_why(harness: Harness, net: Lan) -> None:
    """A member whose pool token key file is not the pool's (another file, say one made afresh by
    ``--pool-key-file`` on a host never given the pool's) would digest every badge differently: with
    an etcd directory it found no session of the others' and started a second one. The key check in
    etcd refuses it: it logs why and what to do, a badge that reaches it is told to try another
    server and gets no session there, and the members with the pool's key carry on."""
    with etcd_cluster(harness.tmp / "etcd", 1, address=net.root_address()) as etcd:
        hosts = [net.add("srva"), net.add("srvm")]
        common = etcd_pool_args(harness, hosts, etcd, None)
        right, wrong = harness.tmp / "pool-token.key", harness.tmp / "pool-token-elsewhere.key"
        a = member(harness, hosts[0], extra=[*common, "--pool-key-file", str(right)], command=FOOT)
        eventually(lambda: "sharing the session directory in etcd" in a.log_text(), "a joined etcd")
        m = member(harness, hosts[1], extra=[*common, "--pool-key-file", str(wrong)], command=FOOT)
        refused = "this member refuses to use the session directory in etcd"
        eventually(
            lambda: refused in m.log_text() or "sharing the session directory in etcd" in m.log_text(),
            "the mis-keyed member to come up in the pool",
        )
        kiosk = net.add("kiosk1")
        at_a = run_kiosk(harness, kiosk, a, "--snapshot", str(harness.tmp / "a.png"), "--settle", "500")
        assert at_a.returncode == 0, at_a.stderr[-3000:]
        assert len(a.sessions()) == 1, "the new session was placed on the mis-keyed member"
        (session,) = a.sessions()
        for attempt in ("first", "again"):
            at_m = run_kiosk(harness, kiosk, m, "--no-reconnect", "--snapshot", str(harness.tmp / "m.png"))
            assert at_m.returncode != 0, f"{attempt}: the mis-keyed member took the badge"
            assert m.sessions() == [], f"{attempt}: a second session was started on the mis-keyed member"
            assert [s["id"] for s in a.sessions()] == [session["id"]], f"{attempt}: a second session"
            assert "its pool token key is not the pool's" in at_m.stderr, at_m.stderr[-3000:]
        # Its log says what is wrong and what to do (every 30 s, not for every badge).
        said = [line for line in m.log_text().splitlines() if refused in line]
        assert said, m.log_text()[-3000:]
        assert f"the pool token key in {wrong} is not the pool's" in said[0], said[0]
        assert "copy the pool's token key file from a member of pool lab" in said[0], said[0]
        assert "NOT sharing the session directory in etcd" in m.log_text()
        # What an operator reads: on the refused member, that it takes no badges, why and what to do;
        # on the other, which member is refused (it announces its refusal: etcd holds no record of it).
        m_id = m.admin("status")["pool"]["member"]
        for view in ("pool", "status"):
            told = wradm(harness, m, view)
            assert (
                "takes no badges" in told and f"the pool token key in {wrong} is not the pool's" in told
            ), told
            assert "copy the pool's token key file from a member of pool lab" in told, told
        seen = wradm_until(harness, a, "pool", " is refused")
        assert f"member standalone on srvm ({m_id}) is refused" in seen, seen
        assert f"standalone on srvm ({m_id}): refused at the members' key check" in wradm(
            harness, a, "status"
        )
        assert "takes no badges" not in seen + wradm(harness, a, "status")
        for key_file in (right, wrong):  # no byte of either key in either log
            secret = key_file.read_bytes()
            assert secret.hex() not in a.log_text() + m.log_text()


def refused_at(harness: Harness, host: Host, srv: MemberServer, badge: str) -> str:
    """A kiosk's badge at ``srv`` that is refused (the kiosk does not try again): what it was told."""
    shot = str(harness.tmp / f"{badge}-refused.png")
    argv = kiosk_argv(harness, host, f"{srv.host.address}:{srv.port}", "--fingerprint", srv.fingerprint,
                      "--token", badge, "--no-reconnect", "--snapshot", shot)  # fmt: skip
    run = subprocess.run(
        argv, env=harness.env, cwd=harness.home, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0, f"{srv.host.name} took badge {badge}"
    return run.stderr


def test_a_token_key_rotation_with_etcd_one_member_at_a_time_makes_no_second_session(
    harness: Harness, net: Lan
) -> None:
    """The rotation of docs/pools.md §3.3 with an etcd directory, the members restarted one after the
    other: the first with the new key moves the key check record on; the one not restarted yet keeps
    serving its session (a badge of it at the other member is redirected there) but takes no new
    badge; a new badge gets its session at the restarted member; once both run the new key every
    badge finds its one session."""
    with etcd_cluster(harness.tmp / "etcd", 1, address=net.root_address()) as etcd:
        hosts = [net.add("srva"), net.add("srvb")]
        key = harness.tmp / "pool-token.key"
        extra = etcd_pool_args(harness, hosts, etcd, key)
        members = [member(harness, h, extra=extra, command=["sleep", "3600"]) for h in hosts]
        for srv, other in zip(members, ("srvb", "srva"), strict=True):
            eventually(
                lambda s=srv, o=other: f"on {o} at" in s.log_text(), f"{srv.host.name} to find {other}"
            )
        kiosk = net.add("kiosk")
        before = one_shot(harness, kiosk, members[0], "rotated-badge")
        owner = holder(members, before["session_id"])
        first = members[1] if owner is members[0] else members[0]
        # The rotation: the old key becomes the previous one, a new key is made; `first` restarts.
        previous = harness.tmp / "pool-token.previous.key"
        key.rename(previous)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, secrets.token_bytes(32))
        os.close(fd)
        first.signal(signal.SIGTERM)
        first.wait()
        first.extra = [*first.extra, "--pool-previous-key-file", str(previous)]
        first.start()
        eventually(lambda: "the pool token key is rotated" in first.log_text(), "the record to move on")
        eventually(
            lambda: "is the pool's previous key" in owner.log_text(), "the owner to find itself behind"
        )
        # The owner, left behind, keeps its session: its badge at the restarted member is redirected.
        moved = one_shot(harness, kiosk, first, "rotated-badge")
        assert (moved["session_id"], moved["redirects"]) == (before["session_id"], 1)
        assert first.sessions() == [], "a second session was started under the new key"
        # It takes no new badge; the restarted member does (placement skips the owner).
        told = refused_at(harness, kiosk, owner, "new-badge")
        assert "its pool token key is not the pool's" in told, told[-3000:]
        new = one_shot(harness, kiosk, first, "new-badge")
        assert holder(members, new["session_id"]) is first
        # The owner restarted with the new key too: everything found, one session per badge.
        owner.signal(signal.SIGTERM)
        owner.wait()
        owner.extra = [*owner.extra, "--pool-previous-key-file", str(previous)]
        owner.start()
        eventually(
            lambda: [s["id"] for s in owner.sessions()] == [before["session_id"]],
            "the session to be served again by its restarted wrsrvd",
        )
        eventually(
            lambda: f"on {first.host.name} at" in owner.log_text(), "the owner to find the other again"
        )
        direct = one_shot(harness, kiosk, owner, "rotated-badge")
        assert (direct["session_id"], direct["redirects"]) == (before["session_id"], 0)
        again = one_shot(harness, kiosk, owner, "new-badge")
        assert (again["session_id"], again["redirects"]) == (new["session_id"], 1)
        assert sum(len(m.sessions()) for m in members) == 2
        for secret in (key.read_bytes(), previous.read_bytes()):
            assert secret.hex() not in owner.log_text() + first.log_text()


def test_a_badge_while_etcd_is_stalled_is_told_to_try_again_and_gets_its_session_once_etcd_answers(
    harness: Harness, net: Lan
) -> None:
    """etcd that does not answer (here: its process stopped; in life: a loaded member whose disk is
    slow to sync, a leader election) must not leave a kiosk waiting in silence for its session
    directory: a kiosk waits 10 s for the server's answer to its Hello, and then only knows the
    handshake timed out. The member answers within its bound that the directory is slow, so the kiosk
    tries again; the claim goes on meanwhile, and once etcd answers the badge gets its session (one)."""
    with etcd_cluster(harness.tmp / "etcd", 1, address=net.root_address()) as etcd:
        (host,) = [net.add("srva")]
        extra = etcd_pool_args(harness, [host], etcd, harness.tmp / "pool-token.key")
        a = member(harness, host, extra=extra, command=FOOT)
        eventually(lambda: "sharing the session directory in etcd" in a.log_text(), "a joined etcd")
        (stalled,) = etcd.members
        assert stalled.proc is not None
        kiosk = net.add("kiosk1")
        os.kill(stalled.proc.pid, signal.SIGSTOP)
        try:
            once = run_kiosk(
                harness, kiosk, a, "--no-reconnect", "--snapshot", str(harness.tmp / "once.png")
            )
            assert once.returncode != 0, "a badge got a session while the directory did not answer"
            assert "HANDSHAKE_TIMEOUT" not in once.stderr, once.stderr[-3000:]
            assert "the pool's session directory is slow to answer" in once.stderr, once.stderr[-3000:]
            assert a.sessions() == []
            # A kiosk that reconnects (as every kiosk does) while etcd is still stopped: it is told to
            # try again, and does, until etcd answers.
            shot = harness.tmp / "later.png"
            client = start_client(harness, kiosk, f"{host.address}:{a.port}", "--fingerprint", a.fingerprint,
                                  "--token", BADGE, "--snapshot", str(shot), "--timeout", "300")  # fmt: skip
            eventually(
                lambda: "slow to answer" in client.stderr(), "the reconnecting kiosk told to try again"
            )
        finally:
            os.kill(stalled.proc.pid, signal.SIGCONT)
        later = harness.finish(client, 300)
        assert later.returncode == 0, later.stderr[-3000:]
        assert shot.exists()
        assert len(a.sessions()) == 1, a.sessions()
        assert "HANDSHAKE_TIMEOUT" not in later.stderr, later.stderr[-3000:]


def test_a_member_started_while_etcd_does_not_answer_comes_up_and_joins_once_it_does(
    harness: Harness, net: Lan
) -> None:
    """A member must not refuse to start because its pool's etcd is slow (that would cost the sessions
    it serves), nor say it shares the directory before it does: it logs that etcd does not answer,
    joins from its keep-alive rounds once etcd answers, says so then, and its badges get sessions."""
    with etcd_cluster(harness.tmp / "etcd", 1, address=net.root_address()) as etcd:
        (host,) = [net.add("srva")]
        extra = etcd_pool_args(harness, [host], etcd, harness.tmp / "pool-token.key")
        (stalled,) = etcd.members
        assert stalled.proc is not None
        os.kill(stalled.proc.pid, signal.SIGSTOP)
        try:
            a = member(harness, host, extra=extra, command=FOOT)
            said = "the session directory does not answer"
            eventually(lambda: said in a.log_text(), "etcd's silence logged")
            eventually(lambda: "serving on UDP port" in a.log_text(), "the member to serve")
            assert "sharing the session directory" not in a.log_text()
        finally:
            os.kill(stalled.proc.pid, signal.SIGCONT)
        eventually(
            lambda: (
                "sharing the session directory in etcd as member" in a.log_text()
                and "(etcd answers now)" in a.log_text()
            ),
            "the member to join once etcd answers",
        )
        kiosk = net.add("kiosk1")
        done = run_kiosk(harness, kiosk, a, "--snapshot", str(harness.tmp / "k.png"))
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(a.sessions()) == 1, a.sessions()

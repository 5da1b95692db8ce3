"""The link's keep-alive (sans-IO): Pings on time, "not responding" after the timeout without a Pong,
"responding" at the next Pong, and no false alarm after wrsrvd itself stalled."""

from __future__ import annotations

import pytest

from wayray.link import LinkError, Ping, Pong
from wayray.link.keepalive import Change, KeepAliveSettings, LinkKeepAlive

S = KeepAliveSettings(interval=2.0, timeout=6.0)


def drive(
    ka: LinkKeepAlive, until: float, *, answer: bool
) -> tuple[list[float], list[tuple[float, Change]]]:
    """Call tick at each deadline until ``until``; answer every Ping at once when ``answer``. Returns when
    Pings went out and the changes with their times."""
    pings: list[float] = []
    changes: list[tuple[float, Change]] = []
    now = ka.deadline()
    while now <= until:
        ping, change = ka.tick(now)
        if change is not None:
            changes.append((now, change))
        if ping is not None:
            pings.append(now)
            if answer:
                back = ka.answered(Pong(nonce=ping.nonce), now + 0.001)
                if back is not None:
                    changes.append((now, back))
        now = max(ka.deadline(), now + 0.001)
    return pings, changes


def test_a_compositor_that_answers_is_pinged_every_interval_and_never_flagged() -> None:
    ka = LinkKeepAlive(100.0, S)
    pings, changes = drive(ka, 160.0, answer=True)
    assert pings == [100.0 + 2 * i for i in range(31)]
    assert changes == []
    assert ka.responding and ka.rtt == pytest.approx(0.001)


def test_silence_for_the_timeout_is_not_responding_once_and_a_pong_ends_it() -> None:
    ka = LinkKeepAlive(0.0, S)
    drive(ka, 10.0, answer=True)  # last Pong at 10.001
    pings, changes = drive(ka, 40.0, answer=False)
    assert changes == [(pytest.approx(16.001), Change.NOT_RESPONDING)]  # once, not at every tick
    assert not ka.responding and ka.not_responding_since == pytest.approx(16.001)
    assert pings and all(b - a == pytest.approx(2.0) for a, b in zip(pings, pings[1:], strict=False))
    # A late answer, to an older Ping, still shows the compositor runs again.
    assert ka.answered(Pong(nonce=1), 41.0) is Change.RESPONDING
    assert ka.responding and ka.not_responding_since is None
    assert ka.answered(Pong(nonce=2), 41.5) is None  # only once


def test_no_alarm_when_the_owner_itself_did_not_run_for_a_while() -> None:
    ka = LinkKeepAlive(0.0, S)
    ping, _ = ka.tick(0.0)
    assert ping is not None
    # wrsrvd stalls for 30 s; the compositor's Pong sits unread in the socket meanwhile.
    ping, change = ka.tick(30.0)
    assert change is None and ping is not None
    assert ka.answered(Pong(nonce=ping.nonce), 30.01) is None
    # A compositor that really went silent during a stall is still noticed, a timeout later.
    ka = LinkKeepAlive(0.0, S)
    ka.tick(0.0)
    assert ka.tick(30.0)[1] is None
    _, changes = drive(ka, 60.0, answer=False)
    assert [c for _, c in changes] == [Change.NOT_RESPONDING]
    assert 30.0 < changes[0][0] <= 30.0 + S.timeout


def test_a_pong_for_a_ping_never_sent_is_a_protocol_error() -> None:
    ka = LinkKeepAlive(0.0, S)
    with pytest.raises(LinkError, match="answers no Ping"):
        ka.answered(Pong(nonce=1), 0.5)
    ping, _ = ka.tick(0.0)
    assert ping == Ping(nonce=1)
    with pytest.raises(LinkError, match="answers no Ping"):
        ka.answered(Pong(nonce=2), 0.5)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        KeepAliveSettings(interval=2.0, timeout=2.0)
    with pytest.raises(ValueError):
        KeepAliveSettings(interval=0.0, timeout=6.0)

"""The one backoff every reconnecting loop uses (the session's link, wrsrvd's launcher bridge, the
viewer): doubling delays with jitter, back to the first once the other side was reached."""

from __future__ import annotations

from wayray.common.backoff import Backoff


def test_delays_double_up_to_the_longest_each_drawn_from_its_upper_half() -> None:
    b = Backoff(0.25, 5.0)
    bases = [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    for base in bases:
        d = b.delay()
        assert base / 2 <= d <= base, (base, d)


def test_many_clients_spread_out() -> None:
    # Clients that lost the same server at the same moment do not come back in the same instant.
    first_tries = {Backoff(1.0, 8.0).delay() for _ in range(50)}
    assert len(first_tries) > 40 and max(first_tries) - min(first_tries) > 0.2


def test_reset_starts_again_from_the_first_delay() -> None:
    b = Backoff(0.1, 2.0)
    for _ in range(10):
        b.delay()
    assert b.delay() > 0.1  # at the longest by now
    b.reset()
    assert 0.05 <= b.delay() <= 0.1
    assert 0.1 <= b.delay() <= 0.2

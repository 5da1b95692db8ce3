"""FrameCredit on its own, as the compositor will use it behind wrsrvd."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayray.wire.credit import CreditError, FrameCredit, SeqOrderError


def test_window_and_cumulative_acks() -> None:
    c = FrameCredit(3)
    for seq in (10, 11, 12):
        c.sent(seq)
    assert c.available == 0
    with pytest.raises(CreditError, match="no frame credit"):
        c.sent(13)
    c.acked(11)
    assert c.available == 2 and c.unacked == (12,)
    with pytest.raises(CreditError, match="goes back"):
        c.acked(10)
    with pytest.raises(CreditError, match="last FrameUpdate was 12"):
        c.acked(99)
    with pytest.raises(SeqOrderError):
        c.sent(12)
    c.reset(window=5)
    assert c.available == 5 and c.unacked == ()
    c.sent(1)  # a new viewer: seqs start anew


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8), st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=60))
def test_never_more_in_flight_than_the_window(window: int, ops: list[tuple[bool, int]]) -> None:
    c = FrameCredit(window)
    seq = 0
    for is_send, n in ops:
        try:
            if is_send:
                seq += 1 + n % 3
                c.sent(seq)
            else:
                c.acked(n)
        except CreditError:
            pass
        assert 0 <= c.available <= window and len(c.unacked) <= window
        assert list(c.unacked) == sorted(set(c.unacked))

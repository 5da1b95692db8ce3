"""Log lines a remote peer can cause at will: the first is logged, the rest counted (review M5)."""

from __future__ import annotations

import logging

import pytest

from wayray.common.log import Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def note(r: Repeats, key: str = "kf") -> None:
    r.note(key, logging.INFO, "the viewer asks for a keyframe (%s)", "DECODER_ERROR",
           summary="{n} more keyframe requests in the last {seconds} s")  # fmt: skip


def test_a_flood_costs_two_lines_a_minute_and_the_count_is_told(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    r = Repeats(logging.getLogger("test.repeats"), window=60.0, clock=clock)
    with caplog.at_level(logging.INFO, "test.repeats"):
        for _ in range(10_000):  # within one window
            note(r)
            clock.now += 0.001
        clock.now += 55.0  # past the window: the next one ends it, says the count, and is logged again
        note(r)
        r.flush()
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines == [
        "the viewer asks for a keyframe (DECODER_ERROR)",
        "9999 more keyframe requests in the last 65 s",
        "the viewer asks for a keyframe (DECODER_ERROR)",
    ]


def test_kinds_are_counted_apart_and_flush_tells_what_is_pending(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    r = Repeats(logging.getLogger("test.repeats"), clock=clock)
    with caplog.at_level(logging.INFO, "test.repeats"):
        for _ in range(3):
            note(r, "a")
            note(r, "b")
        clock.now += 2.4
        r.flush()
        note(r, "a")  # after a flush (the viewer left) the next one is news again
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines.count("the viewer asks for a keyframe (DECODER_ERROR)") == 3
    assert lines.count("2 more keyframe requests in the last 2 s") == 2

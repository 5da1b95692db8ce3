"""Key events of a keyboard-wedge reader into badge IDs (the part that needs no device)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.client.tokens.util import KEY_CODES, KEY_LEFTSHIFT
from wayray.client.tokens.keystrokes import (
    EV_KEY,
    EV_SYN,
    Dropped,
    InputEvent,
    KeystrokeAssembler,
    Line,
    Outcome,
    pack_event,
    parse_events,
)


def typed(text: str, start: float = 100.0, step: float = 0.004) -> list[InputEvent]:
    """What a reader sends for ``text``: press/release per key, Shift around upper-case letters."""
    events = []
    t = start
    for ch in text:
        shifted = ch.isupper()
        code = KEY_CODES[ch.lower()]
        if shifted:
            events.append(InputEvent(t, EV_KEY, KEY_LEFTSHIFT, 1))
        events += [InputEvent(t, EV_KEY, code, 1), InputEvent(t, EV_SYN, 0, 0)]
        events += [InputEvent(t + step / 2, EV_KEY, code, 0), InputEvent(t + step / 2, EV_SYN, 0, 0)]
        if shifted:
            events.append(InputEvent(t + step / 2, EV_KEY, KEY_LEFTSHIFT, 0))
        t += step
    return events


def feed(assembler: KeystrokeAssembler, events: list[InputEvent]) -> list[Outcome]:
    return [outcome for event in events for outcome in assembler.feed(event)]


def test_digits_then_enter_are_one_badge_id() -> None:
    assert feed(KeystrokeAssembler(), typed("0004711\n")) == [Line("0004711")]


def test_shift_gives_upper_case_and_tab_also_ends_an_id() -> None:
    assert feed(KeystrokeAssembler(), typed("DeadBEEF\tc0ffee\n")) == [Line("DeadBEEF"), Line("c0ffee")]


def test_keypad_digits_and_keypad_enter() -> None:
    kp = {"7": 71, "8": 72, "9": 73, "4": 75, "1": 79, "0": 82}
    events = [InputEvent(1.0, EV_KEY, kp[d], 1) for d in "7890141"]
    events.append(InputEvent(1.0, EV_KEY, 96, 1))  # KEY_KPENTER
    assert feed(KeystrokeAssembler(), events) == [Line("7890141")]


def test_auto_repeat_and_unknown_keys_add_nothing() -> None:
    events = typed("12")
    events.insert(1, InputEvent(100.0, EV_KEY, KEY_CODES["1"], 2))  # auto-repeat
    events.insert(1, InputEvent(100.0, EV_KEY, 59, 1))  # F1
    assert feed(KeystrokeAssembler(), events + typed("\n", start=100.1)) == [Line("12")]


def test_a_pause_inside_an_id_drops_what_came_before() -> None:
    assembler = KeystrokeAssembler(inter_key_timeout=0.5)
    events = typed("99") + typed("1234\n", start=102.0)
    out = feed(assembler, events)
    assert isinstance(out[0], Dropped) and "pause" in out[0].reason
    assert out[1:] == [Line("1234")]


def test_a_line_longer_than_the_limit_is_dropped_whole_and_the_next_one_counts() -> None:
    assembler = KeystrokeAssembler(max_length=8)
    out = feed(assembler, typed("123456789\n") + typed("12345678\n", start=101.0))
    assert len(out) == 2 and isinstance(out[0], Dropped) and "more than 8" in out[0].reason
    assert out[1] == Line("12345678")


def test_enter_alone_is_nothing() -> None:
    assert feed(KeystrokeAssembler(), typed("\n\n")) == []


def test_events_survive_being_split_across_reads() -> None:
    raw = b"".join(pack_event(e.time, e.type, e.code, e.value) for e in typed("42\n"))
    first, rest = parse_events(raw[:37])
    second, rest = parse_events(rest + raw[37:])
    assert rest == b""
    assert [(e.type, e.code, e.value) for e in first + second] == [
        (e.type, e.code, e.value) for e in typed("42\n")
    ]


@given(st.text(alphabet="0123456789abcdefABCDEFxyzXYZ-", min_size=1, max_size=64))
def test_whatever_a_reader_types_comes_out_as_typed(badge: str) -> None:
    assert feed(KeystrokeAssembler(), typed(badge + "\n")) == [Line(badge)]

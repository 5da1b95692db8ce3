"""Helpers for the token source tests."""

from __future__ import annotations

import asyncio

from wayray.client.tokens import TokenEvent, TokenSource

#: Generous: the machine is shared and slow at times. Nothing here measures time.
DEADLINE = 30.0


async def next_event(source: TokenSource) -> TokenEvent:
    """The source's next event, or a test failure after a generous deadline."""
    try:
        return await asyncio.wait_for(anext(source), DEADLINE)
    except TimeoutError:
        raise AssertionError(f"{source.description}: no event within {DEADLINE} s") from None


#: Key codes of linux/input-event-codes.h, written out here (not taken from the code under test).
KEY_CODES: dict[str, int] = {
    **{d: 2 + i for i, d in enumerate("1234567890")},
    **dict(zip("qwertyuiop", range(16, 26), strict=True)),
    **dict(zip("asdfghjkl", range(30, 39), strict=True)),
    **dict(zip("zxcvbnm", range(44, 51), strict=True)),
    "-": 12,
    "\n": 28,  # KEY_ENTER
    "\t": 15,  # KEY_TAB
    " ": 57,  # KEY_SPACE
}
KEY_LEFTSHIFT = 42

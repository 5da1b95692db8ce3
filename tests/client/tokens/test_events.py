"""Token rules, and the redacted form that is all logs ever see of a token."""

from __future__ import annotations

import re

import pytest

from wayray.client.tokens import (
    MAX_TOKEN_BYTES,
    BadgeInserted,
    BadgeRemoved,
    InvalidToken,
    TokenKind,
    redact,
    validate_token,
)


def test_a_token_keeps_its_characters_and_loses_surrounding_whitespace() -> None:
    assert validate_token("  0042-ABcd\n") == "0042-ABcd"
    assert validate_token("ü" * (MAX_TOKEN_BYTES // 2)) == "ü" * (MAX_TOKEN_BYTES // 2)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (" \n\t", "empty"),
        ("12 34", "whitespace"),
        ("12\x0734", "control character"),
        ("x" * (MAX_TOKEN_BYTES + 1), "at most 1024"),
        ("ü" * (MAX_TOKEN_BYTES // 2 + 1), "at most 1024"),  # counted in UTF-8 bytes, as on the wire
    ],
)
def test_unusable_tokens_are_refused_without_quoting_them(text: str, why: str) -> None:
    with pytest.raises(InvalidToken, match=why) as info:
        validate_token(text)
    if text.strip():
        assert text.strip() not in str(info.value)


def test_redacted_form_hides_the_token_but_tells_tokens_apart() -> None:
    badge = "4711000815"
    shown = redact(badge)
    assert badge not in shown and badge[:4] not in shown and badge[-4:] not in shown
    assert re.fullmatch("#[0-9a-f]{6}", shown)  # a fingerprint, not even the badge's length
    assert redact(badge) == shown  # the same badge is recognisable within one run
    assert redact("4711000816") != shown


def test_events_never_show_their_token() -> None:
    event = BadgeInserted("s3cr3t-badge", TokenKind.BADGE, "test")
    assert "s3cr3t" not in repr(event) and "s3cr3t" not in str(event) and "s3cr3t" not in f"{event}"
    assert "BADGE" in repr(event)
    assert BadgeRemoved() == BadgeRemoved("")


def test_nothing_that_carries_a_token_shows_it_in_its_repr() -> None:
    """What the review once saw, a raw badge in a kiosk's log, would come from a repr that shows a
    token (a log line or a traceback that formats the object). None of them does."""
    from pathlib import Path

    from wayray.client.kiosk import KioskOptions
    from wayray.client.tokens import TokenSourceSettings
    from wayray.client.viewer import ViewerOptions
    from wayray.config import BadgeReaderSettings
    from wayray.transport import ClientSettings, KnownHosts
    from wayray.wire import HelloParams

    secret, key, own = "s3cr3t-badge-0042", "s3cr3t-access-key", "s3cr3t-terminal-id"
    client = ClientSettings(trust=KnownHosts(Path("/nonexistent/known_hosts")))
    objects = [
        BadgeInserted(secret, TokenKind.BADGE, "test"),
        HelloParams(token=secret, token_kind=TokenKind.BADGE, screen_width=1, screen_height=1,
                    access_key=key, terminal_key=own),
        ViewerOptions(host="h", port=1, client=client, token=secret, token_kind=TokenKind.BADGE,
                      access_key=key, terminal_key=own),
        KioskOptions(host="h", port=1, client=client, access_key=key, terminal_key=own),
        TokenSourceSettings.from_config(BadgeReaderSettings(), token=secret),
    ]  # fmt: skip
    for obj in objects:
        for text in (repr(obj), str(obj), f"{obj}"):
            assert "s3cr3t" not in text, text

"""docs/kiosk.md states the limits and defaults the code has."""

from __future__ import annotations

import inspect

from tests.conftest import REPO
from wayray.client.tokens import FileTokenSource, UdevBadgeReader
from wayray.client.tokens.file_source import SETTLE_TIME
from wayray.client.tokens.socket_source import MAX_LINE, Command
from wayray.client.tokens.terminal import TERMINAL_TOKEN_FILE

DOC = (REPO / "docs" / "kiosk.md").read_text()


def default(cls: type, name: str) -> object:
    return inspect.signature(cls).parameters[name].default


def test_the_documented_numbers_are_the_codes() -> None:
    section = DOC[DOC.index("## Token sources") :]
    assert f"longer than {MAX_LINE} bytes" in section
    assert f"more than **{default(UdevBadgeReader, 'max_length')}**" in section
    assert f"more than **{default(UdevBadgeReader, 'inter_key_timeout')} s**" in section
    assert f"checked {round(1 / default(FileTokenSource, 'poll_interval'))} times a second" in section
    assert f"held still for {round(SETTLE_TIME * 1000)} ms" in section
    assert f"`{TERMINAL_TOKEN_FILE}`" in section
    for command in Command:
        assert f"`{command.value}" in section

"""Where there is no udev or inotify (illumos), the package still imports and says what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.tokens.util import next_event
from wayray.client.tokens import (
    BadgeInserted,
    FileTokenSource,
    FileWatch,
    ReaderMatch,
    UdevBadgeReader,
    udev_reader,
)
from wayray.client.tokens import inotify as inotify_module
from wayray.common.errors import WayRayError


def test_the_package_imports_without_pyudev_and_the_reader_says_why_it_cannot_run() -> None:
    code = """
import asyncio, sys
sys.modules["pyudev"] = None  # as on a system without it: importing it fails
from wayray.client.tokens import UdevBadgeReader, ReaderMatch, open_token_source
from wayray.common.errors import WayRayError
assert "pyudev" not in [m for m in sys.modules if sys.modules[m] is not None]
async def main():
    try:
        await UdevBadgeReader(ReaderMatch(0x076B, 0x5427)).start()
    except WayRayError as err:
        print(err.message); print(err.hint)
asyncio.run(main())
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    message, hint = res.stdout.splitlines()
    assert message.startswith("no udev on this system")
    assert "token file or socket" in hint


async def test_on_a_platform_without_udev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udev_reader.sys, "platform", "sunos5")
    reader = UdevBadgeReader(ReaderMatch(0x076B))
    with pytest.raises(WayRayError, match=r"no udev on this platform \(sunos5\)"):
        await reader.start()
    await reader.close()


async def test_without_inotify_the_file_is_polled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(inotify_module, "available", lambda: False)
    badge = tmp_path / "badge"
    forced = FileTokenSource(badge, watch=FileWatch.INOTIFY)
    with pytest.raises(WayRayError, match="no inotify on this platform"):
        await forced.start()
    await forced.close()
    async with FileTokenSource(badge, poll_interval=0.05) as source:
        badge.write_text("4242\n")
        event = await next_event(source)
        assert isinstance(event, BadgeInserted) and event.token == "4242"

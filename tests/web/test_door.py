"""wrsrvd refuses to serve the browser kiosk where it could not tell who connects."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest

from wayray.common.errors import WayRayError
from wayray.config import PolicyConfig, ServerConfig
from wayray.server.frontdoor import FrontDoor
from wayray.server.settings import WebSettings, standalone_settings


def test_no_browser_kiosk_without_a_login_or_an_access_key(tmp_path: Path) -> None:
    # Sessions without a login, and no access key (a configuration that counts on client
    # certificates, which browsers do not present to WebTransport): wrsrvd does not start.
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    server = ServerConfig(name="standalone", session_command=("true",), listen=("127.0.0.1",), port=0)
    settings = standalone_settings(
        server,
        PolicyConfig(name="default"),
        state_dir=tmp_path / "state",
        runtime_dir=run,
        environ=dict(os.environ),
    )
    settings = dataclasses.replace(settings, access_key_file=None, web=WebSettings(enabled=True, port=0))
    with pytest.raises(WayRayError, match="needs an access key"):
        asyncio.run(FrontDoor.start(settings))
    # Nothing left listening or locked: the same state starts again (here without the web endpoint).
    settings = dataclasses.replace(settings, web=WebSettings())

    async def start_and_stop() -> None:
        door = await FrontDoor.start(settings)
        await door.stop()

    asyncio.run(start_and_stop())

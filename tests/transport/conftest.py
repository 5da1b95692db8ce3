"""Fixtures for the transport tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from wayray.transport import ServerIdentity


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> ServerIdentity:
    return ServerIdentity.load_or_create(tmp_path_factory.mktemp("srv") / "state", name="test")


@pytest.fixture
def other_identity(tmp_path: Path) -> ServerIdentity:
    return ServerIdentity.load_or_create(tmp_path / "other-state", name="impostor")

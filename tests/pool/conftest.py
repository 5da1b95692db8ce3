from collections.abc import Iterator
from contextlib import suppress

import pytest

from tests.e2e.harness import Harness, harness, kill_sessions
from tests.pool.netns import Lan, lan

__all__ = ["harness"]


@pytest.fixture
def net(harness: Harness) -> Iterator[Lan]:
    """A bridge and namespaces for this test; afterwards every session its servers started ends
    (they live in process sessions of their own, and outlive the servers the harness kills)."""
    with lan() as network:
        try:
            yield network
        finally:
            harness.cleanup()
            for srv in harness.servers:
                with suppress(OSError):
                    kill_sessions(srv.runtime / "link.sock")

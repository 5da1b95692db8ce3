"""The kiosk's player raises the nice value of the thread that starts it (wayray.audio.realtime): here
that is the test process's own, which every later test's processes would inherit. Put it back."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _keep_this_process_nice() -> Iterator[None]:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    yield
    if os.getpriority(os.PRIO_PROCESS, 0) != before:
        os.setpriority(os.PRIO_PROCESS, 0, before)

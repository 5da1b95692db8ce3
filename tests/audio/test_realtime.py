"""What carries sound runs at the sound's priority where the system allows it (wayray.audio.realtime,
docs/audio.md §7): the kiosk's writer thread and its pacat, against a real PulseAudio; and where it is
not allowed, the log says so and how to allow it."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio.test_playback_adapts import tone_frame
from tests.e2e.harness import DEADLINE
from tests.e2e.kiosk_sound import KioskSound
from wayray.audio import playback, realtime
from wayray.audio.opus import FRAME_US

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def scheduling(tid: int) -> tuple[int, int]:
    """(policy without SCHED_RESET_ON_FORK, realtime priority) of a thread or process."""
    policy = os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    return policy, os.sched_getparam(tid).sched_priority


def thread_named(name: str) -> int | None:
    for task in Path("/proc/self/task").iterdir():
        if (task / "comm").read_text().strip() == name:
            return int(task.name)
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="realtime scheduling needs root or RLIMIT_RTPRIO")
def test_the_kiosk_s_sound_writer_and_pacat_run_at_realtime_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kiosk's writer thread and its pacat: SCHED_RR at 4 (below the sound server's 5), each with a
    200 ms RLIMIT_RTTIME (a runaway is killed, not left on a core); the tone plays through them."""
    directory = Path(tempfile.mkdtemp(prefix="wr-rt-", dir="/tmp"))
    sound = KioskSound(directory / "kiosk").start()
    for key, value in sound.env.items():
        monkeypatch.setenv(key, value)
    try:

        async def play() -> tuple[dict[str, object], tuple[int, int], tuple[int, int], tuple[int, int]]:
            player = playback.Player()
            player.start()
            t0 = time.monotonic()
            end = t0 + DEADLINE
            seq = 0
            writer: int | None = None
            while time.monotonic() < end and (writer is None or player.stats.played < 25):
                player.put(seq, tone_frame(seq))
                seq += 1
                await asyncio.sleep(max(0.0, t0 + seq * FRAME_US / 1e6 - time.monotonic()))
                writer = writer or thread_named("audio writer")
            assert writer is not None and player._proc is not None
            pacat = player._proc.pid
            got = scheduling(writer), scheduling(pacat), resource.prlimit(pacat, resource.RLIMIT_RTTIME)
            stats = player.to_json()
            player.stop()
            await player.wait_closed()
            return stats, *got  # type: ignore[return-value]

        stats, writer, pacat, pacat_rttime = asyncio.run(play())
        assert writer == (os.SCHED_RR, realtime.RT_PRIORITY), writer
        assert pacat == (os.SCHED_RR, realtime.RT_PRIORITY), pacat
        assert pacat_rttime == (realtime.RTTIME_US, realtime.RTTIME_US)
        assert resource.getrlimit(resource.RLIMIT_RTTIME)[0] <= realtime.RTTIME_US  # the writer's process
        assert stats["writer_priority"] == stats["pacat_priority"] == "realtime", stats
        assert stats["loop_priority"] == "raised", stats  # the thread that hands it the frames: nice -11
        assert np.abs(sound.heard()).max(initial=0.0) > 0.2  # and the tone was played
        # The kiosk's own sound server (the test's stand-in for one set up as Debian does) is above them.
        server = sound._server
        assert server is not None
        sink_threads = [scheduling(int(t.name)) for t in Path(f"/proc/{server.pid}/task").iterdir()]
        assert (os.SCHED_RR, 5) in sink_threads, sink_threads
    finally:
        sound.stop()


def test_where_realtime_is_not_allowed_the_log_says_how_to_allow_it() -> None:
    """As a user without RLIMIT_RTPRIO or RLIMIT_NICE (nobody): the thread runs at ordinary priority,
    and the log says what that costs and how to grant realtime scheduling."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as nobody")
    code = (
        "import logging, os, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr);"
        "os.setpriority(os.PRIO_PROCESS, 0, 0);"  # not what this test process has
        "from wayray.audio import realtime;"
        "print(realtime.raise_priority(what='the kiosk\\'s sound writer'));"
        "print(realtime.raise_priority(what='the kiosk\\'s sound writer'))"  # said once, not twice
    )
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "prlimit", "--rtprio=0:0", "--nice=0:0", "--", sys.executable, "-c", code],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["normal", "normal"]
    assert result.stderr.count("runs at ordinary priority, not realtime") == 1, result.stderr
    assert "LimitRTPRIO=5" in result.stderr and "rtprio 5" in result.stderr, result.stderr

"""Lip sync's choice of windows and delay (wayray.audio.avsync) against a real PulseAudio and real
processes playing into it; the compositor side (holding the pixels back) is tested in tests/compositor."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import eventually
from wayray.audio import avsync
from wayray.audio.avsync import AvSync, parent_pid, playing_pids, windows_of
from wayray.audio.soundserver import RATE, SoundServer

needs_pulseaudio = pytest.mark.skipif(
    not all(os.path.exists(f"/usr/bin/{tool}") for tool in ("pulseaudio", "pacat")),
    reason="needs pulseaudio and pacat",
)


def test_a_sounding_process_belongs_to_the_nearest_ancestor_with_a_window() -> None:
    parents = {300: 200, 200: 100, 100: 1, 400: 1, 500: 500}
    # pacat (300) of a player (200) started from a terminal (100): the player's window, not the terminal's
    assert windows_of([300], {100, 200}, parents.get) == {200}
    assert windows_of([300], {100}, parents.get) == {100}  # a shell's paplay: its terminal's window
    assert windows_of([200], {200}, parents.get) == {200}  # the program itself
    assert windows_of([400, 300], {200}, parents.get) == {200}  # a daemon's sound: nobody's window
    assert windows_of([500], {100}, parents.get) == set()  # a loop in the chain ends the walk
    assert windows_of([999], {100}, parents.get) == set()  # gone


def test_parent_pid_reads_proc() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert parent_pid(child.pid) == os.getpid()
    finally:
        child.kill()
        child.wait()
    assert parent_pid(child.pid) is None


@dataclass
class WindowInfo:
    pid: int | None


class Compositor:
    """What AvSync asks of the session's compositor: its windows, and holding their pixels back
    (recorded here: the pixels are the compositor's tests' business)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.calls: list[tuple[frozenset[int], float]] = []

    def windows(self) -> list[WindowInfo]:
        return [WindowInfo(pid) for pid in self.pids] + [WindowInfo(None)]

    def set_av_sync(self, pids: Collection[int], delay_ms: float) -> None:
        self.calls.append((frozenset(pids), delay_ms))


class Rig:
    """A session's sound server; asyncio calls on a loop in a thread of their own."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        runtime = tmp / "run"
        runtime.mkdir(mode=0o700)
        self.sound = SoundServer(runtime, "wayland-test")
        self.run(self.sound.start())
        self.env = self.sound.client_env(dict(os.environ))

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def call(self, fn, *args):  # type: ignore[no-untyped-def]
        async def call():  # type: ignore[no-untyped-def]
            return fn(*args)

        return self.run(call())

    def player(self) -> subprocess.Popen[bytes]:
        """A program that plays through its own pacat child, as bench/av_flash_client.py does."""
        script = (
            f"pacat --playback --raw --format=s16le --rate={RATE} --channels=2 --latency-msec=20 "
            "--client-name=test-player < /dev/zero"
        )
        return subprocess.Popen(["sh", "-c", f"{script}; :"], env=self.env)

    def close(self) -> None:
        self.run(self.sound.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def pacat_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid), "pacat"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@needs_pulseaudio
def test_the_programs_playing_into_the_session_s_sound_server_are_found(rig: Rig) -> None:
    assert playing_pids(rig.sound.server) == []
    player = rig.player()
    try:
        pacat = eventually(lambda: pacat_children(player.pid) or None, what="the player's pacat")
        assert eventually(lambda: pacat[0] in playing_pids(rig.sound.server), what="its stream listed")
        assert windows_of(playing_pids(rig.sound.server), {player.pid}) == {player.pid}
    finally:
        player.kill()
        subprocess.run(["pkill", "-P", str(player.pid)], check=False)
        player.wait()


@needs_pulseaudio
def test_the_sounding_window_is_held_back_by_the_viewer_s_delay_and_let_go_in_silence(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(avsync, "CHECK_EVERY", 0.05)
    player = rig.player()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    comp = Compositor([player.pid, bystander.pid])
    last_sound = [time.monotonic() + 3600.0]  # sounding until the test says otherwise
    sync = AvSync(comp, rig.sound.server, lambda: last_sound[0])
    try:
        rig.call(sync.start, 7)
        rig.call(sync.viewer_delay, 8, 900_000)  # another stream's report: ignored
        assert sync.delay_ms() is None
        rig.call(sync.viewer_delay, 7, 120_000)
        expected = 120 + avsync.CAPTURE_DELAY_MS - avsync.PICTURE_PATH_MS
        assert sync.delay_ms() == pytest.approx(expected)
        eventually(
            lambda: comp.calls and comp.calls[-1][0] == {player.pid}, what="the player's window held back"
        )
        assert comp.calls[-1][1] == pytest.approx(expected)
        # A change within STEP_MS is not passed on; a bigger one is.
        n = len(comp.calls)
        rig.call(sync.viewer_delay, 7, 122_000)
        rig.call(sync.viewer_delay, 7, 200_000)
        eventually(lambda: comp.calls[-1][1] == pytest.approx(expected + 80), what="the new delay")
        assert len(comp.calls) == n + 1
        # A viewer reporting nonsense gets at most MAX_DELAY_MS.
        rig.call(sync.viewer_delay, 7, 4_000_000_000)
        eventually(lambda: comp.calls[-1][1] == avsync.MAX_DELAY_MS, what="the bound")
        # The session's sound stops: every picture is shown at once again.
        last_sound[0] = 0.0
        eventually(lambda: comp.calls[-1] == (frozenset(), 0.0), what="lip sync off in silence")
        last_sound[0] = time.monotonic() + 3600.0
        eventually(lambda: comp.calls[-1][0] == {player.pid}, what="on again with sound")
    finally:
        rig.call(sync.stop)
        player.kill()
        subprocess.run(["pkill", "-P", str(player.pid)], check=False)
        player.wait()
        bystander.kill()
        bystander.wait()
    assert comp.calls[-1] == (frozenset(), 0.0)  # the viewer went: nothing held back


def test_without_a_report_from_the_viewer_nothing_is_held_back() -> None:
    comp = Compositor([os.getpid()])
    sync = AvSync(comp, "unix:/nonexistent", lambda: time.monotonic())
    assert sync.delay_ms() is None
    sync.stop()
    assert comp.calls == []  # nothing was applied, so nothing to undo


def test_a_sound_server_that_hangs_costs_a_timeout_not_the_loop_nor_the_exit() -> None:
    """in_thread gives up on an answer after its timeout; the process still exits at once (the thread
    is a daemon), where the default executor's thread would be joined at exit, for ever."""
    code = (
        "import asyncio, threading\n"
        "from wayray.audio.asking import in_thread\n"
        "async def main():\n"
        "    assert await in_thread(lambda: 42, timeout=60, name='answers') == 42\n"
        "    try:\n"
        "        await in_thread(threading.Event().wait, timeout=0.2, name='hangs')\n"
        "    except TimeoutError:\n"
        "        print('gave up')\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "gave up\n"

"""The kiosk's microphone: 20 ms frames of 48 kHz stereo s16le, Opus-encoded, for MicFrame.

From the kiosk's own sound server (``parec`` from its default source, or a source named with
``wrclient --microphone SOURCE``), or from a WAV file played once in real time (``--mic-wav``: tests and
deployment checks). Started only when the server's AudioStart says the session may have it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from wayray.audio.opus import CHANNELS, FRAME_BYTES, FRAME_US, RATE, OpusEncoder
from wayray.wire import MicFrame

log = logging.getLogger("wayray.audio")

MIC_BITRATE = 64_000


class MicSource:
    def __init__(self, *, device: str | None = None, wav: Path | None = None) -> None:
        """``device``: a source of the kiosk's sound server ("" or None: its default); ``wav``: a file."""
        self.device = device
        self.wav = wav
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def live(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, send: Callable[[MicFrame], None], on_live: Callable[[bool], None] | None = None) -> None:
        """Send the microphone with ``send``; ``on_live(True)`` when it goes on, ``(False)`` when it
        goes off (the viewer's indicator)."""
        if self.live:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(send, on_live), name="microphone")

    async def _run(self, send: Callable[[MicFrame], None], on_live: Callable[[bool], None] | None) -> None:
        encoder = OpusEncoder(MIC_BITRATE)
        seq = 0
        log.info("microphone on (%s)", self.wav or self.device or "the default source")
        if on_live is not None:
            on_live(True)
        try:
            async for pcm in self._frames():
                for data in encoder.encode(pcm):
                    send(MicFrame(seq=seq, timestamp_us=time.monotonic_ns() // 1000, data=data))
                    seq += 1
                    self.frames_sent += 1
        except Exception as err:  # a microphone that fails costs the microphone only
            log.error("the microphone stopped: %s", err)
        finally:
            log.info("microphone off (%d frames sent)", self.frames_sent)
            if on_live is not None:
                on_live(False)

    async def _frames(self) -> AsyncIterator[bytes]:
        if self.wav is not None:
            async for pcm in _wav_frames(self.wav):
                yield pcm
            log.info("microphone file %s played", self.wav)
            return
        parec = shutil.which("parec")
        if parec is None:
            raise RuntimeError("parec is not installed (Debian: apt install pulseaudio-utils)")
        argv = [
            parec,
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            f"--channels={CHANNELS}",
            "--latency-msec=10",
        ]
        if self.device:
            argv.append(f"--device={self.device}")
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                yield await self._proc.stdout.readexactly(FRAME_BYTES)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _wav_frames(path: Path) -> AsyncIterator[bytes]:
    """The file's frames at the pace of a microphone (one per 20 ms, on the monotonic clock)."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (CHANNELS, 2, RATE):
            raise RuntimeError(f"{path}: a microphone file is 48 kHz stereo 16-bit WAV")
        data = w.readframes(w.getnframes())
    start = time.monotonic()
    for n, offset in enumerate(range(0, len(data), FRAME_BYTES)):
        chunk = data[offset : offset + FRAME_BYTES]
        yield chunk + bytes(FRAME_BYTES - len(chunk))
        await asyncio.sleep(max(0.0, start + (n + 1) * FRAME_US / 1e6 - time.monotonic()))

"""The viewer's side of the session's sound: AudioStart/AudioFrame/AudioStop decoded, counted, played
through this machine's sound server (``wrclient --play-audio``, wayray.audio.playback) and/or (with
``wrclient --audio-wav FILE``) written to a WAV file at their place in the stream.

A frame's place is its ``seq``: frames count on through silence (which is not sent), so a gap in
``seq`` is written as that many frames of silence, and the file keeps the session's timing. A later
stream (the viewer attached again, the sound server came back) continues where the file ends.
"""

from __future__ import annotations

import logging
import statistics
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wayray.audio.opus import CHANNELS, FRAME_SAMPLES, RATE, OpusDecoder
from wayray.audio.playback import Player
from wayray.wire import AudioCodec, AudioDelay, AudioFrame, AudioStart, AudioStop

log = logging.getLogger("wayray.audio")

#: A change of the sound's delay here that is reported again to the session (AudioDelay): 5 ms, well
#: inside what a person notices of picture and sound apart, and not a message for every frame's jitter.
DELAY_STEP_US = 5_000
#: Latency samples kept for the stats (the last ones).
MAX_LATENCIES = 100_000


@dataclass
class ReceiverStats:
    streams: int = 0
    #: The bit rate the last AudioStart announced (bits per second).
    bitrate: int = 0
    frames: int = 0
    bytes: int = 0
    #: Frames of silence the session did not send (gaps in seq), in this viewer's streams.
    silent_frames: int = 0
    #: Frames of another stream than the current one, or whose seq did not increase.
    dropped: int = 0
    decode_errors: int = 0
    #: Capture (session's clock) → received (this viewer's clock), ms. Meaningful where both clocks are
    #: one (session and viewer on the same host): CLOCK_MONOTONIC is system-wide.
    latency_ms: list[float] = field(default_factory=list)
    #: Media timestamps (µs) of the first and the last frame received: when this viewer's sound began
    #: and ended on the session's clock.
    first_timestamp_us: int | None = None
    last_timestamp_us: int | None = None

    def to_json(self) -> dict[str, Any]:
        lat = sorted(self.latency_ms)
        return {
            "streams": self.streams,
            "bitrate": self.bitrate,
            "frames": self.frames,
            "bytes": self.bytes,
            "silent_frames": self.silent_frames,
            "dropped": self.dropped,
            "decode_errors": self.decode_errors,
            "first_timestamp_us": self.first_timestamp_us,
            "last_timestamp_us": self.last_timestamp_us,
            "latency_ms_median": round(statistics.median(lat), 3) if lat else None,
            "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
        }


class AudioReceiver:
    def __init__(self, wav: Path | None = None, player: Player | None = None) -> None:
        self.stats = ReceiverStats()
        self.player = player
        self._wav_path = wav
        self._wav: wave.Wave_write | None = None
        self._written = 0  # sample frames in the file
        self._stream: int | None = None
        self._decoder: OpusDecoder | None = None
        self._base = 0  # the file position of the current stream's seq 0
        self._next_seq: int | None = None
        #: The last delay reported for lip sync: for which stream, how much (µs).
        self._delay_reported: tuple[int, int] | None = None

    def handle(self, message: AudioStart | AudioFrame | AudioStop) -> None:
        if isinstance(message, AudioStart):
            self._start(message)
        elif isinstance(message, AudioFrame):
            self._frame(message)
        elif message.stream_id == self._stream:
            log.info("the session's sound stopped (stream %d)", message.stream_id)
            self._stream = None
            if self.player is not None:
                self.player.stop()

    def delay_report(self) -> AudioDelay | None:
        """What to tell the session of this viewer's delay (receiving a frame → hearing it) for lip
        sync, when it changed by DELAY_STEP_US or more since the last report on this connection and
        stream (the first report of each); None otherwise, or while nothing plays here."""
        if self._stream is None or self.player is None:
            return None
        delay = self.player.delay_us()
        last = self._delay_reported
        if delay is None or (
            last is not None and last[0] == self._stream and abs(last[1] - delay) < DELAY_STEP_US
        ):
            return None
        self._delay_reported = (self._stream, delay)
        return AudioDelay(stream_id=self._stream, delay_us=min(delay, 0xFFFFFFFF))

    def disconnected(self) -> None:
        """The connection ended (the badge moved, the session ended): quiet at once."""
        self._stream = None
        self._delay_reported = None  # the next connection's session is told anew
        if self.player is not None:
            self.player.stop()

    def _start(self, start: AudioStart) -> None:
        if start.codec is not AudioCodec.OPUS or start.sample_rate != RATE or start.channels != CHANNELS:
            log.warning(
                "sound in a format this viewer does not play (%s, %d Hz, %d channels); ignored",
                start.codec.name,
                start.sample_rate,
                start.channels,
            )
            self._stream = None
            return
        self._stream = start.stream_id
        self._decoder = OpusDecoder()
        self._base = self._written
        self._next_seq = None
        self.stats.streams += 1
        self.stats.bitrate = start.bitrate
        if self.player is not None:
            self.player.start()
        log.info(
            "sound from the session: Opus %d kbit/s (stream %d)", start.bitrate // 1000, start.stream_id
        )

    def _frame(self, frame: AudioFrame) -> None:
        if frame.stream_id != self._stream or self._decoder is None:
            self.stats.dropped += 1
            return
        if self._next_seq is not None and frame.seq < self._next_seq:
            self.stats.dropped += 1
            return
        self.stats.latency_ms.append((time.monotonic_ns() // 1000 - frame.timestamp_us) / 1000)
        del self.stats.latency_ms[:-MAX_LATENCIES]
        try:
            pcm = self._decoder.decode(frame.data)
        except ValueError:
            self.stats.decode_errors += 1
            return
        if self._next_seq is None:
            self._base = self._written - frame.seq * FRAME_SAMPLES  # the first frame goes at the end
        else:
            self.stats.silent_frames += frame.seq - self._next_seq
        self._next_seq = frame.seq + 1
        if self.player is not None:
            self.player.put(frame.seq, pcm)
        self.stats.frames += 1
        self.stats.bytes += len(frame.data)
        if self.stats.first_timestamp_us is None:
            self.stats.first_timestamp_us = frame.timestamp_us
        self.stats.last_timestamp_us = frame.timestamp_us
        self._write_at(self._base + frame.seq * FRAME_SAMPLES, pcm)

    def _write_at(self, position: int, pcm: bytes) -> None:
        if self._wav_path is None:
            self._written = position + len(pcm) // (2 * CHANNELS)
            return
        if self._wav is None:
            self._wav = wave.open(str(self._wav_path), "wb")
            self._wav.setnchannels(CHANNELS)
            self._wav.setsampwidth(2)
            self._wav.setframerate(RATE)
        gap = position - self._written
        if gap > 0:
            self._wav.writeframes(bytes(gap * 2 * CHANNELS))
        self._wav.writeframes(pcm)
        self._written = max(self._written, position) + len(pcm) // (2 * CHANNELS)

    def to_json(self) -> dict[str, Any]:
        data = self.stats.to_json()
        if self.player is not None:
            data["playback"] = self.player.to_json()
        return data

    def close(self) -> None:
        """Stop: playback quiet, the WAV file (if any) complete and closed."""
        self.disconnected()
        if self._wav is not None:
            self._wav.close()
            self._wav = None

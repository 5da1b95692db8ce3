"""Message bodies of the audio channel (docs/protocol.md §8, docs/audio.md): the session's sound to the
viewer, the viewer's microphone to the session. Layouts are declared in :mod:`wayray.wire.protocol`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Largest Opus packet in one AudioFrame or MicFrame (Opus itself stops at 1275 bytes per frame).
MAX_AUDIO_DATA = 1500


class AudioCodec(enum.IntEnum):
    """How AudioFrame and MicFrame ``data`` is encoded."""

    #: One Opus packet (RFC 6716) per frame.
    OPUS = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStart:
    """Server → client: a stream of the session's sound begins; frames of ``stream_id`` follow."""

    stream_id: int
    codec: AudioCodec
    sample_rate: int
    channels: int
    #: Duration of one frame in microseconds (20000 for 20 ms).
    frame_us: int
    #: The encoder's bit rate, bits per second.
    bitrate: int
    #: The viewer may send MicFrame (the policy allows the microphone and ``microphone`` is negotiated).
    microphone: bool


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class AudioFrame:
    """Server → client: one frame of the session's sound."""

    stream_id: int
    #: Frames of this stream counted from 0, silent (unsent) ones included: a gap is silence.
    seq: int
    #: Capture time of the frame's first sample on the session's media clock (microseconds), the clock
    #: the session stamps its pictures with.
    timestamp_us: int
    data: bytes

    def __repr__(self) -> str:
        return (
            f"AudioFrame(stream {self.stream_id}, seq {self.seq}, t={self.timestamp_us} us, "
            f"{len(self.data)} bytes)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStop:
    """Server → client: the stream ended (the session's sound server went away); play out and stop."""

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioDelay:
    """Client → server: how long this viewer takes from receiving a frame of ``stream_id`` to playing
    it (its jitter buffer, what waits on the way to its sound server, the sink's buffer). With
    ``av-sync`` the session shows the sounding program's pictures as much later (docs/audio.md §8).
    Sent when it changes."""

    stream_id: int
    #: Microseconds (the session uses at most its own bound of it).
    delay_us: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class MicFrame:
    """Client → server: one frame of the viewer's microphone (Opus, as the AudioStart said)."""

    #: Increasing per connection; a frame whose seq does not increase is dropped by the session.
    seq: int
    #: Capture time on the viewer's clock (microseconds); only differences mean anything.
    timestamp_us: int
    data: bytes

    def __repr__(self) -> str:
        return f"MicFrame(seq {self.seq}, {len(self.data)} bytes)"

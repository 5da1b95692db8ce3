"""Adapting a session's frames to its viewer's link: a bandwidth and delay estimate from the frame
acknowledgements, and from it the video bit rate, a frame rate, and a cap on bytes in flight.

No I/O and no clock of its own (times are passed in), so it can be tested with made-up links. The
display pump (``wayray.session.pump``) feeds it every frame it sends and every FrameAck it gets, and
asks it before each frame. docs/encoding.md section 10 explains the controller; in short:

- **Delay**: ``rtt`` is the smallest (ack time − send time − the viewer's decode time) of the frames
  of at most ``SMALL_FRAME`` bytes (a typed character, a cursor blink) acknowledged in the last
  ``RTT_WINDOW_S`` seconds: the link's round trip with nothing queued.
- **Bandwidth**: a frame's bytes over the time its transmission took, seen from the acks: from when
  it could start (sent + ``rtt``, or when the previous frame had arrived, whichever is later) to its
  arrival (ack − its decode time); before any round trip is known, a frame that took at least
  ``LONG_FRAME_S`` from sent to arrival counts whole if it is a large one. ``bandwidth`` is the
  median of those rates over the last ``SAMPLES`` frames of at least ``SAMPLE_BYTES`` whose
  transmission took at least ``MIN_SAMPLE_S`` (faster ones say only that the link is fast; smaller
  ones, on a busy machine, measure the processes' waits for a core). Pacing does not bias it: an idle
  link's frame measures its own transmission.
- **Control**: the video gets ``SHARE`` of the bandwidth (the rest is for text, the cursor, sound,
  and the error of the estimate); when that is below the configured bit rate, the frame rate and
  each frame's bits are lowered by the same factor, the square root of the shortfall (a link at a
  quarter of the configured rate: half the frames, each half as big). Frames are paced at that rate,
  and a new frame waits while more than ``bandwidth × rtt`` (the link's own capacity) plus one frame
  is in flight, so nothing queues beyond the frame being sent. With no estimate yet, one large frame
  at a time (``PROBE_BYTES``) goes out until the first one measures the link.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: Share of the estimated bandwidth the video regions aim at.
SHARE = 0.7
#: Acks of frames this small (one packet) measure the round trip: their own transmission is negligible.
SMALL_FRAME = 1500
#: Frames whose transmission took at least this long count as bandwidth samples.
MIN_SAMPLE_S = 0.004
#: Before a round trip is known (no small frame yet), a frame this long from sent to arrival counts
#: whole as its transmission: the round trip is a small part of it (a keyframe on a slow link).
LONG_FRAME_S = 0.25
LONG_FRAME_BYTES = 64 * 1024
#: Smaller frames are no bandwidth sample: on a busy machine their transit is the processes' waits.
SAMPLE_BYTES = 2048
#: How many such frames the estimate averages over.
SAMPLES = 16
#: The round trip is the least seen over this many seconds (a route change raises it after that).
RTT_WINDOW_S = 10.0
#: Without an estimate, frames wait while this many bytes are in flight.
PROBE_BYTES = 256 * 1024
#: The lowest frame rate adaptation goes down to.
MIN_FPS = 5.0


@dataclass(slots=True)
class _Sent:
    seq: int
    at: float
    bytes: int


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the controller knows and decided, for logs and the pump's statistics."""

    bandwidth_bps: float | None
    rtt_s: float | None
    video_bitrate: int
    fps: float
    in_flight_bytes: int
    in_flight_frames: int


class LinkAdapter:
    def __init__(self, *, video_bitrate: int, video_fps: int, max_fps: float) -> None:
        """``video_bitrate``: the configured ceiling (encoder.bitrate); ``video_fps``: the frame rate x264
        plans its bits for; ``max_fps``: the session's frame rate while viewed."""
        self.max_bitrate = video_bitrate
        self.video_fps = video_fps
        self.max_fps = max_fps
        self._in_flight: deque[_Sent] = deque()
        self._in_flight_bytes = 0
        self._last_arrival = -math.inf
        self._samples: deque[tuple[int, float]] = deque(maxlen=SAMPLES)
        self._rtts: deque[tuple[float, float]] = deque()
        self._last_sent_at = -math.inf
        self._last_frame_bytes = 0
        #: Decisions, updated on every ack.
        self.bandwidth: float | None = None  # bytes/s
        self.rtt: float | None = None  # s
        self.fps = max_fps
        self.video_bitrate = video_bitrate  # what the encoder is told (for video_fps frames/s)
        self.target_bitrate = video_bitrate  # what the video should take at ``fps``

    # --- input -------------------------------------------------------------------------------------

    def sent(self, seq: int, nbytes: int, now: float) -> None:
        self._in_flight.append(_Sent(seq, now, nbytes))
        self._in_flight_bytes += nbytes
        self._last_sent_at = now
        self._last_frame_bytes = nbytes

    def acked(self, seq: int, decode_us: int, now: float) -> None:
        """A cumulative FrameAck: every frame up to ``seq`` arrived, the last took ``decode_us`` to show."""
        done: list[_Sent] = []
        while self._in_flight and self._in_flight[0].seq <= seq:
            done.append(self._in_flight.popleft())
        if not done:
            return
        nbytes = sum(f.bytes for f in done)
        self._in_flight_bytes -= nbytes
        arrival = now - min(decode_us / 1e6, max(0.0, now - done[-1].at))
        if nbytes <= SMALL_FRAME:  # its own transmission is negligible: a round trip sample
            # The window's minimum, kept as a rising run (a sample later and no longer than an
            # older one outlives it in the window): O(1) an ack instead of a pass over ten seconds
            # of samples.
            sample = arrival - done[-1].at
            while self._rtts and self._rtts[-1][1] >= sample:
                self._rtts.pop()
            self._rtts.append((now, sample))
        while self._rtts and self._rtts[0][0] < now - RTT_WINDOW_S:
            self._rtts.popleft()
        if self._rtts:
            self.rtt = self._rtts[0][1]
        # Its transmission could start one round trip after it was sent, or when the previous frame
        # had arrived, whichever is later (in the times the acks tell).
        if self.rtt is not None:
            start: float | None = max(done[0].at + self.rtt, self._last_arrival)
        elif done[0].at < self._last_arrival:
            start = self._last_arrival
        elif arrival - done[0].at >= LONG_FRAME_S and nbytes >= LONG_FRAME_BYTES:
            start = done[0].at  # a frame this long in transit measures the link, round trip or not
        else:
            start = None
        self._last_arrival = arrival
        took = -1.0 if start is None else arrival - start
        if took >= MIN_SAMPLE_S and nbytes >= SAMPLE_BYTES:
            self._samples.append((nbytes, took))
            # The median frame's rate: a frame held up by a busy machine (a process waiting for a
            # core) is one sample among sixteen, not a long stretch of a sum.
            rates = sorted(b / t for b, t in self._samples)
            self.bandwidth = rates[len(rates) // 2]
        self._decide()

    def reset(self) -> None:
        """Frames in flight are forgotten (a new viewer); what was learnt about the link is kept."""
        self._in_flight.clear()
        self._in_flight_bytes = 0
        self._last_arrival = -math.inf

    # --- decisions ---------------------------------------------------------------------------------

    def _decide(self) -> None:
        if self.bandwidth is None:
            return
        target = SHARE * self.bandwidth * 8
        if target >= self.max_bitrate:
            self.fps = self.max_fps
            self.target_bitrate = self.max_bitrate
            self.video_bitrate = self.max_bitrate
            return
        shortfall = math.sqrt(target / self.max_bitrate)
        self.fps = max(MIN_FPS, min(self.max_fps, self.max_fps * shortfall))
        self.target_bitrate = int(target)
        # x264 plans bits for video_fps frames a second; at ``fps`` a frame gets target/fps bits.
        self.video_bitrate = int(min(self.max_bitrate, target * self.video_fps / self.fps))

    def wait(self, now: float) -> float:
        """Seconds until the next frame may be taken (0: now). The pump also needs frame credit."""
        if self.bandwidth is None:
            if self._in_flight_bytes >= PROBE_BYTES:
                return math.inf  # until an ack
            return 0.0
        if self._in_flight_bytes > self.bandwidth * (self.rtt or 0.0) + self._last_frame_bytes:
            return math.inf  # until an ack
        if self.fps >= self.max_fps:
            return 0.0
        return max(0.0, self._last_sent_at + 1.0 / self.fps - now)

    @property
    def state(self) -> LinkState:
        return LinkState(
            bandwidth_bps=None if self.bandwidth is None else self.bandwidth * 8,
            rtt_s=self.rtt,
            video_bitrate=self.target_bitrate,
            fps=self.fps,
            in_flight_bytes=self._in_flight_bytes,
            in_flight_frames=len(self._in_flight),
        )

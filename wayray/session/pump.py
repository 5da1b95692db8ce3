"""The display pump: the session's frames out to one viewer, within its credit, newest content first.

One pump per attachment (a viewer showing the session). It pulls frames from its own frame consumer
only while the viewer has frame credit, so damage accumulates in the consumer meanwhile and the next
frame carries the newest picture: latest wins, and nothing queues anywhere. A slow viewer gets fewer
frames, never older ones. Encoding runs in a worker thread (numpy, zstd and x264 release the GIL), so
the compositor keeps dispatching Wayland requests and compositing while a frame is encoded; the
consumer's snapshot the encoder reads does not change until the pump takes the next frame.

With ``settings.adaptive`` the pump also paces itself to the viewer's link (``wayray.session.adapt``):
every sent frame and every FrameAck (with the viewer's decode time) feed a bandwidth and round-trip
estimate, from which it takes frames no faster than the link carries them, keeps no more bytes in
flight than the link holds, and lowers the video bit rate; the encoder is told how many composites
each frame stands for, so content that changes every frame still goes to video when frames are few.

The cursor goes separately (CursorImage/CursorPosition, small, latest wins): it is sent as soon as it
changes, credit or not. A viewer that did not take the ``cursor`` capability gets it drawn into its
frames instead (:mod:`wayray.session.drawn_cursor`): a move of the pointer is then a frame.
Frames go out as finished wire frames (``encode_message``) through ``send``;
the server relays them untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from wayray.codec import CursorEncoder, Encoder, EncoderSettings
from wayray.codec.cursor import CursorMessage
from wayray.common import trace
from wayray.common.log import Repeats
from wayray.compositor.frames import Frame
from wayray.compositor.geometry import Rect
from wayray.compositor.session import SessionCompositor
from wayray.session.adapt import LinkAdapter, LinkState
from wayray.session.drawn_cursor import DrawnCursor
from wayray.session.videoscale import VideoScaler
from wayray.wire import (
    Capability,
    Channel,
    FrameCredit,
    FrameUpdate,
    RegionEncoding,
    encode_frame_update,
    encode_message,
)
from wayray.wire.credit import CreditError

log = logging.getLogger("wayray.session")

#: ``send(channel, wire_frame)``: hand one finished wire frame to the link; awaits room when the
#: link's buffer is full (the frame is queued either way).
Send = Callable[[Channel, bytes], Awaitable[None]]


@dataclass
class PumpStats:
    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    h264_regions: int = 0
    encode_seconds: float = 0.0
    #: Times the video regions went to half size or back (the ``video-scaled`` capability).
    video_rescaled: int = 0
    #: With adaptation: the latest estimate and decisions, and the lowest video bit rate chosen.
    link: LinkState | None = None
    lowest_video_bitrate: int | None = None


class DisplayPump:
    def __init__(
        self,
        comp: SessionCompositor,
        send: Send,
        *,
        frame_window: int,
        capabilities: frozenset[str],
        settings: EncoderSettings,
        executor: Executor,
        first_seq: int = 1,
        repeats: Repeats | None = None,
    ) -> None:
        self._comp = comp
        self._first_seq = first_seq
        self._send = send
        self._executor = executor
        # Small regions the viewer saw before go as a slot of its region cache, if it keeps one.
        # Big video regions may go at half size when encoding cannot keep up, if it scales them back.
        # (encoder.video_scaling: "auto" as videoscale.py decides, or "always", or "never").
        mode = settings.video_scale_mode
        scaling = Capability.VIDEO_SCALED in capabilities and settings.video and mode != "never"
        self._settings = dataclasses.replace(
            settings, region_cache=Capability.REGION_CACHE in capabilities, video_scaling=scaling
        )
        self.scaler = VideoScaler(float(settings.video_fps)) if scaling and mode == "auto" else None
        self.credit = FrameCredit(frame_window)
        self._cursor = CursorEncoder() if Capability.CURSOR in capabilities else None
        self._cursor_seen: tuple[int, int, int, bool] | None = None
        self._cursor_broken = False
        self._display = Capability.DISPLAY in capabilities
        self._capabilities = frozenset(str(c) for c in capabilities)
        #: The pointer drawn into the frames, for a viewer that does not draw it itself.
        self._drawn = DrawnCursor() if self._display and Capability.CURSOR not in capabilities else None
        self._wake = asyncio.Event()
        self._keyframe_wanted = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.stats = PumpStats()
        self._repeats = repeats or Repeats(log)
        self.adapter = (
            LinkAdapter(
                video_bitrate=settings.video_bitrate,
                video_fps=settings.video_fps,
                max_fps=float(settings.video_fps),
            )
            if settings.adaptive
            else None
        )
        #: Composites (changes) since the pump last took a frame.
        self._composites = 0
        self._logged_rate = settings.video_bitrate
        self._logged_at = -1e9

    # --- control (from the link) -------------------------------------------------------------------

    def start(self, *, settle: Callable[[], Awaitable[object]] | None = None) -> None:
        """Start sending. ``settle``: awaited before the first frame (the output was just resized: the
        clients get a moment to draw at the new size, so the first keyframe shows them)."""
        self._task = asyncio.get_running_loop().create_task(self._run(settle), name="display-pump")

    async def stop(self) -> None:
        """Stop after the frame being encoded, if any (the encoder is closed by the pump itself)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.exception("the display pump failed")

    def acked(self, seq: int, decode_us: int = 0) -> None:
        try:
            self.credit.acked(seq)
        except CreditError as err:  # wrsrvd checked the ack against the same frames: a bug somewhere
            self._repeats.note(
                "bad ack",
                logging.WARNING,
                "ignoring a frame acknowledgement: %s",
                err,
                summary="{n} more frame acknowledgements ignored in the last {seconds} s",
            )
            return
        if self.adapter is not None:
            self.adapter.acked(seq, decode_us, time.monotonic())
            self._log_adaptation()
        self._wake.set()

    def _log_adaptation(self) -> None:
        """A line when the video bit rate chosen moves by a quarter or more (at most one a second)."""
        assert self.adapter is not None
        state = self.adapter.state
        self.stats.link = state
        rate = state.video_bitrate
        low = self.stats.lowest_video_bitrate
        self.stats.lowest_video_bitrate = rate if low is None else min(low, rate)
        now = time.monotonic()
        if now - self._logged_at < 1.0 or abs(rate - self._logged_rate) < self._logged_rate / 4:
            return
        self._logged_at, self._logged_rate = now, rate
        log.info(
            "the viewer's link carries about %.1f Mbit/s with a %.0f ms round trip: video at %.2f Mbit/s, "
            "%.0f frames/s",
            (state.bandwidth_bps or 0) / 1e6,
            (state.rtt_s or 0) * 1000,
            rate / 1e6,
            state.fps,
        )

    def _changed(self) -> None:
        self._composites += 1
        self._wake.set()

    def request_keyframe(self) -> None:
        self._keyframe_wanted = True
        self._wake.set()

    def pointer_moved(self) -> None:
        """The viewer moved the pointer: the cursor's position goes back to it."""
        self._wake.set()

    @property
    def failed(self) -> BaseException | None:
        t = self._task
        return t.exception() if t is not None and t.done() and not t.cancelled() else None

    # --- the pump ----------------------------------------------------------------------------------

    async def _run(self, settle: Callable[[], Awaitable[object]] | None) -> None:
        loop = asyncio.get_running_loop()
        if settle is not None:
            await settle()
        consumer = self._comp.consumer(on_change=self._changed)
        width, height = self._comp.size
        encoder = (
            Encoder(width, height, self._settings, first_seq=self._first_seq) if self._display else None
        )
        if encoder is not None and self._settings.video_scale_mode == "always":
            encoder.set_video_scaled(True)  # without the capability (video_scaling off) it does nothing
        try:
            while not self._stopping:
                await self._send_cursor()
                pace = 0.0 if self.adapter is None else self.adapter.wait(time.monotonic())
                if encoder is not None and self.credit.available > 0 and pace <= 0:
                    deadline = encoder.next_deadline()
                    now = time.monotonic()
                    due = deadline is not None and now >= deadline
                    cursor_moved = self._drawn is not None and self._drawn.changed(self._comp.cursor())
                    if consumer.pending or self._keyframe_wanted or due or cursor_moved:
                        frame = consumer.take_frame()
                        await self._encode_and_send(loop, encoder, frame)
                        continue
                timeout = None
                if encoder is not None and self.credit.available > 0:
                    deadline = encoder.next_deadline()
                    if pace > 0:  # an ack wakes the pump; a finite pace is the next frame's time
                        timeout = None if pace == float("inf") else pace
                    elif deadline is not None:
                        timeout = max(0.0, deadline - time.monotonic())
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            consumer.close()
            if encoder is not None:
                encoder.close()

    async def _encode_and_send(
        self, loop: asyncio.AbstractEventLoop, encoder: Encoder, frame: Frame
    ) -> None:
        if (frame.width, frame.height) != (encoder.width, encoder.height):
            encoder.resize(frame.width, frame.height)  # the next update is a keyframe at the new size
        force = self._keyframe_wanted
        self._keyframe_wanted = False
        composites, self._composites = max(1, self._composites), 0
        if self.adapter is not None:
            encoder.set_video_bitrate(self.adapter.video_bitrate)
        else:
            composites = 1
        keys = trace.taken("taken")
        for key in keys:
            trace.mark("encode_start", key)
        started = time.perf_counter()
        pixels, damage = frame.pixels, frame.damage
        if self._drawn is not None:
            pixels, drawn_damage = self._drawn.apply(frame, self._comp.cursor())
            damage = tuple(drawn_damage)
        args = (encoder, pixels, damage, time.monotonic(), force, composites, self._capabilities)
        if _small(damage, encoder) and not force:
            result = _encode(*args)
        else:
            result = await loop.run_in_executor(self._executor, _encode, *args)
        took = time.perf_counter() - started
        self.stats.encode_seconds += took
        if result is None:
            return
        update, data = result
        if self.scaler is not None and any(
            r.encoding == RegionEncoding.H264 and r.data for r in update.regions
        ):
            self._rescale(encoder, took)
        if trace.ENABLED:
            trace.join(keys, update.seq)
            trace.mark("encoded", trace.frame_id(update.seq))
        self.credit.sent(update.seq)
        if self.adapter is not None:
            self.adapter.sent(update.seq, len(data), time.monotonic())
        s = self.stats
        s.frames += 1
        s.keyframes += update.keyframe
        s.bytes += len(data)
        s.h264_regions += sum(1 for r in update.regions if r.encoding == RegionEncoding.H264)
        if update.keyframe:  # the viewer may ask for them without end: counted after the first
            self._repeats.note(
                "keyframe",
                logging.INFO,
                "keyframe %d: %dx%d, %d bytes",
                update.seq,
                update.width,
                update.height,
                len(data),
                summary="{n} more keyframes in the last {seconds} s",
            )
        if trace.ENABLED:  # before the send: the front door may relay it before the send returns
            trace.mark("link_sent", trace.frame_id(update.seq))
        await self._send(Channel.DISPLAY, data)

    def _rescale(self, encoder: Encoder, took: float) -> None:
        """A frame with video took ``took`` s to encode: half or full size from the next one on."""
        scaler = self.scaler
        assert scaler is not None
        if scaler.encoded(took, time.monotonic()):
            encoder.set_video_scaled(scaler.scaled)
            self.stats.video_rescaled += 1
            log.info(
                "video regions now at %s size: frames with video took %.1f ms to encode, a frame at "
                "%.0f frames/s has %.1f ms",
                "half" if scaler.scaled else "full",
                scaler.decided_on * 1000,
                scaler.fps,
                1000 / scaler.fps,
            )

    async def _send_cursor(self) -> None:
        if self._cursor is None or self._cursor_broken:
            return
        state = self._comp.cursor()
        seen = (state.serial, state.x, state.y, state.visible)
        if seen == self._cursor_seen:
            return
        self._cursor_seen = seen
        image = state.image if state.visible else None
        try:
            messages: list[CursorMessage] = self._cursor.update(
                None if image is None else np.asarray(image, dtype=np.uint32),
                state.hotspot,
                state.x,
                state.y,
                state.visible,
            )
        except ValueError as err:  # a client set a cursor larger than the protocol carries
            log.warning("the pointer's image cannot be sent (%s); the viewer keeps its own", err)
            self._cursor_broken = True
            return
        for m in messages:
            await self._send(Channel.DISPLAY, encode_message(m))


#: Frames whose damage covers at most this many pixels are encoded on the event loop itself: they take
#: well under a millisecond, and handing them to the worker thread and back (two thread wake-ups,
#: the GIL changing hands twice) cost more CPU than encoding them.
INLINE_PIXELS = 256 * 256


def _small(damage: tuple[Rect, ...], encoder: Encoder) -> bool:
    if encoder.video_streams:
        return False
    return sum(r.width * r.height for r in damage) <= INLINE_PIXELS


def _encode(
    encoder: Encoder,
    pixels: np.ndarray,
    damage: tuple[object, ...],
    now: float,
    force_keyframe: bool,
    composites: int = 1,
    capabilities: frozenset[str] = frozenset(),
) -> tuple[FrameUpdate, bytes] | None:
    """Worker thread: encode one frame and serialize it into a wire frame."""
    update = encoder.encode(
        pixels,
        damage,  # type: ignore[arg-type]
        now=now,
        force_keyframe=force_keyframe,
        composites=composites,
    )
    if update is None:
        return None
    # A small frame in its short form (SmallFrameUpdate) for a viewer that takes it.
    return update, encode_frame_update(update, capabilities)

"""When video regions go at half size: the display pump's answer to an encoder that cannot keep up.

With the ``video-scaled`` capability the encoder may code big video regions at half size, and the
viewer scales them back up (docs/encoding.md section 5): x264 then has a quarter of the pixels, about
a third of its time at 1080p. The pump tells it to when the frames that carry video take longer to
encode than the frame rate allows, and to go back to full size when half-size frames take so little
that full size would fit again. Like xpra's video scaling, but with one step (full or half).

It is fed what the pump measures (the time to encode each frame that carries video) and decides with
a moving average and hysteresis; each switch costs the stream an IDR, so it happens at most every
``HOLD_S`` seconds.
"""

from __future__ import annotations

import math

#: Frames with video averaged before a decision (and again after each switch).
SAMPLES = 8
#: Weight of the newest frame in the moving average of encode times.
ALPHA = 0.2
#: Half size when frames with video take more than this share of the frame interval to encode ...
SCALE_DOWN_SHARE = 0.75
#: ... and full size again when this many times the half-size time fits in ``SCALE_UP_SHARE`` of it
#: (at 1080p a full-size frame cost 2.6 times a half-size one, docs/benchmarks.md).
FULL_COST = 3.0
SCALE_UP_SHARE = 0.6
#: Least time between two switches.
HOLD_S = 2.0


class VideoScaler:
    def __init__(self, fps: float) -> None:
        """``fps``: the frame rate the video should keep (the session's while viewed)."""
        self.fps = fps
        #: Whether video regions go at half size now.
        self.scaled = False
        #: The moving average of the encode time of frames with video, in seconds (None: too few).
        self.average: float | None = None
        self._samples = 0
        self._switched_at = -math.inf
        self.decided_on = 0.0

    def encoded(self, seconds: float, now: float) -> bool:
        """A frame that carried video took ``seconds`` to encode. True when ``scaled`` changed.

        The budget is the session's frame interval even when the pump paces a slow link to fewer
        frames: the pacer cannot tell a slow link from a slow machine (docs/encoding.md section 10),
        and half size also spends the link's fewer bits on fewer pixels."""
        self._samples += 1
        avg = self.average
        self.average = seconds if avg is None else (1 - ALPHA) * avg + ALPHA * seconds
        if self._samples < SAMPLES or now - self._switched_at < HOLD_S:
            return False
        budget = 1.0 / self.fps
        if not self.scaled and self.average > SCALE_DOWN_SHARE * budget:
            self._switch(True, now)
            return True
        if self.scaled and FULL_COST * self.average < SCALE_UP_SHARE * budget:
            self._switch(False, now)
            return True
        return False

    def _switch(self, scaled: bool, now: float) -> None:
        #: The average encode time that made the last switch (for the log).
        self.decided_on = self.average or 0.0
        self.scaled = scaled
        self._switched_at = now
        self._samples = 0
        self.average = None

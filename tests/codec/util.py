"""Helpers shared by the codec tests: drive an encoder/decoder pair over a frame stream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from wayray.codec import Decoder, Encoder, EncoderSettings
from wayray.codec.geometry import DamageRect
from wayray.wire.display import FrameUpdate, RegionEncoding

Frame = tuple[NDArray[np.uint32], list[tuple[int, int, int, int]], float]


@dataclass
class Link:
    """An encoder and a decoder joined by a perfect link, recording what went across."""

    width: int
    height: int
    settings: EncoderSettings = field(default_factory=EncoderSettings)
    updates: list[FrameUpdate] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.encoder = Encoder(self.width, self.height, self.settings)
        self.decoder = Decoder()

    def send(self, fb: NDArray[np.uint32], damage: Iterable[DamageRect], now: float) -> FrameUpdate | None:
        # Like the compositor's Frame.pixels: a read-only view the encoder must not need to write.
        view = fb.view()
        view.flags.writeable = False
        update = self.encoder.encode(view, damage, now=now)
        if update is not None:
            self.updates.append(update)
            self.decoder.apply(update)
            assert not self.decoder.needs_keyframe, self.decoder.desync_reason
        return update

    def run(self, frames: Iterable[Frame], *, exact: bool = True) -> None:
        """Send every frame; with ``exact``, the client must show the source bit for bit after each."""
        for fb, damage, now in frames:
            self.send(fb, damage, now)
            if exact:
                assert_same(self.decoder.framebuffer, fb)

    def settle(self, fb: NDArray[np.uint32], now: float) -> float:
        """Call the encoder at its deadlines, with no damage, until it has nothing pending."""
        for _ in range(20):
            deadline = self.encoder.next_deadline()
            if deadline is None:
                return now
            now = max(now, deadline)
            self.send(fb, [], now)
        raise AssertionError("encoder still has a deadline after 20 calls")


def assert_same(got: NDArray[np.uint32] | None, want: NDArray[np.uint32]) -> None:
    assert got is not None, "decoder has no framebuffer"
    if not np.array_equal(got, want):
        ys, xs = np.nonzero(got != want)
        raise AssertionError(
            f"{ys.size} pixels differ, first at ({xs[0]}, {ys[0]}): got {got[ys[0], xs[0]]:#010x}, "
            f"want {want[ys[0], xs[0]]:#010x}; "
            f"bounding box x {xs.min()}..{xs.max()}, y {ys.min()}..{ys.max()}"
        )


def wire_bytes(update: FrameUpdate) -> int:
    """Payload bytes of an update (region data only; framing is the wire's and comes on top)."""
    return sum(len(r.data) for r in update.regions)


def encodings(updates: Iterable[FrameUpdate]) -> set[RegionEncoding]:
    return {r.encoding for u in updates for r in u.regions}


def psnr(a: NDArray[np.uint32], b: NDArray[np.uint32]) -> float:
    """Peak signal-to-noise ratio over the R, G, B bytes, in dB."""
    x = a.view(np.uint8).reshape(*a.shape, 4)[..., :3].astype(np.float64)
    y = b.view(np.uint8).reshape(*b.shape, 4)[..., :3].astype(np.float64)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)

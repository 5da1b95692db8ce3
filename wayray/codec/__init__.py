"""Frame encoders and decoders: lossless tiles + zstd, H.264 through PyAV, cursor, checksums. No I/O.

The session compositor drives an :class:`Encoder` (framebuffer + damage in, ``FrameUpdate`` out) and a
:class:`CursorEncoder`; the client feeds what arrives to a :class:`Decoder` and a
:class:`CursorDecoder`. How the encoder decides and what each region kind carries: docs/encoding.md.
"""

from wayray.codec.checksum import frame_checksum
from wayray.codec.cursor import CursorDecoder, CursorEncoder, CursorShape, CursorState
from wayray.codec.decoder import Decoder, Desync
from wayray.codec.encoder import Encoder, VideoStreamInfo
from wayray.codec.errors import CodecError
from wayray.codec.geometry import TILE, Rect
from wayray.codec.settings import EncoderSettings
from wayray.codec.support import h264_unavailable

__all__ = [
    "TILE",
    "CodecError",
    "CursorDecoder",
    "CursorEncoder",
    "CursorShape",
    "CursorState",
    "Decoder",
    "Desync",
    "Encoder",
    "EncoderSettings",
    "Rect",
    "VideoStreamInfo",
    "frame_checksum",
    "h264_unavailable",
]

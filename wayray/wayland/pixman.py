"""pixman through cffi (ABI mode): images over numpy arrays, compositing, and 32-bit regions.

pixman is what the compositor blends with: a premultiplied OVER of a 1080p frame costs 2-4 ms here
where numpy takes 55-68 ms. Images wrap numpy arrays without copying; the array must outlive the
image (``Image`` keeps a reference). Regions are the compositor's one representation of areas:
damage, opaque and input regions, clip regions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import cffi
import numpy as np

CDEF = """
typedef int pixman_bool_t;
typedef int32_t pixman_fixed_t;
typedef struct { int32_t x1, y1, x2, y2; } pixman_box32_t;
typedef struct { long size; long numRects; } pixman_region32_data_t;
typedef struct { pixman_box32_t extents; pixman_region32_data_t *data; } pixman_region32_t;
struct pixman_transform { pixman_fixed_t matrix[3][3]; };
typedef struct pixman_image pixman_image_t;
typedef struct { uint16_t red, green, blue, alpha; } pixman_color_t;

pixman_image_t *pixman_image_create_bits(uint32_t format, int width, int height, void *bits,
                                         int rowstride_bytes);
pixman_image_t *pixman_image_create_solid_fill(const pixman_color_t *color);
pixman_bool_t pixman_image_unref(pixman_image_t *image);
pixman_bool_t pixman_image_set_clip_region32(pixman_image_t *image, pixman_region32_t *region);
pixman_bool_t pixman_image_set_transform(pixman_image_t *image, const struct pixman_transform *transform);
pixman_bool_t pixman_image_set_filter(pixman_image_t *image, int filter, const pixman_fixed_t *params,
                                      int n_params);
void pixman_image_set_repeat(pixman_image_t *image, int repeat);
void pixman_image_composite32(int op, pixman_image_t *src, pixman_image_t *mask, pixman_image_t *dest,
                              int32_t src_x, int32_t src_y, int32_t mask_x, int32_t mask_y,
                              int32_t dest_x, int32_t dest_y, int32_t width, int32_t height);
pixman_bool_t pixman_image_fill_boxes(int op, pixman_image_t *dest, const pixman_color_t *color,
                                      int n_boxes, const pixman_box32_t *boxes);

void pixman_region32_init(pixman_region32_t *region);
void pixman_region32_init_rect(pixman_region32_t *region, int x, int y, unsigned int width,
                               unsigned int height);
void pixman_region32_fini(pixman_region32_t *region);
void pixman_region32_translate(pixman_region32_t *region, int x, int y);
pixman_bool_t pixman_region32_copy(pixman_region32_t *dest, pixman_region32_t *source);
pixman_bool_t pixman_region32_intersect(pixman_region32_t *new_reg, pixman_region32_t *reg1,
                                        pixman_region32_t *reg2);
pixman_bool_t pixman_region32_union(pixman_region32_t *new_reg, pixman_region32_t *reg1,
                                    pixman_region32_t *reg2);
pixman_bool_t pixman_region32_intersect_rect(pixman_region32_t *dest, pixman_region32_t *source,
                                             int x, int y, unsigned int width, unsigned int height);
pixman_bool_t pixman_region32_union_rect(pixman_region32_t *dest, pixman_region32_t *source,
                                         int x, int y, unsigned int width, unsigned int height);
pixman_bool_t pixman_region32_subtract(pixman_region32_t *reg_d, pixman_region32_t *reg_m,
                                       pixman_region32_t *reg_s);
pixman_bool_t pixman_region32_contains_point(pixman_region32_t *region, int x, int y,
                                             pixman_box32_t *box);
pixman_bool_t pixman_region32_not_empty(pixman_region32_t *region);
pixman_box32_t *pixman_region32_extents(pixman_region32_t *region);
pixman_box32_t *pixman_region32_rectangles(pixman_region32_t *region, int *n_rects);
void pixman_region32_clear(pixman_region32_t *region);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)
lib: Any = ffi.dlopen("libpixman-1.so.0")
# What finalizers call, bound now: cffi binds a function on its first use under its lock, which it also
# holds while parsing a type for ffi.new; a garbage collection there that ran a finalizer binding its
# function would wait for that lock in the same thread for ever.
_region_fini = lib.pixman_region32_fini
_image_unref = lib.pixman_image_unref

_TYPE_ARGB, _TYPE_ABGR = 2, 3


def _fmt(bpp: int, kind: int, a: int, r: int, g: int, b: int) -> int:
    return (bpp << 24) | (kind << 16) | (a << 12) | (r << 8) | (g << 4) | b


class Format(enum.IntEnum):
    """pixman format codes for the wl_shm formats we accept (little-endian, as wl_shm means them)."""

    A8R8G8B8 = _fmt(32, _TYPE_ARGB, 8, 8, 8, 8)
    X8R8G8B8 = _fmt(32, _TYPE_ARGB, 0, 8, 8, 8)
    A8B8G8R8 = _fmt(32, _TYPE_ABGR, 8, 8, 8, 8)
    X8B8G8R8 = _fmt(32, _TYPE_ABGR, 0, 8, 8, 8)
    R5G6B5 = _fmt(16, _TYPE_ARGB, 0, 5, 6, 5)

    @property
    def bytes_per_pixel(self) -> int:
        return (self.value >> 24) // 8

    @property
    def has_alpha(self) -> bool:
        return bool((self.value >> 12) & 0xF)


class Op(enum.IntEnum):
    CLEAR = 0
    SRC = 1
    OVER = 3


class Filter(enum.IntEnum):
    NEAREST = 3
    BILINEAR = 4


class Box(NamedTuple):
    """A rectangle as two corners: x1 <= x < x2, y1 <= y < y2."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


#: Regions hold coordinates within +-LIMIT. Clients send any int32 (positions, sizes, damage), and
#: scales and offsets multiply them further; beyond this nothing is ever on an output, and pixman's
#: own int32 arithmetic (x + width) cannot overflow. Callers may pass any Python int.
LIMIT = 1 << 30


def _clamp(v: int) -> int:
    return -LIMIT if v < -LIMIT else LIMIT if v > LIMIT else v


def _span(x: int, y: int, width: int, height: int) -> tuple[int, int, int, int]:
    """``x, y, width, height`` cut to the representable square (width/height 0 when nothing is left)."""
    x1, y1 = _clamp(x), _clamp(y)
    return x1, y1, max(0, _clamp(x + max(0, width)) - x1), max(0, _clamp(y + max(0, height)) - y1)


class Region:
    """A pixman_region32: a set of pixels as y-x banded rectangles."""

    __slots__ = ("c",)

    def __init__(self, boxes: Iterable[tuple[int, int, int, int]] = ()) -> None:
        self.c = ffi.new("pixman_region32_t *")
        lib.pixman_region32_init(self.c)
        for x, y, w, h in boxes:
            self.add_rect(x, y, w, h)

    @classmethod
    def rect(cls, x: int, y: int, width: int, height: int) -> Region:
        r = cls()
        lib.pixman_region32_init_rect(r.c, *_span(x, y, width, height))
        return r

    def __del__(self) -> None:
        _region_fini(self.c)

    def copy(self) -> Region:
        r = Region()
        lib.pixman_region32_copy(r.c, self.c)
        return r

    def set(self, other: Region) -> None:
        lib.pixman_region32_copy(self.c, other.c)

    def clear(self) -> None:
        lib.pixman_region32_clear(self.c)

    def add_rect(self, x: int, y: int, width: int, height: int) -> None:
        x, y, width, height = _span(x, y, width, height)
        if width > 0 and height > 0:
            lib.pixman_region32_union_rect(self.c, self.c, x, y, width, height)

    def add(self, other: Region) -> None:
        lib.pixman_region32_union(self.c, self.c, other.c)

    def subtract(self, other: Region) -> None:
        lib.pixman_region32_subtract(self.c, self.c, other.c)

    def subtract_rect(self, x: int, y: int, width: int, height: int) -> None:
        self.subtract(Region.rect(x, y, width, height))

    def intersect(self, other: Region) -> None:
        lib.pixman_region32_intersect(self.c, self.c, other.c)

    def intersect_rect(self, x: int, y: int, width: int, height: int) -> None:
        lib.pixman_region32_intersect_rect(self.c, self.c, *_span(x, y, width, height))

    def translate(self, dx: int, dy: int) -> None:
        """Move by (dx, dy); what would leave the representable square is cut off."""
        lib.pixman_region32_translate(self.c, _clamp(dx), _clamp(dy))  # pixman clips what overflows
        lib.pixman_region32_intersect_rect(self.c, self.c, -LIMIT, -LIMIT, 2 * LIMIT, 2 * LIMIT)

    def translated(self, dx: int, dy: int) -> Region:
        r = self.copy()
        r.translate(dx, dy)
        return r

    def contains(self, x: int, y: int) -> bool:
        if not (-LIMIT <= x < LIMIT and -LIMIT <= y < LIMIT):
            return False
        return bool(lib.pixman_region32_contains_point(self.c, x, y, ffi.NULL))

    def __bool__(self) -> bool:
        return bool(lib.pixman_region32_not_empty(self.c))

    @property
    def extents(self) -> Box:
        e = lib.pixman_region32_extents(self.c)
        return Box(e.x1, e.y1, e.x2, e.y2)

    def boxes(self) -> list[Box]:
        n = ffi.new("int *")
        rects = lib.pixman_region32_rectangles(self.c, n)
        return [Box(rects[i].x1, rects[i].y1, rects[i].x2, rects[i].y2) for i in range(n[0])]

    def __iter__(self) -> Iterator[Box]:
        return iter(self.boxes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Region) and self.boxes() == other.boxes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Region({self.boxes()})"

    def area(self) -> int:
        return sum(b.width * b.height for b in self.boxes())


class Image:
    """A pixman image over a numpy array (no copy). ``array`` is (height, stride/bpp) of its dtype."""

    __slots__ = ("array", "format", "ptr", "width", "height")

    def __init__(self, array: np.ndarray, fmt: Format, width: int | None = None) -> None:
        if array.ndim != 2 or array.strides[1] != array.itemsize or array.strides[0] % 4:
            raise ValueError("pixman images need arrays of contiguous rows with a stride multiple of 4")
        height = array.shape[0]
        stride = array.strides[0]
        if width is None:
            width = stride // fmt.bytes_per_pixel
        self.array = array
        self.format = fmt
        self.width = width
        self.height = height
        self.ptr = lib.pixman_image_create_bits(
            int(fmt), width, height, ffi.cast("void *", array.ctypes.data), stride
        )
        if self.ptr == ffi.NULL:
            raise MemoryError(f"pixman_image_create_bits({fmt.name}, {width}x{height}) failed")

    def __del__(self) -> None:
        ptr = getattr(self, "ptr", None)
        if ptr is not None and ptr != ffi.NULL:
            _image_unref(ptr)

    def set_clip(self, region: Region | None) -> None:
        lib.pixman_image_set_clip_region32(self.ptr, ffi.NULL if region is None else region.c)

    def set_transform(self, matrix: tuple[tuple[float, float, float], ...] | None, filt: Filter) -> None:
        """Map destination pixels to source pixels with ``matrix`` (3x3, row-major); None = identity."""
        if matrix is None:
            lib.pixman_image_set_transform(self.ptr, ffi.NULL)
            lib.pixman_image_set_filter(self.ptr, int(Filter.NEAREST), ffi.NULL, 0)
            return
        t = ffi.new("struct pixman_transform *")
        for i in range(3):
            for j in range(3):
                # 16.16 fixed point; a client's extreme buffer scale or viewport saturates (and shows
                # nonsense for that surface) rather than failing the whole composite.
                t.matrix[i][j] = min(max(round(matrix[i][j] * 65536), -(1 << 31)), (1 << 31) - 1)
        lib.pixman_image_set_transform(self.ptr, t)
        lib.pixman_image_set_filter(self.ptr, int(filt), ffi.NULL, 0)

    def set_repeat_pad(self) -> None:
        """Samples outside the image repeat its edge pixels (no bleeding in of what lies beyond)."""
        lib.pixman_image_set_repeat(self.ptr, 2)  # PIXMAN_REPEAT_PAD

    def fill(self, op: Op, argb: int, boxes: Iterable[Box]) -> None:
        """Fill ``boxes`` with the premultiplied colour ``argb`` (0xAARRGGBB)."""
        boxes = list(boxes)
        if not boxes:
            return
        color = ffi.new(
            "pixman_color_t *",
            {
                "alpha": ((argb >> 24) & 0xFF) * 0x101,
                "red": ((argb >> 16) & 0xFF) * 0x101,
                "green": ((argb >> 8) & 0xFF) * 0x101,
                "blue": (argb & 0xFF) * 0x101,
            },
        )
        cboxes = ffi.new("pixman_box32_t[]", [tuple(b) for b in boxes])
        lib.pixman_image_fill_boxes(int(op), self.ptr, color, len(boxes), cboxes)


def composite(
    op: Op,
    src: Image,
    dst: Image,
    src_x: int,
    src_y: int,
    dst_x: int,
    dst_y: int,
    width: int,
    height: int,
) -> None:
    lib.pixman_image_composite32(
        int(op), src.ptr, ffi.NULL, dst.ptr, src_x, src_y, 0, 0, dst_x, dst_y, width, height
    )

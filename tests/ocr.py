"""Reading the screen like a person: OCR of a compositor screenshot with tesseract (Debian tesseract-ocr).

Text is read from a grey, contrast-stretched, 2x enlarged copy (light-on-dark areas inverted), which
is what tesseract reads best. The comparison helpers ignore case and runs of whitespace.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess

from PIL import Image, ImageOps, ImageStat


def ocr(png: bytes, *, box: tuple[int, int, int, int] | None = None) -> str:
    """The text tesseract reads in a PNG (optionally only inside ``box`` = left, top, right, bottom)."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise AssertionError(
            "tesseract is not installed (Debian: tesseract-ocr tesseract-ocr-eng; ./tools/bootstrap)"
        )
    img = Image.open(io.BytesIO(png)).convert("L")
    modes = ["3", "6"]
    if box is not None:
        # A small crop (one field): a margin and single-line mode are what tesseract needs there.
        img = ImageOps.expand(img.crop(box), border=24, fill=int(img.crop(box).getpixel((1, 1)) or 0))
        modes.append("7")
    if ImageStat.Stat(img).mean[0] < 128:
        img = ImageOps.invert(img)  # tesseract reads dark text on a light ground
    img = ImageOps.autocontrast(img).resize((img.width * 2, img.height * 2), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    # Two page-segmentation modes: automatic layout (3) misses text in coloured boxes now and then,
    # a single uniform block (6) catches it; what either reads is on screen.
    texts = []
    for psm in modes:
        done = subprocess.run(
            [exe, "stdin", "stdout", "--psm", psm, "-l", "eng"],
            input=buf.getvalue(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        texts.append(done.stdout.decode("utf-8", "replace"))
    return "\n".join(texts)


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


#: Letters tesseract confuses with digits (O/0, l/1/I/|): folded alike on both sides of a comparison.
_CONFUSABLE = str.maketrans({"o": "0", "i": "1", "l": "1", "|": "1"})


def fuzzy(text: str) -> str:
    """``text`` normalized and with confusable characters folded (for "is this phrase on screen")."""
    return normalize(text).translate(_CONFUSABLE)


#: Phrases at least this long may be read with one character wrong, missing or extra (tesseract
#: reads a random user name such as "wrt570f1du" as "wrt570fi1du" now and then).
LONG_PHRASE = 8


def contains(text: str, phrase: str, *, edits: int | None = None) -> bool:
    """``phrase`` can be read in ``text``: exactly (after :func:`fuzzy`), or within ``edits``
    character edits (default: one for phrases of :data:`LONG_PHRASE` characters or more, else none).
    Checks that something is *absent* pass ``edits=0``."""
    want, have = fuzzy(phrase), fuzzy(text)
    if want in have:
        return True
    allowed = (1 if len(want) >= LONG_PHRASE else 0) if edits is None else edits
    return allowed > 0 and _approximately_in(want, have, allowed)


def _approximately_in(pattern: str, text: str, edits: int) -> bool:
    """Whether some substring of ``text`` is within ``edits`` edits of ``pattern`` (Sellers)."""
    row = [0] * (len(text) + 1)  # the pattern may start anywhere in the text
    for i, pc in enumerate(pattern, 1):
        prev, row = row, [i] + [0] * len(text)
        for j, tc in enumerate(text, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (pc != tc))
    return min(row) <= edits


def shows(png: bytes, phrase: str, *, box: tuple[int, int, int, int] | None = None) -> bool:
    """True when ``phrase`` can be read on the screenshot."""
    return contains(ocr(png, box=box), phrase)

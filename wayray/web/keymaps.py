"""The browser's keyboard layout as an XKB keymap (docs/web-kiosk.md, section 5).

A page cannot make an XKB keymap itself: the browser tells it, at best, which character each key
types unshifted (the Keyboard Map API: ``KeyboardEvent.code`` → label, Chromium only) and which
languages the person prefers. The page asks ``/keymap.json`` with what it knows; this module finds
the layout of xkeyboard-config that types those characters and compiles it with xkbcommon, so the
session types what the keys say, Shift and AltGr levels and dead keys included. The page puts the
keymap's text in its Hello, exactly as wrclient does.

Order of choice: a layout the page names (``?layout=de,nodeadkeys`` in the page's URL) → the layout
whose unshifted characters equal the browser's map (ties: a layout named by a preferred language's
region or language, then ``us``) → a layout named by a preferred language (a guess, said as one) →
none (the session's default layout).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from wayray.wayland.xkb import Keymap, KeymapError, KeyState, keysym_name

log = logging.getLogger("wayray.web")

#: Where xkeyboard-config lists its layouts and variants (Debian's xkb-data; illumos the same path).
RULES_LIST = Path("/usr/share/X11/xkb/rules/evdev.lst")
#: The keys the Keyboard Map API reports (KeyboardEvent.code → evdev code): the writing keys.
CODES = {
    "Backquote": 41, "Minus": 12, "Equal": 13, "BracketLeft": 26, "BracketRight": 27, "Backslash": 43,
    "Semicolon": 39, "Quote": 40, "Comma": 51, "Period": 52, "Slash": 53, "IntlBackslash": 86,
    **{f"Digit{d}": 2 + i for i, d in enumerate("1234567890")},
    **{f"Key{c}": 16 + i for i, c in enumerate("QWERTYUIOP")},
    **{f"Key{c}": 30 + i for i, c in enumerate("ASDFGHJKL")},
    **{f"Key{c}": 44 + i for i, c in enumerate("ZXCVBNM")},
}  # fmt: skip
#: Dead keys as browsers label them (the spacing character of the accent).
_DEAD = {
    "dead_grave": "`", "dead_acute": "´", "dead_circumflex": "^", "dead_tilde": "~",
    "dead_diaeresis": "¨", "dead_cedilla": "¸", "dead_abovering": "°", "dead_caron": "ˇ",
    "dead_macron": "¯", "dead_breve": "˘", "dead_abovedot": "˙", "dead_doubleacute": "˝",
    "dead_ogonek": "˛",
}  # fmt: skip
_NAME = re.compile(r"^[a-z0-9_()-]{1,40}$")
#: Keymaps compiled for pages, kept (a few layouts serve a site's browsers).
_CACHE_SIZE = 16


@dataclass(frozen=True)
class Choice:
    layout: str
    variant: str
    #: How it was chosen: "named" (the page's URL), "matched" (the browser's key map), "language".
    how: str
    keymap: str


class Layouts:
    """xkeyboard-config's layouts, matched against a browser's key map; compiled in a worker thread."""

    def __init__(self, rules_list: Path = RULES_LIST) -> None:
        self.rules_list = rules_list
        self._lock = threading.Lock()
        #: Per candidate: what its writing keys type unshifted, and which of them are dead keys.
        self._labels: dict[tuple[str, str], tuple[dict[str, str], set[str]]] = {}

    @functools.cached_property
    def names(self) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The layouts (name → description) and (layout, variant) pairs the rules list names;
        empty without xkb-data."""
        layouts: dict[str, str] = {}
        variants: list[tuple[str, str]] = []
        try:
            text = self.rules_list.read_text(encoding="utf-8")
        except OSError:
            return layouts, variants
        section = ""
        for line in text.splitlines():
            if line.startswith("!"):
                section = line[1:].strip()
            elif line.strip() and section == "layout":
                name, _, description = line.strip().partition(" ")
                if name != "custom":  # a placeholder for a file a user adds; not in xkb-data
                    layouts[name] = description.strip()
            elif line.strip() and section == "variant":
                name, rest = line.split(None, 1)
                variants.append((rest.split(":", 1)[0].strip(), name))
        return layouts, variants

    def known(self, layout: str, variant: str) -> bool:
        layouts, variants = self.names
        return layout in layouts and (not variant or (layout, variant) in variants)

    def choose(self, layout: str, labels: dict[str, str], languages: list[str]) -> Choice | None:
        """The keymap for a page (see the module's text); blocking: call it in a worker thread."""
        with self._lock:
            named = self._named(layout)
            if named is not None:
                return self._choice(*named, "named")
            clean = {c: v for c, v in labels.items() if c in CODES and 0 < len(v) <= 4}
            preferred = _preferred(languages)
            if len(clean) >= 20:
                found = self._match(clean, preferred)
                if found is not None:
                    return self._choice(*found, "matched")
            layouts, _ = self.names
            for name in preferred:
                if name in layouts:
                    return self._choice(name, "", "language")
            return None

    def _named(self, layout: str) -> tuple[str, str] | None:
        name, _, variant = layout.partition(",")
        name, variant = name.strip(), variant.strip()
        if not name or not _NAME.match(name) or (variant and not _NAME.match(variant)):
            return None
        return (name, variant) if self.known(name, variant) else None

    def _match(self, labels: dict[str, str], preferred: list[str]) -> tuple[str, str] | None:
        layouts, variants = self.names
        rank: dict[str, int] = {}
        for name in [*preferred, "us"]:
            rank.setdefault(name, len(rank))

        def best(candidates: list[tuple[str, str]]) -> tuple[str, str] | None:
            exact = [c for c in candidates if self._agrees(c, labels)]
            if not exact:
                return None
            # Layouts that type alike (de and at, us and au): one a preferred language names, else
            # "us", else the plain one ("German" rather than "German (Austria)").
            return min(exact, key=lambda c: (rank.get(c[0], len(rank)), "(" in layouts.get(c[0], "("), c))

        return best([(name, "") for name in layouts]) or best(variants)

    def _agrees(self, candidate: tuple[str, str], labels: dict[str, str]) -> bool:
        """Every key the browser labels types that label here (a dead key: any label, as browsers
        label them differently)."""
        known = self._labels.get(candidate)
        if known is None:
            try:
                known = _unshifted(Keymap.from_names(layout=candidate[0], variant=candidate[1]))
            except KeymapError:
                known = ({}, set())
            self._labels[candidate] = known
        have, dead = known
        return bool(have) and all(
            code in dead or have.get(code, "").lower() == v.lower() for code, v in labels.items()
        )

    @functools.lru_cache(maxsize=_CACHE_SIZE)  # noqa: B019 - one Layouts per wrsrvd, kept for its life
    def _choice(self, layout: str, variant: str, how: str) -> Choice:
        return Choice(layout, variant, how, Keymap.from_names(layout=layout, variant=variant).text)


def _unshifted(keymap: Keymap) -> tuple[dict[str, str], set[str]]:
    """What each writing key types without a modifier, as the Keyboard Map API labels it, and the
    dead keys among them."""
    state = KeyState(keymap)
    out: dict[str, str] = {}
    dead: set[str] = set()
    for code, evdev in CODES.items():
        text = state.utf8(evdev)
        if not text:
            name = keysym_name(state.keysym(evdev))
            if name.startswith("dead_"):
                dead.add(code)
            text = _DEAD.get(name, "")
        if text:
            out[code] = text
    return out, dead


def _preferred(languages: list[str]) -> list[str]:
    """Layout names a person's languages suggest, best first: regions, then languages
    (``de-AT`` → ``at``, then ``de``)."""
    regions: list[str] = []
    langs: list[str] = []
    for tag in languages[:8]:
        parts = tag.strip().lower().replace("_", "-").split("-")
        if len(parts) > 1 and len(parts[1]) == 2 and parts[1].isalpha():
            regions.append(parts[1])
        if parts[0].isalpha() and 2 <= len(parts[0]) <= 3:
            langs.append(parts[0])
    # English speakers' "en" names no layout; "gb" or "us" come from the region.
    return list(dict.fromkeys([*regions, *(lang for lang in langs if lang != "en")]))

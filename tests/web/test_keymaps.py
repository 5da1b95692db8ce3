"""The browser's keyboard as an XKB keymap: which layout wrsrvd picks from what a page knows, and
``/keymap.json`` answering garbage without harm (docs/web-kiosk.md, section 5)."""

from __future__ import annotations

import json
import re
import ssl
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.e2e.harness import Harness
from wayray.wayland.xkb import Keymap, KeyState
from wayray.web.keymaps import CODES, RULES_LIST, Layouts

pytestmark = pytest.mark.skipif(not RULES_LIST.exists(), reason="xkb-data is not installed")

#: What Chromium's Keyboard Map API reports for a US keyboard (as headless Chromium does).
US = {
    **{f"Key{c.upper()}": c for c in "abcdefghijklmnopqrstuvwxyz"},
    **{f"Digit{d}": d for d in "0123456789"},
    "Backquote": "`", "Minus": "-", "Equal": "=", "BracketLeft": "[", "BracketRight": "]",
    "Backslash": "\\", "Semicolon": ";", "Quote": "'", "Comma": ",", "Period": ".", "Slash": "/",
    "IntlBackslash": "<", "IntlYen": "¥",
}  # fmt: skip
GERMAN = {
    **US,
    "KeyY": "z", "KeyZ": "y", "Backquote": "^", "Minus": "ß", "Equal": "´", "BracketLeft": "ü",
    "BracketRight": "+", "Backslash": "#", "Semicolon": "ö", "Quote": "ä", "Slash": "-",
}  # fmt: skip
FRENCH = {
    **US,
    "KeyQ": "a", "KeyA": "q", "KeyW": "z", "KeyZ": "w", "Semicolon": "m", "KeyM": ",", "Comma": ";",
    "Period": ":", "Slash": "!", "Quote": "ù", "Backquote": "²", "Minus": ")", "Equal": "=",
    "BracketLeft": "^", "BracketRight": "$", "Backslash": "*", "Digit1": "&", "Digit2": "é",
    "Digit3": '"', "Digit4": "'", "Digit5": "(", "Digit6": "-", "Digit7": "è", "Digit8": "_",
    "Digit9": "ç", "Digit0": "à",
}  # fmt: skip


@pytest.fixture(scope="module")
def layouts() -> Layouts:
    return Layouts()


@pytest.mark.parametrize(
    ("labels", "languages", "want"),
    [
        (US, ["en-US", "en"], ("us", "", "matched")),
        (US, [], ("us", "", "matched")),
        # The keys say US: a British person's language does not overrule them.
        (US, ["en-GB"], ("us", "", "matched")),
        (GERMAN, ["en-US"], ("de", "", "matched")),
        # Layouts that type alike: the one the person's region names.
        (GERMAN, ["de-AT", "de"], ("at", "", "matched")),
        (FRENCH, ["fr-FR"], ("fr", "", "matched")),
        # No key map (Firefox, Safari): the language is a guess, said as one.
        ({}, ["fr-FR", "fr"], ("fr", "", "language")),
        ({}, ["de"], ("de", "", "language")),
    ],
)
def test_the_layout_the_browser_describes_is_chosen(
    layouts: Layouts, labels: dict[str, str], languages: list[str], want: tuple[str, str, str]
) -> None:
    choice = layouts.choose("", labels, languages)
    assert choice is not None
    assert (choice.layout, choice.variant, choice.how) == want


def test_a_layout_the_page_names_wins_and_unknown_names_are_ignored(layouts: Layouts) -> None:
    choice = layouts.choose("de,nodeadkeys", US, ["en-US"])
    assert choice is not None and (choice.layout, choice.variant, choice.how) == (
        "de",
        "nodeadkeys",
        "named",
    )
    for bad in ("xx", "../../etc/passwd", "de,nosuchvariant", "de(x)", "us;rm", "a" * 100):
        choice = layouts.choose(bad, GERMAN, [])
        assert choice is not None and (choice.layout, choice.how) == ("de", "matched"), bad
    # Only a language: a guess from its region; nothing known at all: the session's default layout.
    guess = layouts.choose("", {}, ["en-US"])
    assert guess is not None and (guess.layout, guess.how) == ("us", "language")
    assert layouts.choose("", {"KeyA": "\u0000" * 9, "Nonsense": "x"}, []) is None


def test_the_keymap_types_what_the_keys_say(layouts: Layouts) -> None:
    choice = layouts.choose("", GERMAN, [])
    assert choice is not None
    state = KeyState(Keymap.from_text(choice.keymap))
    typed = {code: state.utf8(CODES[code]) for code in ("KeyY", "KeyZ", "BracketLeft", "Minus", "Quote")}
    assert typed == {"KeyY": "z", "KeyZ": "y", "BracketLeft": "ü", "Minus": "ß", "Quote": "ä"}
    state.update(42, True)  # Shift: the German shifted level, which the browser's map never said
    assert state.utf8(CODES["Digit2"]) == '"'


def test_keymap_json_answers_garbage_calmly_and_the_page_server_carries_on(harness: Harness) -> None:
    srv = harness.server(["true"], extra=["--web-port", "0", "--no-video"])
    m = re.search(r"browser kiosk\s+https://localhost:(\d+)/", srv.banner)
    assert m, srv.banner
    base = f"https://127.0.0.1:{m[1]}"
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE  # the server's own self-signed identity; this test reads answers only

    def get(query: str) -> Any:
        with urllib.request.urlopen(f"{base}/keymap.json?{query}", context=tls, timeout=60) as r:
            assert r.headers["Cache-Control"] == "no-store"
            return json.loads(r.read())

    for garbage in (
        "map=%7Bnot+json",
        "map=%5B1,2%5D",
        "layout=..%2F..%2Fetc",
        "lang=" + "x," * 500,
        "map=null",
    ):
        assert get(garbage) == {"layout": None}, garbage
    got = get(urllib.parse.urlencode({"map": json.dumps(GERMAN), "lang": "en-US"}))
    assert (got["layout"], got["how"]) == ("de", "matched")
    assert got["keymap"].startswith("xkb_keymap")

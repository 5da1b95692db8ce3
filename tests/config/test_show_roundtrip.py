"""``wradm show`` prints TOML that means the same configuration: show → parse → the same config.

The values come from the schema (tests/config/strategies.py), so every key and every value type is
covered, including text with control characters (U+007F, U+001F, line separators) that TOML must
escape."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import given, settings

from tests.config.helpers import wradm, write
from tests.config.strategies import valid_configuration
from wayray import config as wc
from wayray.config.show import render

ATTRS = ("servers", "policies", "usb", "session", "host", "client")


def split_shown(shown: str) -> dict[str, str]:
    """``wradm show`` output cut into the files it stands for (after each "# FILE.toml: ..." line)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in shown.split("\n"):
        if line.startswith("# ") and ".toml: " in line:
            current = line[2:].split(":")[0]
        sections.setdefault(current, []).append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in sections.items() if name}


def reload_shown(shown: str, root: Path) -> wc.Config:
    write(root, {f"etc/wayray/{name}": text for name, text in split_shown(shown).items()})
    return wc.load(root)


def test_control_characters_in_values_are_escaped(tmp_path: Path) -> None:
    write(
        tmp_path / "a",
        {
            "etc/wayray/session.toml": '[session]\nenvironment = { PS1 = "a\\u007fb\\u001fc" }\n'
            'autostart = [["foot", "--title", "x\\u007f"]]\n',
            "etc/wayray/usb.toml": '[[usb.rule]]\naction = "allow"\ncomment = "\\u2028\\u0085\\u007f"\n',
        },
    )
    res = wradm("--root", tmp_path / "a", "show")
    assert res.returncode == 0, res.stderr
    tomllib.loads(res.stdout)
    assert "\x7f" not in res.stdout and "\\u007f" in res.stdout
    assert res.stdout.isprintable() or all(line.isprintable() for line in res.stdout.split("\n"))
    original = wc.load(tmp_path / "a")
    again = reload_shown(res.stdout, tmp_path / "b")
    assert again.session == original.session
    assert again.usb == original.usb


@settings(max_examples=150, deadline=None)
@given(valid_configuration())
def test_show_then_parse_gives_the_same_configuration(files: dict[str, str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wayray-show-") as d:
        root = Path(d)
        write(root / "a", {f"etc/wayray/{name}": text for name, text in files.items()})
        original = wc.load(root / "a")
        shown = render(original)
        tomllib.loads(shown)
        again = reload_shown(shown, root / "b")
        for attr in ATTRS:
            assert getattr(again, attr) == getattr(original, attr), (attr, shown)

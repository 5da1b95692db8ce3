"""``wm-tiling.toml``: wr-wm-tiling's settings and key bindings (docs/wm-protocol.md §8).

Errors name the file, line and column, and what is wrong; the caller falls back to the defaults.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from wayray.common.errors import WayRayError
from wayray.wayland.xkb import keysym_from_name

MODIFIERS = {"shift": 1, "ctrl": 4, "control": 4, "alt": 8, "super": 64, "logo": 64, "mod4": 64, "mod1": 8}

#: Every action, with whether it takes an argument (a workspace number 1-9).
ACTIONS = {
    "terminal": False,
    "focus_next": False,
    "focus_previous": False,
    "swap_master": False,
    "close": False,
    "fullscreen": False,
    "grow_master": False,
    "shrink_master": False,
    "workspace": True,
    "move_to_workspace": True,
}
WORKSPACES = 9

DEFAULT_KEYS = {
    "Super+Return": "terminal",
    "Super+j": "focus_next",
    "Super+k": "focus_previous",
    "Super+Shift+Return": "swap_master",
    "Super+Shift+q": "close",
    "Super+f": "fullscreen",
    "Super+l": "grow_master",
    "Super+h": "shrink_master",
    **{f"Super+{n}": f"workspace {n}" for n in range(1, WORKSPACES + 1)},
    **{f"Super+Shift+{n}": f"move_to_workspace {n}" for n in range(1, WORKSPACES + 1)},
}


@dataclass(frozen=True)
class Binding:
    chord: str  # as written
    keysym: int
    modifiers: int
    action: str
    argument: int | None = None


@dataclass(frozen=True)
class TilingConfig:
    master_ratio: float = 0.55
    gap: int = 0
    terminal: tuple[str, ...] = ("foot",)
    bindings: tuple[Binding, ...] = field(default_factory=tuple)


class ConfigError(WayRayError):
    pass


def _where(path: Path, text: str, needle: str) -> str:
    """``file:line:col`` of the first ``needle`` in ``text`` (the file alone when it is not there)."""
    for lineno, line in enumerate(text.splitlines(), 1):
        col = line.find(needle)
        if col >= 0:
            return f"{path}:{lineno}:{col + 1}"
    return str(path)


def parse_chord(chord: str) -> tuple[int, int]:
    """``Super+Shift+Return`` → (keysym, modifier mask); ValueError says what is wrong."""
    parts = [p.strip() for p in chord.split("+")]
    if len(parts) < 1 or not parts[-1]:
        raise ValueError("a chord ends with a key name, e.g. Super+Return")
    mods = 0
    for p in parts[:-1]:
        bit = MODIFIERS.get(p.lower())
        if bit is None:
            raise ValueError(f"{p!r} is not a modifier (Super, Shift, Ctrl, Alt)")
        mods |= bit
    sym = keysym_from_name(parts[-1])
    if sym is None:
        raise ValueError(f"{parts[-1]!r} is not a key name (XKB keysym names: Return, a, 1, F5, Left)")
    if not mods:
        raise ValueError("a binding needs at least one modifier (Super+...), or the key is lost to programs")
    return sym, mods


def parse_action(text: str) -> tuple[str, int | None]:
    name, _, arg = text.strip().partition(" ")
    if name not in ACTIONS:
        raise ValueError(f"no action {name!r} (actions: {', '.join(ACTIONS)})")
    if not ACTIONS[name]:
        if arg.strip():
            raise ValueError(f"{name} takes no argument")
        return name, None
    if not re.fullmatch(r"\s*[1-9]\s*", arg):
        raise ValueError(f"{name} takes a workspace number from 1 to {WORKSPACES}: '{name} 2'")
    return name, int(arg)


def _bindings(keys: dict[str, str]) -> list[Binding]:
    out = []
    for chord, action in keys.items():
        sym, mods = parse_chord(chord)
        name, arg = parse_action(action)
        out.append(Binding(chord, sym, mods, name, arg))
    return out


def default_config() -> TilingConfig:
    return TilingConfig(bindings=tuple(_bindings(DEFAULT_KEYS)))


def load_config(path: Path) -> TilingConfig:
    """The settings in ``path`` over the defaults (a missing file: the defaults). ConfigError with
    ``file:line:col`` on anything wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default_config()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it: {err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.match(r"(.*) \(at line (\d+), column (\d+)\)$", str(err))
        where, what = (f"{path}:{m[2]}:{m[3]}", m[1]) if m else (str(path), str(err))
        raise ConfigError(f"{where}: {what}", hint="the file is TOML: key = value") from None
    _check_keys(path, text, data)
    ratio = data.get("master_ratio", 0.55)
    if not isinstance(ratio, int | float) or not 0.1 <= ratio <= 0.9:
        raise ConfigError(f"{_where(path, text, 'master_ratio')}: master_ratio is a number from 0.1 to 0.9")
    gap = data.get("gap", 0)
    if not isinstance(gap, int) or isinstance(gap, bool) or not 0 <= gap <= 200:
        raise ConfigError(f"{_where(path, text, 'gap')}: gap is a number of pixels from 0 to 200")
    terminal = data.get("terminal", "foot")
    try:
        argv = tuple(shlex.split(terminal)) if isinstance(terminal, str) else ()
    except ValueError:
        argv = ()
    if not argv:
        raise ConfigError(f'{_where(path, text, "terminal")}: terminal is a command line, e.g. "foot"')
    return TilingConfig(
        master_ratio=float(ratio), gap=gap, terminal=argv, bindings=tuple(_bindings(_keys(path, text, data)))
    )


def _check_keys(path: Path, text: str, data: dict[str, object]) -> None:
    known = {"master_ratio", "gap", "terminal", "keys"}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{_where(path, text, key)}: unknown setting {key!r}",
                hint=f"known: {', '.join(sorted(known))}",
            )


def _keys(path: Path, text: str, data: dict[str, object]) -> dict[str, str]:
    """The defaults' chords with ``[keys]`` over them."""
    keys = dict(DEFAULT_KEYS)
    given = data.get("keys", {})
    if not isinstance(given, dict):
        raise ConfigError(f"{_where(path, text, 'keys')}: [keys] is a table of chord = action")
    for chord, action in given.items():
        where = _where(path, text, chord)
        if not isinstance(action, str):
            raise ConfigError(f'{where}: the action of {chord!r} is text, e.g. "terminal" ("" unbinds it)')
        if action == "":
            keys.pop(chord, None)
            continue
        try:
            parse_chord(chord)
            parse_action(action)
        except ValueError as err:
            raise ConfigError(f"{where}: {chord} = {action!r}: {err}") from None
        keys[chord] = action
    return _unique(keys)


def _unique(keys: dict[str, str]) -> dict[str, str]:
    """One action per chord: a chord written differently (``super+j``) replaces the default's."""
    seen: dict[tuple[int, int], str] = {}
    for chord in keys:
        seen[parse_chord(chord)] = chord
    return {chord: keys[chord] for chord in seen.values()}

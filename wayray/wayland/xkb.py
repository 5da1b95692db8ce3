"""xkbcommon through cffi (ABI mode) into the installed ``libxkbcommon.so.0``: keymaps and key state.

The compositor compiles the keymap the viewer supplies (or a default US one), keeps one ``KeyState``
for the seat, and sends clients the keymap text plus serialized modifier state. Keycodes in this
module are evdev codes; xkb's own keycodes are evdev + 8.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

import cffi

CDEF = """
typedef uint32_t xkb_keycode_t; typedef uint32_t xkb_keysym_t; typedef uint32_t xkb_mod_index_t;
typedef uint32_t xkb_mod_mask_t; typedef uint32_t xkb_layout_index_t; typedef uint32_t xkb_level_index_t;
struct xkb_context; struct xkb_keymap; struct xkb_state;
struct xkb_rule_names { const char *rules; const char *model; const char *layout; const char *variant;
                        const char *options; };
struct xkb_context *xkb_context_new(int flags);
void xkb_context_unref(struct xkb_context *context);
struct xkb_keymap *xkb_keymap_new_from_names(struct xkb_context *context,
                                             const struct xkb_rule_names *names, int flags);
struct xkb_keymap *xkb_keymap_new_from_string(struct xkb_context *context, const char *string,
                                              int format, int flags);
struct xkb_keymap *xkb_keymap_ref(struct xkb_keymap *keymap);
void xkb_keymap_unref(struct xkb_keymap *keymap);
char *xkb_keymap_get_as_string(struct xkb_keymap *keymap, int format);
xkb_keycode_t xkb_keymap_min_keycode(struct xkb_keymap *keymap);
xkb_keycode_t xkb_keymap_max_keycode(struct xkb_keymap *keymap);
xkb_mod_index_t xkb_keymap_mod_get_index(struct xkb_keymap *keymap, const char *name);
xkb_layout_index_t xkb_keymap_num_layouts_for_key(struct xkb_keymap *keymap, xkb_keycode_t key);
xkb_level_index_t xkb_keymap_num_levels_for_key(struct xkb_keymap *keymap, xkb_keycode_t key,
                                                xkb_layout_index_t layout);
int xkb_keymap_key_get_syms_by_level(struct xkb_keymap *keymap, xkb_keycode_t key,
                                     xkb_layout_index_t layout, xkb_level_index_t level,
                                     const xkb_keysym_t **syms_out);
size_t xkb_keymap_key_get_mods_for_level(struct xkb_keymap *keymap, xkb_keycode_t key,
                                         xkb_layout_index_t layout, xkb_level_index_t level,
                                         xkb_mod_mask_t *masks_out, size_t masks_size);
int xkb_keymap_key_repeats(struct xkb_keymap *keymap, xkb_keycode_t key);
struct xkb_state *xkb_state_new(struct xkb_keymap *keymap);
void xkb_state_unref(struct xkb_state *state);
int xkb_state_update_key(struct xkb_state *state, xkb_keycode_t key, int direction);
xkb_mod_mask_t xkb_state_serialize_mods(struct xkb_state *state, int components);
xkb_layout_index_t xkb_state_serialize_layout(struct xkb_state *state, int components);
xkb_keysym_t xkb_state_key_get_one_sym(struct xkb_state *state, xkb_keycode_t key);
int xkb_state_mod_name_is_active(struct xkb_state *state, const char *name, int type);
xkb_keysym_t xkb_utf32_to_keysym(uint32_t ucs);
int xkb_state_update_mask(struct xkb_state *state, xkb_mod_mask_t depressed_mods,
                          xkb_mod_mask_t latched_mods, xkb_mod_mask_t locked_mods,
                          xkb_layout_index_t depressed_layout, xkb_layout_index_t latched_layout,
                          xkb_layout_index_t locked_layout);
int xkb_state_key_get_utf8(struct xkb_state *state, xkb_keycode_t key, char *buffer, size_t size);
int xkb_keysym_get_name(xkb_keysym_t keysym, char *buffer, size_t size);
xkb_keysym_t xkb_keysym_from_name(const char *name, int flags);
void free(void *ptr);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)
lib: Any = ffi.dlopen("libxkbcommon.so.0")
libc: Any = ffi.dlopen(None)
# What finalizers call, bound now: cffi binds a function on its first use under its lock, which it also
# holds while parsing a type for ffi.new; a garbage collection there that ran a finalizer binding its
# function would wait for that lock in the same thread for ever.
_keymap_unref = lib.xkb_keymap_unref
_keymap_ref = lib.xkb_keymap_ref
_state_unref = lib.xkb_state_unref

_FORMAT_TEXT_V1 = 1
_KEY_UP, _KEY_DOWN = 0, 1
_MODS_DEPRESSED, _MODS_LATCHED, _MODS_LOCKED, _MODS_EFFECTIVE = 1, 2, 4, 8
_LAYOUT_EFFECTIVE = 1 << 7
EVDEV_OFFSET = 8
#: The largest evdev code xkb can name (its keycodes are u32 and evdev + 8).
MAX_EVDEV_CODE = 0xFFFFFFFF - EVDEV_OFFSET
_KEYSYM_CASE_INSENSITIVE = 1


class Keysym(enum.IntEnum):
    """The few keysyms the built-in window manager binds."""

    Tab = 0xFF09
    ISO_Left_Tab = 0xFE20
    F4 = 0xFFC1
    Return = 0xFF0D


class Modifier(enum.StrEnum):
    """xkb's real modifier names (``Mod1`` is Alt and ``Mod4`` is Super on every common layout)."""

    SHIFT = "Shift"
    CAPS = "Lock"
    CTRL = "Control"
    ALT = "Mod1"
    SUPER = "Mod4"


class KeymapError(ValueError):
    """The keymap text (or RMLVO names) did not compile."""


@dataclass(frozen=True)
class ModifierState:
    """What ``wl_keyboard.modifiers`` carries."""

    depressed: int = 0
    latched: int = 0
    locked: int = 0
    group: int = 0


class _Context:
    _shared: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._shared is None:
            ctx = lib.xkb_context_new(0)
            if ctx == ffi.NULL:
                raise KeymapError("xkb_context_new failed (is xkb-data installed?)")
            cls._shared = ctx
        return cls._shared


#: Keymaps compiled from text kept for reuse (Keymap.compiled), besides the default one.
_COMPILED_KEPT = 8


class Keymap:
    """A compiled keymap and its canonical text (what clients are sent).

    Each Keymap object owns one reference to its xkb keymap and drops it when it goes. The keymaps
    :meth:`default` and :meth:`compiled` hand out share one compiled keymap (it never changes once
    compiled) and its text, but each caller gets an object, and a reference, of its own: one
    compositor's teardown never frees what another one in the same process still uses, and a
    session parent's default keymap is shared copy-on-write by every session it forks."""

    _kept: dict[str, Keymap] = {}  # noqa: RUF012  (by text, oldest first; the default never goes)
    _default: Keymap | None = None

    def __init__(self, ptr: Any, text: str | None = None) -> None:
        self.ptr = ptr
        if text is not None:
            self.text: str = text
            return
        raw = lib.xkb_keymap_get_as_string(ptr, _FORMAT_TEXT_V1)
        if raw == ffi.NULL:
            raise KeymapError("xkb_keymap_get_as_string failed")
        try:
            self.text = ffi.string(raw).decode()
        finally:
            libc.free(raw)

    def __del__(self) -> None:
        ptr = getattr(self, "ptr", None)
        if ptr is not None:
            _keymap_unref(ptr)

    def _another(self) -> Keymap:
        """A new object with its own reference to the same compiled keymap."""
        return Keymap(_keymap_ref(self.ptr), self.text)

    @classmethod
    def default(cls) -> Keymap:
        """The default keymap (US layout), compiled once per process."""
        if cls._default is None:
            cls._default = cls.from_names()
        return cls._default._another()

    @classmethod
    def compiled(cls, text: str) -> Keymap:
        """``text`` compiled, sharing the keymap compiled before for the same text (viewers mostly
        send the same few keymaps: each attach would otherwise compile one, tens of ms on a busy
        server). A text that does not compile raises :class:`KeymapError` every time."""
        if cls._default is not None and text == cls._default.text:
            return cls._default._another()
        kept = cls._kept.get(text)
        if kept is None:
            kept = cls.from_text(text)
            if len(cls._kept) >= _COMPILED_KEPT:
                cls._kept.pop(next(iter(cls._kept)))
            cls._kept[text] = kept
        return kept._another()

    @classmethod
    def from_names(
        cls,
        layout: str = "us",
        variant: str = "",
        model: str = "pc105",
        options: str = "",
        rules: str = "evdev",
    ) -> Keymap:
        keep = [ffi.new("char[]", s.encode()) for s in (rules, model, layout, variant, options)]
        names = ffi.new(
            "struct xkb_rule_names *",
            {k: v for k, v in zip(("rules", "model", "layout", "variant", "options"), keep, strict=True)},
        )
        ptr = lib.xkb_keymap_new_from_names(_Context.get(), names, 0)
        if ptr == ffi.NULL:
            raise KeymapError(f"no keymap for layout {layout!r} variant {variant!r} (xkb-data installed?)")
        return cls(ptr)

    @classmethod
    def from_text(cls, text: str) -> Keymap:
        ptr = lib.xkb_keymap_new_from_string(_Context.get(), text.encode(), _FORMAT_TEXT_V1, 0)
        if ptr == ffi.NULL:
            raise KeymapError("the keymap text does not compile (xkbcommon printed why on stderr)")
        return cls(ptr)

    def memfd(self) -> tuple[int, int]:
        """A sealed, read-only memfd holding the keymap text plus NUL, and its size (for wl_keyboard)."""
        data = self.text.encode() + b"\0"
        fd = os.memfd_create("wayray-keymap", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            import fcntl

            fcntl.fcntl(
                fd,
                fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL,
            )
        except OSError:
            os.close(fd)
            raise
        return fd, len(data)

    def mod_index(self, name: str) -> int:
        return int(lib.xkb_keymap_mod_get_index(self.ptr, name.encode()))

    def key_repeats(self, evdev_code: int) -> bool:
        return bool(lib.xkb_keymap_key_repeats(self.ptr, evdev_code + EVDEV_OFFSET))

    def keys_for_char(self, char: str) -> tuple[int, frozenset[Modifier]] | None:
        """An evdev code and the modifiers that type ``char`` in the first layout, or None.

        Used to type text through the input API the way a keyboard would (tests, automation).
        """
        sym = lib.xkb_utf32_to_keysym(ord(char))
        if char == "\n":
            sym = Keysym.Return
        if sym == 0:
            return None
        return self.keys_for_keysym(int(sym))

    def keys_for_keysym(self, sym: int) -> tuple[int, frozenset[Modifier]] | None:
        """An evdev code and the modifiers that produce keysym ``sym`` in the first layout, or None
        (the lowest level that has it: ``Return`` is one key, ``exclam`` is Shift and a digit)."""
        masks = ffi.new("xkb_mod_mask_t[8]")
        syms = ffi.new("const xkb_keysym_t **")
        wanted = {(1 << self.mod_index(m.value)): m for m in Modifier}
        for key in range(lib.xkb_keymap_min_keycode(self.ptr), lib.xkb_keymap_max_keycode(self.ptr) + 1):
            if lib.xkb_keymap_num_layouts_for_key(self.ptr, key) == 0:
                continue
            for level in range(lib.xkb_keymap_num_levels_for_key(self.ptr, key, 0)):
                n = lib.xkb_keymap_key_get_syms_by_level(self.ptr, key, 0, level, syms)
                if n != 1 or syms[0][0] != sym:
                    continue
                count = lib.xkb_keymap_key_get_mods_for_level(self.ptr, key, 0, level, masks, 8)
                for i in range(count):
                    mask = masks[i]
                    mods = {m for bit, m in wanted.items() if mask & bit}
                    if mask & ~sum(wanted):
                        continue  # needs a modifier we would not know how to press (e.g. Mod5)
                    if Modifier.CAPS not in mods:
                        return key - EVDEV_OFFSET, frozenset(mods)
        return None


def keysym_from_name(name: str) -> int | None:
    """The keysym named ``name`` (``Return``, ``F4``, ``BackSpace``; case-insensitive), or None."""
    sym = lib.xkb_keysym_from_name(name.encode(), 0)
    if sym == 0:
        sym = lib.xkb_keysym_from_name(name.encode(), _KEYSYM_CASE_INSENSITIVE)
    return int(sym) or None


class KeyState:
    """The seat's xkb state: fed evdev press/release, read as wl_keyboard modifier state."""

    def __init__(self, keymap: Keymap) -> None:
        self.keymap = keymap
        self.ptr = lib.xkb_state_new(keymap.ptr)
        if self.ptr == ffi.NULL:
            raise KeymapError("xkb_state_new failed")

    def __del__(self) -> None:
        ptr = getattr(self, "ptr", None)
        if ptr is not None:
            _state_unref(ptr)

    def update(self, evdev_code: int, pressed: bool) -> None:
        lib.xkb_state_update_key(self.ptr, evdev_code + EVDEV_OFFSET, _KEY_DOWN if pressed else _KEY_UP)

    def modifiers(self) -> ModifierState:
        return ModifierState(
            depressed=lib.xkb_state_serialize_mods(self.ptr, _MODS_DEPRESSED),
            latched=lib.xkb_state_serialize_mods(self.ptr, _MODS_LATCHED),
            locked=lib.xkb_state_serialize_mods(self.ptr, _MODS_LOCKED),
            group=lib.xkb_state_serialize_layout(self.ptr, _LAYOUT_EFFECTIVE),
        )

    def keysym(self, evdev_code: int) -> int:
        return int(lib.xkb_state_key_get_one_sym(self.ptr, evdev_code + EVDEV_OFFSET))

    def base_keysym(self, evdev_code: int) -> int:
        """The keysym of the key's first level in the current layout (``1`` for Shift+1's ``exclam``;
        0 when it has none): how key bindings name keys."""
        key = evdev_code + EVDEV_OFFSET
        layout = lib.xkb_state_serialize_layout(self.ptr, _LAYOUT_EFFECTIVE)
        syms = ffi.new("const xkb_keysym_t **")
        n = lib.xkb_keymap_key_get_syms_by_level(self.keymap.ptr, key, layout, 0, syms)
        return int(syms[0][0]) if n >= 1 else 0

    def set_modifiers(self, mods: ModifierState) -> None:
        """Take the modifier state a compositor sent (``wl_keyboard.modifiers``): a client's seat."""
        lib.xkb_state_update_mask(self.ptr, mods.depressed, mods.latched, mods.locked, 0, 0, mods.group)

    def utf8(self, evdev_code: int) -> str:
        """The text ``evdev_code`` types in the current state ("" for keys that type nothing)."""
        buf = ffi.new("char[64]")
        n = lib.xkb_state_key_get_utf8(self.ptr, evdev_code + EVDEV_OFFSET, buf, 64)
        if n <= 0:
            return ""
        raw: bytes = ffi.string(buf, min(n, 63))
        return raw.decode("utf-8", "replace")

    def is_active(self, modifier: Modifier) -> bool:
        return bool(lib.xkb_state_mod_name_is_active(self.ptr, modifier.value.encode(), _MODS_EFFECTIVE) > 0)


def keysym_name(keysym: int) -> str:
    """xkb's name of ``keysym`` ("Return", "a", "BackSpace"), or "" for an unknown one."""
    buf = ffi.new("char[64]")
    n = lib.xkb_keysym_get_name(keysym, buf, 64)
    name: bytes = ffi.string(buf)
    return name.decode() if n > 0 else ""

"""Keyboard passthrough: a full-screen viewer (and a kiosk, always) takes the local desktop's shortcuts.

A person at a full-screen viewer works in the session: Alt+Tab, Super and Ctrl+Alt combinations are
meant for the session's desktop, not for the local one around the viewer. Where the local compositor
offers ``zwp_keyboard_shortcuts_inhibit_manager_v1`` the viewer asks it to pass every key to the
viewer's window while it has keyboard focus, and forwards them as it forwards any key. The escape
chord :data:`ESCAPE_CHORD` (Ctrl+Alt+Shift+Escape; not sent to the session) gives the shortcuts back
to the local desktop; the same chord takes them again. In kiosk mode the viewer is the whole local
desktop: the shortcuts are always taken and the chord does nothing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("wayray.client")

KEY_ESC = 1
#: What a person presses to give the local desktop its shortcuts back (and to take them again).
ESCAPE_CHORD = "Ctrl+Alt+Shift+Escape"


class KeyboardPassthrough:
    """The window's keyboard-shortcuts inhibitor, taken while it should be and not released."""

    def __init__(self, manager: Any, conn: Any, *, kiosk: bool) -> None:
        #: The local compositor's zwp_keyboard_shortcuts_inhibit_manager_v1 proxy, or None.
        self.manager = manager
        self.conn = conn
        self.kiosk = kiosk
        #: The person gave the shortcuts back with the escape chord (until they press it again).
        self.released = False
        self._inhibitor: Any = None
        self._wanted = False
        self._surface: Any = None
        self._seat: Any = None
        self._said_missing = False
        #: The local compositor says it passes every key to us now (its ``active`` event).
        self.active = False

    def update(self, *, surface: Any, seat: Any, fullscreen: bool) -> None:
        """The window's state changed: take the shortcuts while full screen (or a kiosk)."""
        self._surface, self._seat = surface, seat
        self._wanted = (fullscreen or self.kiosk) and surface is not None and seat is not None
        if self._wanted and not self.released:
            self._take()
        else:
            self._give_back()

    def escape(self, evdev_code: int, pressed: bool, ctrl: bool, alt: bool, shift: bool) -> bool:
        """Whether this key is the escape chord's Escape (then it is not sent to the session)."""
        if evdev_code != KEY_ESC or not (ctrl and alt and shift) or not self._wanted:
            return False
        if not pressed:
            return True
        if self.kiosk:
            log.info("%s does nothing in kiosk mode: the kiosk is the whole desktop", ESCAPE_CHORD)
            return True
        self.released = not self.released
        if self.released:
            self._give_back()
            log.info(
                "keyboard shortcuts go to the local desktop again (Alt+Tab, Super...); %s gives them back "
                "to the session",
                ESCAPE_CHORD,
            )
        else:
            self._take()
        return True

    def _take(self) -> None:
        if self._inhibitor is not None:
            return
        if self.manager is None:
            if not self._said_missing:
                self._said_missing = True
                log.info(
                    "the local compositor does not offer zwp_keyboard_shortcuts_inhibit_manager_v1: its own "
                    "shortcuts (Alt+Tab, Super...) stay with it and do not reach the session"
                )
            return
        self._inhibitor = self.conn.track(self.manager.inhibit_shortcuts(self._surface, self._seat))
        self.conn.listen(self._inhibitor, active=self._active, inactive=self._inactive)
        self.conn.flush()
        log.info(
            "keyboard shortcuts go to the session while this window has the keyboard (%s: back)",
            ESCAPE_CHORD,
        )

    def _give_back(self) -> None:
        if self._inhibitor is None:
            return
        self.conn.destroy(self._inhibitor)
        self.conn.flush()
        self._inhibitor = None
        self.active = False

    def _active(self) -> None:
        self.active = True

    def _inactive(self) -> None:
        self.active = False

"""zwp_keyboard_shortcuts_inhibit_manager_v1: a client may take the compositor's own key bindings.

A surface with an inhibitor gets every key while it has keyboard focus, the window manager's bindings
(Alt+Tab, Alt+F4, ...) included: what a remote-desktop or virtual-machine viewer asks for, so its
session's shortcuts reach the session. The compositor grants every request (a session's clients are
its user's own programs) and tells the client, with ``active`` and ``inactive``, when it applies: while
the surface has keyboard focus.
"""

from __future__ import annotations

from pywayland.protocol.keyboard_shortcuts_inhibit_unstable_v1 import (
    ZwpKeyboardShortcutsInhibitManagerV1,
    ZwpKeyboardShortcutsInhibitorV1,
)

from wayray.compositor.surface import Surface
from wayray.wayland.server import NewId, ProtocolError, Resource


class ShortcutsInhibit:
    """The seat's inhibitors, by surface, and which of them applies."""

    def __init__(self) -> None:
        self.inhibitors: dict[Surface, ShortcutsInhibitor] = {}
        self._focus: Surface | None = None

    def inhibited(self, focus: Surface | None) -> bool:
        """Whether the surface with keyboard focus takes the compositor's key bindings."""
        return focus is not None and focus in self.inhibitors

    def focus_changed(self, focus: Surface | None) -> None:
        """Keyboard focus moved to ``focus``: the inhibitors that start or stop applying are told."""
        old, self._focus = self._focus, focus
        if old is focus:
            return
        if old is not None and old in self.inhibitors:
            self.inhibitors[old].post("inactive")
        if focus is not None and focus in self.inhibitors:
            self.inhibitors[focus].post("active")

    def added(self, inhibitor: ShortcutsInhibitor, surface: Surface) -> None:
        self.inhibitors[surface] = inhibitor
        if surface is self._focus:
            inhibitor.post("active")

    def removed(self, inhibitor: ShortcutsInhibitor) -> None:
        for surface, found in list(self.inhibitors.items()):
            if found is inhibitor:
                del self.inhibitors[surface]


class ShortcutsInhibitManager(Resource):
    interface = ZwpKeyboardShortcutsInhibitManagerV1

    def __init__(self, new_id: NewId, inhibit: ShortcutsInhibit) -> None:
        super().__init__(new_id)
        self.inhibit = inhibit

    def destroy(self) -> None:
        pass

    def inhibit_shortcuts(self, id: NewId, surface: Surface, seat: Resource) -> None:
        inhibitor = ShortcutsInhibitor(id, self.inhibit)
        if surface in self.inhibit.inhibitors:
            raise ProtocolError(
                self,
                ZwpKeyboardShortcutsInhibitManagerV1.error.already_inhibited,
                f"wl_surface@{surface.id} already inhibits the shortcuts of this seat",
            )
        surface.destroy_listeners.append(lambda _s: self.inhibit.removed(inhibitor))
        self.inhibit.added(inhibitor, surface)


class ShortcutsInhibitor(Resource):
    interface = ZwpKeyboardShortcutsInhibitorV1

    def __init__(self, new_id: NewId, inhibit: ShortcutsInhibit) -> None:
        super().__init__(new_id)
        self.inhibit = inhibit

    def destroy(self) -> None:
        pass

    def on_destroy(self) -> None:
        self.inhibit.removed(self)

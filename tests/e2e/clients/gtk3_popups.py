"""A GTK 3 program with a menu (and its submenu) and a popover, for the X11 tests: run it with
``GDK_BACKEND=x11`` and the system's Python (python3-gi, gir1.2-gtk-3.0)::

    /usr/bin/python3 gtk3_popups.py REPORT_DIR

Every part has a colour of its own, so a picture of the screen tells where each one is drawn: the
window #3050a0, its two buttons #ffff00 ("Menu", a GtkMenuButton with a GtkMenu: an override-redirect
X window) and #00ffff ("Popover", a GtkMenuButton with a GtkPopover: GTK 3 draws it inside the window
on X), the menu #00c000 with a submenu #c00000 on its "More" item, the popover's content #c000c0.

It says where GTK put them, as X has them, in REPORT_DIR: ``window.json`` once the window is drawn,
and again each time X moves it (its root origin and size, each button's place in it), then each
time a popup is drawn or goes, ``<name>-shown-<n>.json`` (menu and submenu: the root origin and size
of its X window; popover: its content's root origin and size) and ``<name>-hidden-<n>``, n counting
from 1. A file is written whole under another name first, then renamed: a reader never sees half of
one. (Animations are off: GTK's popovers slide into place.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402

CSS = b"""
* { transition: none; animation: none; box-shadow: none; text-shadow: none; -gtk-icon-shadow: none; }
window.popups, window.popups box.main { background: #3050a0; }
#menu-button, #menu-button:hover, #menu-button:checked, #menu-button:active {
    background: #ffff00; border: none; border-radius: 0; outline: none; color: #ffff00; }
#popover-button, #popover-button:hover, #popover-button:checked, #popover-button:active {
    background: #00ffff; border: none; border-radius: 0; outline: none; color: #00ffff; }
menu.first, menu.first menuitem, .first.csd { background: #00c000; border: none; margin: 0; }
menu.second, menu.second menuitem, .second.csd { background: #c00000; border: none; margin: 0; }
menu menuitem:hover { background: inherit; }
menu menuitem label { color: inherit; }
#popover-content { background: #c000c0; }
"""


class Popups:
    def __init__(self, report: Path) -> None:
        self.report = report
        self.counts: dict[str, int] = {}
        self.shown: dict[str, bool] = {}
        provider = Gtk.CssProvider()
        provider.load_from_data(CSS)
        screen = Gdk.Screen.get_default()
        Gtk.Settings.get_default().set_property("gtk-enable-animations", False)  # (popovers slide in)
        Gtk.StyleContext.add_provider_for_screen(screen, provider, Gtk.STYLE_PROVIDER_PRIORITY_USER)

        self.window = Gtk.Window(title="gtk3 popups")
        self.window.get_style_context().add_class("popups")
        self.window.set_default_size(480, 360)
        self.window.connect("destroy", Gtk.main_quit)
        box = Gtk.Fixed()
        box.get_style_context().add_class("main")
        self.window.add(box)

        self.menu_button = Gtk.MenuButton(label="Menu", name="menu-button")
        self.menu_button.set_size_request(120, 40)
        self.menu = self._menu("first", ["Open", "Save", "More"])
        self.submenu = self._menu("second", ["Alpha", "Beta", "Gamma"])
        self.menu.get_children()[2].set_submenu(self.submenu)
        self.menu_button.set_popup(self.menu)
        self.menu_button.set_direction(Gtk.ArrowType.DOWN)
        box.put(self.menu_button, 60, 60)

        self.popover_button = Gtk.MenuButton(label="Popover", name="popover-button")
        self.popover_button.set_size_request(120, 40)
        self.popover = Gtk.Popover()
        content = Gtk.Label(label="popover", name="popover-content")
        content.set_size_request(160, 90)
        content.show()
        self.popover.add(content)
        self.popover.set_position(Gtk.PositionType.BOTTOM)
        self.popover_button.set_popover(self.popover)
        box.put(self.popover_button, 300, 60)

        self.window.connect("map-event", lambda *_: self._after_draw(self.window, self._window_drawn))
        self.window.connect("configure-event", lambda *_: self._after_draw(self.window, self._window_drawn))
        for name, menu in (("menu", self.menu), ("submenu", self.submenu)):
            top = menu.get_toplevel()
            top.connect("map-event", lambda w, _e, n=name: self._after_draw(w, lambda: self._shown(n, w)))
            top.connect("unmap-event", lambda _w, _e, n=name: self._event(f"{n}-hidden"))
        self.popover.connect("map", lambda w: self._after_draw(w, lambda: self._popover_shown(content)))
        self.popover.connect("unmap", lambda _w: self._event("popover-hidden"))
        self.window.show_all()

    def _menu(self, style: str, labels: list[str]) -> Gtk.Menu:
        menu = Gtk.Menu()
        menu.get_style_context().add_class(style)
        for label in labels:
            item = Gtk.MenuItem(label=label)
            item.set_size_request(150, 30)
            menu.append(item)
        menu.show_all()
        return menu

    def _after_draw(self, widget: Gtk.Widget, then: object) -> bool:
        """``then`` once ``widget`` has been painted (its frame clock's next paint after a redraw was
        asked for) and GTK's drawing has gone to the X server."""
        clock = widget.get_frame_clock()
        handler: list[int] = []

        def painted(*_: object) -> None:
            clock.disconnect(handler[0])
            GLib.idle_add(lambda: (Gdk.Display.get_default().flush(), then()) and False)

        handler.append(clock.connect("after-paint", painted))
        widget.queue_draw()
        return False

    def _window_drawn(self) -> None:
        gdk = self.window.get_window()
        _, x, y = gdk.get_origin()
        place = {}
        for name, button in (("menu", self.menu_button), ("popover", self.popover_button)):
            bx, by = button.translate_coordinates(self.window, 0, 0)
            a = button.get_allocation()
            place[name] = [bx, by, a.width, a.height]
        self._write(
            "window.json", {"x": x, "y": y, "width": gdk.get_width(), "height": gdk.get_height(), **place}
        )

    def _shown(self, name: str, top: Gtk.Widget) -> None:
        gdk = top.get_window()
        _, x, y = gdk.get_origin()
        self._event(f"{name}-shown", {"x": x, "y": y, "width": gdk.get_width(), "height": gdk.get_height()})

    def _popover_shown(self, content: Gtk.Widget) -> None:
        _, x, y = content.get_window().get_origin()  # (the popover's own X window, inside the window)
        a = content.get_allocation()
        self._event("popover-shown", {"x": x + a.x, "y": y + a.y, "width": a.width, "height": a.height})

    def _event(self, what: str, data: object = None) -> bool:
        """``<name>-shown-<n>.json`` or ``<name>-hidden-<n>``, once per change (GTK may say a popup
        went more than once)."""
        name, state = what.rsplit("-", 1)
        if self.shown.get(name, False) == (state == "shown"):
            return False
        self.shown[name] = state == "shown"
        n = self.counts[what] = self.counts.get(what, 0) + 1
        if data is None:
            self._write(f"{what}-{n}", None)
        else:
            self._write(f"{what}-{n}.json", data)
        return False

    def _write(self, name: str, data: object) -> None:
        tmp = self.report / f".{name}.tmp"
        tmp.write_text("" if data is None else json.dumps(data))
        os.replace(tmp, self.report / name)


def main() -> int:
    report = Path(sys.argv[1])
    report.mkdir(parents=True, exist_ok=True)
    Popups(report)
    Gtk.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

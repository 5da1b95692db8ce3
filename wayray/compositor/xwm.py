"""The X window manager inside the compositor: X windows of Xwayland in the built-in floating WM.

``Xwm`` is an xcffib connection on the ``-wm`` socket Xwayland was started with, driven from the
compositor's asyncio loop (``loop.add_reader`` on its fd: drain the events, handle them, flush). It
redirects the root's substructure (it is the window manager), reads the ICCCM/EWMH properties a
window is mapped with, pairs each X window with the ``wl_surface`` Xwayland made for it
(``WL_SURFACE_ID``), and hands managed windows to the WM through the same toplevel hooks xdg-shell
uses (``XwmHost``): an ``XWindow`` is a ``wm.ManagedToplevel``. Override-redirect windows (menus,
tooltips) are not managed: the scene shows them where X put them, above the windows.
Replies are waited for synchronously, as wlroots does: Xwayland answers X requests without waiting
on the compositor (docs/xwayland.md §3).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any, Protocol

import xcffib
import xcffib.composite
import xcffib.xfixes
import xcffib.xproto as xp

from wayray.compositor.geometry import Rect
from wayray.compositor.stacking import StackRequest
from wayray.compositor.surface import Surface
from wayray.compositor.titlebar import HEIGHT as TITLE_HEIGHT
from wayray.compositor.xdg_shell import ToplevelConfigure
from wayray.compositor.xprops import PropertyReader
from wayray.compositor.xselection import SelectionBridge, SelectionHost
from wayray.compositor.xwindow import XWindow, clamp_size

if TYPE_CHECKING:
    from wayray.wayland.server import Client

log = logging.getLogger(__name__)

ATOMS = (
    "WL_SURFACE_ID",
    "WL_SURFACE_SERIAL",
    "WM_PROTOCOLS",
    "WM_DELETE_WINDOW",
    "WM_TAKE_FOCUS",
    "WM_STATE",
    "WM_CHANGE_STATE",
    "UTF8_STRING",
    "_NET_WM_NAME",
    "_NET_SUPPORTED",
    "_NET_SUPPORTING_WM_CHECK",
    "_NET_ACTIVE_WINDOW",
    "_NET_WM_STATE",
    "_NET_WM_STATE_MAXIMIZED_VERT",
    "_NET_WM_STATE_MAXIMIZED_HORZ",
    "_NET_WM_STATE_FULLSCREEN",
    "_NET_WM_PID",
    "_NET_WM_WINDOW_TYPE",
    "_NET_WM_MOVERESIZE",
    "_MOTIF_WM_HINTS",
    "_GTK_FRAME_EXTENTS",
    "WM_S0",
)
NORMAL_STATE, WITHDRAWN_STATE, ICONIC_STATE = 1, 0, 3
NET_WM_STATE_REMOVE, NET_WM_STATE_ADD, NET_WM_STATE_TOGGLE = 0, 1, 2
#: _NET_WM_MOVERESIZE's directions (EWMH) as the WM's resize edges (top 1, bottom 2, left 4, right 8);
#: 8 is a move, 9 and 10 the keyboard's (not offered), 11 a cancel.
MOVERESIZE_EDGES = {0: 5, 1: 1, 2: 9, 3: 8, 4: 10, 5: 2, 6: 6, 7: 4}
MOVERESIZE_MOVE = 8
STACK_MODES = {
    xp.StackMode.Above: StackRequest.ABOVE,
    xp.StackMode.Below: StackRequest.BELOW,
    xp.StackMode.TopIf: StackRequest.TOP_IF,
    xp.StackMode.BottomIf: StackRequest.BOTTOM_IF,
    xp.StackMode.Opposite: StackRequest.OPPOSITE,
}


class XwmHost(SelectionHost, Protocol):
    """What the X window manager needs of the compositor (``Core``): the WM's toplevel hooks, and the
    selections for the clipboard bridge."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def scene_changed(self) -> None: ...

    def usable_area(self) -> Rect: ...

    def new_toplevel(self, toplevel: XWindow) -> object: ...

    def toplevel_mapped(self, toplevel: XWindow) -> None: ...

    def toplevel_committed(self, toplevel: XWindow) -> None: ...

    def toplevel_unmapped(self, toplevel: XWindow) -> None: ...

    def toplevel_destroyed(self, toplevel: XWindow) -> None: ...

    def maximize_requested(self, toplevel: XWindow, on: bool) -> None: ...

    def fullscreen_requested(self, toplevel: XWindow, on: bool) -> None: ...

    def minimize_requested(self, toplevel: XWindow) -> None: ...

    def activate_requested(self, toplevel: XWindow) -> None: ...

    def restack_requested(self, toplevel: XWindow, how: StackRequest, sibling: XWindow | None) -> None: ...

    def move_requested(
        self, toplevel: XWindow, serial: int, anchor: tuple[int, int] | None = None
    ) -> None: ...

    def resize_requested(self, toplevel: XWindow, serial: int, edges: int) -> None: ...

    def button_press_serial(self, client: Client) -> int:
        """The serial of the last button press ``client`` was sent (-1: none): what a move or resize
        request must name while the button is held."""


class Xwm:
    """The window manager on Xwayland's ``-wm`` connection."""

    def __init__(self, host: XwmHost, sock: socket.socket, client: Client) -> None:
        self.host = host
        self.client = client
        self.conn = xcffib.Connection(fd=sock.detach())  # xcb owns the fd now
        self.core: Any = getattr(self.conn, "core")  # noqa: B009 (untyped in xcffib)
        self.windows: dict[int, XWindow] = {}
        self.unmanaged: list[XWindow] = []  # mapped override-redirect windows, bottom to top
        self._waiting_surface: dict[int, XWindow] = {}  # wl_surface id -> window (id not seen yet)
        # xwayland_shell_v1: WL_SURFACE_SERIAL messages whose surface has not committed the serial yet,
        # and surfaces that committed a serial no window named yet.
        self._serial_windows: dict[int, XWindow] = {}
        self._serial_surfaces: dict[int, Surface] = {}
        self.closed = False
        self.focused: XWindow | None = None  # the X window with X's input focus
        screen = self.conn.get_setup().roots[0]
        self.root = screen.root
        cookies = {name: self.core.InternAtom(False, len(name), name) for name in ATOMS}
        self.atoms = {name: c.reply().atom for name, c in cookies.items()}
        self.props = PropertyReader(self.core, self.atoms)
        self._become_wm(screen)
        self.selections = SelectionBridge(
            self.conn, self.core, self.root, screen.root_visual, host, watched=self.windows.__contains__
        )
        # Owning WM_S0 says a window manager runs (ICCCM 2.8); Xwayland accepts X clients only then,
        # so everything the WM must hear about is selected before.
        self.core.SetSelectionOwner(self._check_window, self.atoms["WM_S0"], xp.Time.CurrentTime)
        self._fd = self.conn.get_file_descriptor()
        host.loop.add_reader(self._fd, self._readable)
        # Waiting for replies may have read events into xcb's queue: the fd will not say so.
        host.loop.call_soon(self._readable)
        self.conn.flush()
        log.info("X window manager running")

    def _become_wm(self, screen: Any) -> None:
        core, a = self.core, self.atoms
        mask = xp.EventMask.SubstructureRedirect | xp.EventMask.SubstructureNotify
        core.ChangeWindowAttributesChecked(self.root, xp.CW.EventMask, [mask]).check()
        # Rootless Xwayland gives a window a wl_surface only if its drawing is redirected.
        composite: Any = self.conn(xcffib.composite.key)
        composite.QueryVersion(0, 4).reply()
        composite.RedirectSubwindows(self.root, xcffib.composite.Redirect.Manual)
        check = self.conn.generate_id()
        core.CreateWindow(
            0, check, self.root, -1, -1, 1, 1, 0, xp.WindowClass.InputOutput, screen.root_visual, 0, []
        )
        name = b"wayray"
        for w in (self.root, check):
            core.ChangeProperty(
                xp.PropMode.Replace, w, a["_NET_SUPPORTING_WM_CHECK"], xp.Atom.WINDOW, 32, 1, [check]
            )
        core.ChangeProperty(
            xp.PropMode.Replace, check, a["_NET_WM_NAME"], a["UTF8_STRING"], 8, len(name), name
        )
        supported = [
            a[n]
            for n in (
                "_NET_WM_NAME",
                "_NET_ACTIVE_WINDOW",
                "_NET_WM_STATE",
                "_NET_WM_STATE_MAXIMIZED_VERT",
                "_NET_WM_STATE_MAXIMIZED_HORZ",
                "_NET_WM_STATE_FULLSCREEN",
                "_NET_SUPPORTING_WM_CHECK",
                "_NET_WM_MOVERESIZE",
            )
        ]
        core.ChangeProperty(
            xp.PropMode.Replace, self.root, a["_NET_SUPPORTED"], xp.Atom.ATOM, 32, len(supported), supported
        )
        self._check_window = check

    # The loop ---------------------------------------------------------------------------------

    def _readable(self) -> None:
        """Handle every queued event. An X error (a window that vanished while we spoke about it) or a
        bug in one handler costs that event only; the connection's end closes the WM."""
        while not self.closed:
            try:
                event = self.conn.poll_for_event()
                if event is None:
                    break
                self._handle(event)
            except xcffib.ConnectionException:
                log.info("the X window manager's connection closed")
                self.close()
                return
            except xcffib.Error as err:
                log.debug("X error %s (a window gone meanwhile?)", type(err).__name__)
            except Exception:
                log.exception("X window manager: an event could not be handled")
        self.flush()

    def flush(self) -> None:
        if not self.closed:
            try:
                self.conn.flush()
            except xcffib.ConnectionException:
                self.close()

    def close(self) -> None:
        """Forget every window (Xwayland is gone or going) and drop the connection."""
        if self.closed:
            return
        self.closed = True
        self.host.loop.remove_reader(self._fd)
        self.selections.close()
        for win in list(self.windows.values()):
            self._destroyed(win)
        self.conn.disconnect()

    def _handle(self, event: Any) -> None:
        log.debug("X event %s", type(event).__name__)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # X events ---------------------------------------------------------------------------------

    def _on_create(self, ev: xp.CreateNotifyEvent) -> None:
        if ev.window in (self._check_window, self.selections.wid):
            return
        rect = Rect(ev.x, ev.y, ev.width, ev.height)
        self.windows[ev.window] = XWindow(self, ev.window, rect, bool(ev.override_redirect))
        mask = xp.EventMask.PropertyChange | xp.EventMask.FocusChange
        self.core.ChangeWindowAttributes(ev.window, xp.CW.EventMask, [mask])

    def _on_destroy(self, ev: xp.DestroyNotifyEvent) -> None:
        self.selections.window_destroyed(ev.window)
        win = self.windows.get(ev.window)
        if win is not None:
            self._destroyed(win)

    def _destroyed(self, win: XWindow) -> None:
        if self.focused is win:
            self.focused = None
        self._unmapped(win)
        win.alive = False
        self.windows.pop(win.wid, None)
        for sid, w in list(self._waiting_surface.items()):
            if w is win:
                del self._waiting_surface[sid]
        for serial, w in list(self._serial_windows.items()):
            if w is win:
                del self._serial_windows[serial]
        if win.surface is not None:
            win.surface.clear_role(win)
            win.surface = None
        if win.managed:
            win.managed = False
            self.host.toplevel_destroyed(win)

    def _on_map_request(self, ev: xp.MapRequestEvent) -> None:
        win = self.windows.get(ev.window)
        if win is None:
            return
        self.props.read_all(win)
        if not win.managed:
            win.managed = True
            self.host.new_toplevel(win)
        # A window made larger than the area windows get (before it asked the WM anything) is cut to it.
        area = self.host.usable_area()
        title = 0 if win.undecorated else TITLE_HEIGHT
        w, h = min(win.width, max(1, area.width)), min(win.height, max(1, area.height - title))
        if (w, h) != (win.width, win.height):
            self.configure_window(win, size=clamp_size(w, h, win.min_size, win.max_size))
        self._set_wm_state(win, NORMAL_STATE)
        self.core.MapWindow(win.wid)

    def _on_map(self, ev: xp.MapNotifyEvent) -> None:
        win = self.windows.get(ev.window)
        if win is None:
            return
        win.x_mapped = True
        if win.override_redirect and win not in self.unmanaged:
            self.unmanaged.append(win)
            self._stack_unmanaged()  # (a window mapped again keeps its place in X's stack)
        self._check_shown(win)

    def _on_unmap(self, ev: xp.UnmapNotifyEvent) -> None:
        win = self.windows.get(ev.window)
        if win is None:
            return
        self._unmapped(win)
        if win.managed:
            self._set_wm_state(win, WITHDRAWN_STATE)

    def _unmapped(self, win: XWindow) -> None:
        win.x_mapped = False
        if win in self.unmanaged:
            self.unmanaged.remove(win)
            self.host.scene_changed()
        if win.wm_mapped:
            win.wm_mapped = False
            self.host.toplevel_unmapped(win)

    def _on_configure_request(self, ev: xp.ConfigureRequestEvent) -> None:
        win = self.windows.get(ev.window)
        if win is None:
            return
        m = ev.value_mask
        w = ev.width if m & xp.ConfigWindow.Width else win.size[0]
        h = ev.height if m & xp.ConfigWindow.Height else win.size[1]
        w, h = clamp_size(w, h, win.min_size, win.max_size)
        area = self.host.usable_area()
        w, h = min(w, max(area.width, 1)), min(h, max(area.height, 1))
        if win.wm_mapped:
            pos = (win.x, win.y)  # a shown window stays where the WM put it
        else:
            pos = (ev.x if m & xp.ConfigWindow.X else win.x, ev.y if m & xp.ConfigWindow.Y else win.y)
        # Answered in any case (ICCCM 4.1.5): with a real ConfigureNotify if anything changes, else
        # the client hears it through the synthetic one configure_window sends.
        self.configure_window(win, pos=pos, size=(w, h), always_notify=True)
        if m & xp.ConfigWindow.StackMode and win.wm_mapped and ev.stack_mode in STACK_MODES:
            # XRaiseWindow, XLowerWindow, XRestackWindows: the WM decides (wm.restack_requested).
            sibling = self.windows.get(ev.sibling) if m & xp.ConfigWindow.Sibling else None
            if sibling is None and m & xp.ConfigWindow.Sibling:
                return  # relative to a window the WM does not manage (X checked it is a sibling)
            self.host.restack_requested(win, STACK_MODES[ev.stack_mode], sibling)

    def _on_configure_notify(self, ev: xp.ConfigureNotifyEvent) -> None:
        win = self.windows.get(ev.window)
        if win is None:
            return
        moved = (win.x, win.y, win.width, win.height) != (ev.x, ev.y, ev.width, ev.height)
        win.x, win.y, win.width, win.height = ev.x, ev.y, ev.width, ev.height
        if win.asked_size == (ev.width, ev.height):
            win.asked_size = None  # X has what was asked
        restacked = win.above_sibling != ev.above_sibling
        win.above_sibling = ev.above_sibling
        if win.override_redirect and restacked and win in self.unmanaged:
            self._stack_unmanaged()  # raised or lowered by its program: X's word, not the WM's
        if win.override_redirect and (moved or restacked):
            self.host.scene_changed()

    def _stack_unmanaged(self) -> None:
        """Order the shown override-redirect windows as X stacks them (its tree, bottom to top): what
        X shows on top of an overlap (a submenu over its menu, a tooltip) is drawn on top. Sorted in
        place: the scene holds this list."""
        if len(self.unmanaged) < 2:
            return
        order = {wid: i for i, wid in enumerate(self.core.QueryTree(self.root).reply().children)}
        self.unmanaged.sort(key=lambda w: order.get(w.wid, len(order)))

    def _on_property(self, ev: xp.PropertyNotifyEvent) -> None:
        if ev.window == self.selections.wid:
            self.selections.property_changed(ev)
            return
        if self.selections.requestor_property(ev):  # an X client taking a selection in INCR pieces
            return
        win = self.windows.get(ev.window)
        if win is None or ev.state != xp.Property.NewValue:
            return
        a = self.atoms
        if ev.atom in (xp.Atom.WM_NAME, a["_NET_WM_NAME"]):
            self.props.read_title(win)
            self.host.scene_changed()
        elif ev.atom == xp.Atom.WM_NORMAL_HINTS:
            self.props.read_size_hints(win)
        elif ev.atom == xp.Atom.WM_TRANSIENT_FOR:
            self.props.read_transient(win)
        elif ev.atom in (a["_MOTIF_WM_HINTS"], a["_GTK_FRAME_EXTENTS"]):
            self.props.read_frame(win)
            self.host.scene_changed()

    def _on_client_message(self, ev: xp.ClientMessageEvent) -> None:
        a = self.atoms
        win = self.windows.get(ev.window)
        if win is None:
            return
        data = ev.data.data32
        if ev.type == a["WL_SURFACE_ID"]:
            self._pair(win, data[0])
        elif ev.type == a["WL_SURFACE_SERIAL"]:
            self._pair_serial(win, data[0] | data[1] << 32)
        elif ev.type == a["_NET_WM_STATE"] and win.managed:
            self._net_wm_state_request(win, data[0], (data[1], data[2]))
        elif ev.type == a["WM_CHANGE_STATE"] and win.managed and data[0] == ICONIC_STATE:
            self.host.minimize_requested(win)  # ICCCM 4.1.4: iconify
        elif ev.type == a["_NET_ACTIVE_WINDOW"] and win.managed:
            self.host.activate_requested(win)  # EWMH: a program presenting its window, or a pager
        elif ev.type == a["_NET_WM_MOVERESIZE"] and win.managed:
            self._moveresize(win, data[2], (data[0], data[1]))

    def _moveresize(self, win: XWindow, direction: int, root: tuple[int, int]) -> None:
        """EWMH _NET_WM_MOVERESIZE: a program drawing its own title bar and borders (GTK's header
        bars) asks the WM to move or resize the window while the pointer button is held. Started
        only if a button is still held on the Xwayland client (the WM checks the press serial).
        ``root`` is where the drag began: GTK asks only once the pointer has gone past its drag
        threshold, and the window should not lag the pointer by that distance."""
        serial = self.host.button_press_serial(self.client)
        if direction == MOVERESIZE_MOVE:
            self.host.move_requested(win, serial, root)
        elif direction in MOVERESIZE_EDGES:
            self.host.resize_requested(win, serial, MOVERESIZE_EDGES[direction])
        else:
            log.debug("_NET_WM_MOVERESIZE direction %d (keyboard or cancel) not taken", direction)

    def _net_wm_state_request(self, win: XWindow, action: int, props: tuple[int, int]) -> None:
        a = self.atoms
        for name, current, request in (
            ("_NET_WM_STATE_FULLSCREEN", win.want.fullscreen, self.host.fullscreen_requested),
            ("_NET_WM_STATE_MAXIMIZED_VERT", win.want.maximized, self.host.maximize_requested),
        ):
            if a[name] in props or (name.endswith("VERT") and a["_NET_WM_STATE_MAXIMIZED_HORZ"] in props):
                on = not current if action == NET_WM_STATE_TOGGLE else action == NET_WM_STATE_ADD
                request(win, on)

    # Surfaces ---------------------------------------------------------------------------------

    def _pair(self, win: XWindow, surface_id: int) -> None:
        obj = self.client.object(surface_id)
        if isinstance(obj, Surface) and obj.role is None:
            self._attach(win, obj)
        else:
            self._waiting_surface[surface_id] = win  # the surface's creation has not reached us yet

    def _pair_serial(self, win: XWindow, serial: int) -> None:
        """WL_SURFACE_SERIAL (xwayland_shell_v1): the window's surface is the one committing ``serial``."""
        surface = self._serial_surfaces.pop(serial, None)
        if surface is not None and surface.alive:
            self._attach(win, surface)
            return
        for old, w in list(self._serial_windows.items()):
            if w is win:  # a window remapped gets a new serial: the old one will not come
                del self._serial_windows[old]
        self._serial_windows[serial] = win

    def surface_serial(self, surface: Surface, serial: int) -> None:
        """Xwayland's ``surface`` committed ``serial`` (xwayland_shell_v1): pair it, or keep it until
        its window's WL_SURFACE_SERIAL comes."""
        win = self._serial_windows.pop(serial, None)
        if win is not None and win.alive:
            self._attach(win, surface)
        else:
            self._serial_surfaces[serial] = surface

    def serial_surface_gone(self, surface: Surface) -> None:
        for serial, s in list(self._serial_surfaces.items()):
            if s is surface:
                del self._serial_surfaces[serial]

    def surface_created(self, surface: Surface) -> None:
        """Xwayland created ``surface``: pair it if its window named it already."""
        win = self._waiting_surface.pop(surface.id, None)
        if win is not None and win.alive:
            self._attach(win, surface)

    def _attach(self, win: XWindow, surface: Surface) -> None:
        if win.surface is not None:
            win.surface.clear_role(win)
        surface.role = win
        surface.role_name = win.name
        win.surface = surface
        self._check_shown(win)

    def surface_committed(self, win: XWindow) -> None:
        if win.wm_mapped:
            if win.surface is None or not win.surface.has_content:
                self._unmapped(win)
                return
            self.host.toplevel_committed(win)
        else:
            self._check_shown(win)
        self.host.scene_changed()

    def surface_gone(self, win: XWindow) -> None:
        was = win.wm_mapped
        win.surface = None
        if was:
            win.wm_mapped = False
            self.host.toplevel_unmapped(win)
        self.host.scene_changed()

    def _check_shown(self, win: XWindow) -> None:
        s = win.surface
        if not win.x_mapped or s is None or not s.has_content:
            return
        if win.override_redirect:
            self.host.scene_changed()
        elif win.managed and not win.wm_mapped:
            win.wm_mapped = True
            self.host.toplevel_mapped(win)

    # Properties -------------------------------------------------------------------------------

    def _set_wm_state(self, win: XWindow, state: int) -> None:
        a = self.atoms["WM_STATE"]
        self.core.ChangeProperty(xp.PropMode.Replace, win.wid, a, a, 32, 2, [state, 0])

    def set_net_wm_state(self, win: XWindow, want: ToplevelConfigure) -> None:
        a = self.atoms
        states = []
        if want.maximized:
            states += [a["_NET_WM_STATE_MAXIMIZED_VERT"], a["_NET_WM_STATE_MAXIMIZED_HORZ"]]
        if want.fullscreen:
            states.append(a["_NET_WM_STATE_FULLSCREEN"])
        self.core.ChangeProperty(
            xp.PropMode.Replace, win.wid, a["_NET_WM_STATE"], xp.Atom.ATOM, 32, len(states), states
        )
        self.flush()

    # Requests from the WM ---------------------------------------------------------------------

    def configure_window(
        self,
        win: XWindow,
        *,
        pos: tuple[int, int] | None = None,
        size: tuple[int, int] | None = None,
        always_notify: bool = False,
    ) -> None:
        if self.closed or not win.alive:
            return
        # Only what is given: X's last word on the rest may be out of date (a resize in flight), and
        # sending it would undo what was asked a moment ago.
        x, y = pos if pos is not None else (win.x, win.y)
        w, h = size if size is not None else (win.width, win.height)
        cw = xp.ConfigWindow
        mask, values = cw.BorderWidth, [0]
        if pos is not None:
            mask, values = mask | cw.X | cw.Y, [x & 0xFFFFFFFF, y & 0xFFFFFFFF, *values]
        if size is not None:
            mask, values = mask | cw.Width | cw.Height, [*values[:-1], w, h, 0]
            win.asked_size = (w, h)
        self.core.ConfigureWindow(win.wid, mask, values)
        if always_notify and (x, y, w, h) == (win.x, win.y, win.width, win.height):
            ev = xp.ConfigureNotifyEvent.synthetic(win.wid, win.wid, 0, x, y, w, h, 0, 0)
            self.core.SendEvent(False, win.wid, xp.EventMask.StructureNotify, ev.pack())
        self.flush()

    def pointer_grab_surface(self) -> tuple[Surface, int, int] | None:
        """When an X program holds X's pointer grab while an override-redirect window is shown (an
        open menu): the topmost such window's surface and origin, to give Xwayland a click made
        outside every X window (on an X server the grab would get it, and the menu closes). None
        when nobody holds the grab: X would give the click to whatever X window is under it, maybe
        one hidden under a Wayland window. Asked with a grab of the WM's own, let go at once."""
        if self.closed:
            return None
        shown = [
            w
            for w in self.unmanaged
            if w.surface is not None and w.surface.has_content and w.x + w.width > 0 and w.y + w.height > 0
        ]  # (GTK keeps a window of its own mapped off the screen, at -100,-100)
        if not shown:
            return None
        mode = xp.GrabMode.Async
        reply = self.core.GrabPointer(False, self.root, 0, mode, mode, 0, 0, xp.Time.CurrentTime).reply()
        if reply.status == xp.GrabStatus.Success:
            self.core.UngrabPointer(xp.Time.CurrentTime)
            self.flush()
            return None
        if reply.status != xp.GrabStatus.AlreadyGrabbed:
            return None
        top = shown[-1]
        assert top.surface is not None
        return top.surface, top.x, top.y

    def close_window(self, win: XWindow) -> None:
        if self.closed or not win.alive:
            return
        delete = self.atoms["WM_DELETE_WINDOW"]
        if delete in win.protocols:
            self._send_protocol(win, delete)
        else:
            self.core.KillClient(win.wid)
        self.flush()

    def _send_protocol(self, win: XWindow, atom: int) -> None:
        data = xp.ClientMessageData.synthetic([atom, xp.Time.CurrentTime, 0, 0, 0], "I" * 5)
        ev = xp.ClientMessageEvent.synthetic(32, win.wid, self.atoms["WM_PROTOCOLS"], data)
        self.core.SendEvent(False, win.wid, xp.EventMask.NoEvent, ev.pack())

    def focus_window(self, win: XWindow | None) -> None:
        """Give X's focus to ``win`` as ICCCM 4.1.7 says for its input model (None: no X window)."""
        if self.closed or (win is not None and (not win.alive or not win.x_mapped)):
            return
        core = self.core
        self.focused = win
        if win is None:
            core.SetInputFocus(xp.InputFocus.PointerRoot, 0, xp.Time.CurrentTime)
        else:
            if win.input_hint:  # passive or locally active: the WM sets the focus
                core.SetInputFocus(xp.InputFocus.PointerRoot, win.wid, xp.Time.CurrentTime)
            if self.atoms["WM_TAKE_FOCUS"] in win.protocols:  # locally or globally active: it is told
                self._send_protocol(win, self.atoms["WM_TAKE_FOCUS"])
        core.ChangeProperty(
            xp.PropMode.Replace,
            self.root,
            self.atoms["_NET_ACTIVE_WINDOW"],
            xp.Atom.WINDOW,
            32,
            1,
            [win.wid if win is not None else 0],
        )
        self.flush()

    def raise_window(self, win: XWindow) -> None:
        if self.closed or not win.alive:
            return
        self.core.ConfigureWindow(win.wid, xp.ConfigWindow.StackMode, [xp.StackMode.Above])
        self.flush()

    def restack(self, order: list[object]) -> None:
        """Make X's stacking of the managed windows the WM's (``order``: bottom to top, any toplevels),
        each just above the one below it: X programs read it (XQueryTree, pointer grabs, drag and
        drop). Windows the WM does not show and override-redirect ones keep their places."""
        if self.closed:
            return
        below: XWindow | None = None
        cw = xp.ConfigWindow
        for win in order:
            if not isinstance(win, XWindow) or not win.alive:
                continue
            if below is not None:
                self.core.ConfigureWindow(
                    win.wid, cw.Sibling | cw.StackMode, [below.wid, xp.StackMode.Above]
                )
            below = win
        self.flush()


_HANDLERS: dict[type, Any] = {
    xp.CreateNotifyEvent: Xwm._on_create,
    xp.DestroyNotifyEvent: Xwm._on_destroy,
    xp.MapRequestEvent: Xwm._on_map_request,
    xp.MapNotifyEvent: Xwm._on_map,
    xp.UnmapNotifyEvent: Xwm._on_unmap,
    xp.ConfigureRequestEvent: Xwm._on_configure_request,
    xp.ConfigureNotifyEvent: Xwm._on_configure_notify,
    xp.PropertyNotifyEvent: Xwm._on_property,
    xp.ClientMessageEvent: Xwm._on_client_message,
    xp.SelectionNotifyEvent: lambda xwm, ev: xwm.selections.converted(ev),
    xp.SelectionRequestEvent: lambda xwm, ev: xwm.selections.requested(ev),
    xcffib.xfixes.SelectionNotifyEvent: lambda xwm, ev: xwm.selections.owner_changed(ev),
}

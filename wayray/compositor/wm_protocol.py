"""The window-manager protocol (``wayray_wm_v1``, docs/wm-protocol.md): an external WM process.

``WmService`` serves the ``wayray_wm_manager_v1`` global. Only the connection the compositor made
for the process it started as the session's window manager (``WmProcess``, through WAYLAND_SOCKET)
sees and may bind it (``global_filter.restrict``); any other client that binds it by its name anyway
gets a protocol error. While a WM
is bound, ``FloatingWM`` keeps the scene (windows, stacking, focus) and passes the decisions to it
(``wm.WmDelegate``); the WM's requests change the scene, which the next frame shows whole.

The compositor never waits for the WM. It pings it every ``PING_INTERVAL`` seconds; a WM that does
not answer within ``HANG_TIMEOUT``, that disconnects or that crashes is dropped: the built-in
floating WM manages every window where it is (``FloatingWM.external_gone``), the log says so, and
``WmProcess`` starts the program again after a back-off; when it binds, it is told of every window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

from wayray.compositor.geometry import Rect
from wayray.compositor.globals import GLOBAL_VERSIONS
from wayray.compositor.window import Window
from wayray.compositor.wm import FloatingWM
from wayray.wayland.global_filter import restrict
from wayray.wayland.protocols.generated.wayray_wm_v1 import (
    WayrayWmBindingV1,
    WayrayWmManagerV1,
    WayrayWmWindowV1,
)
from wayray.wayland.server import Client, Display, Global, NewId, ProtocolError, Resource

log = logging.getLogger(__name__)

VERSION = GLOBAL_VERSIONS["wayray_wm_manager_v1"]
PING_INTERVAL = 2.0
HANG_TIMEOUT = 5.0
#: Seconds before the WM is started again after it ended; the next one after each quick failure.
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: A WM that ran this long before it ended is restarted after the first delay again.
STABLE_AFTER = 60.0

MOD_SHIFT, MOD_CTRL, MOD_ALT, MOD_SUPER = 1, 4, 8, 64
#: The largest window a WM may ask for, and how far off the output it may put one (layout pixels).
MAX_SIZE = 32768
MAX_OFFSET = 1 << 20


def _fold(keysym: int) -> int:
    """Latin capitals as their lower case (a binding of "a" also matches Shift+a's "A")."""
    return keysym + 0x20 if 0x41 <= keysym <= 0x5A else keysym


class WmService:
    """The ``wayray_wm_manager_v1`` global, the bound WM and the windows as it sees them."""

    def __init__(self, display: Display, loop: asyncio.AbstractEventLoop, wm: FloatingWM) -> None:
        self.display = display
        self.loop = loop
        self.wm = wm
        self.privileged: Client | None = None  # the connection made for the WM process
        self.privileged_pid = 0
        self.manager: ManagerResource | None = None
        self.on_hung: Callable[[], None] | None = None  # WmProcess: stop the hung process
        self._ping: tuple[int, float] | None = None  # the unanswered ping: serial, when sent
        self._timer: asyncio.TimerHandle | None = None
        self.takeovers = 0  # how many times a WM bound (for tests and the log)
        self.closing = False  # the compositor is closing: the WM's end is no news

    def register(self) -> None:
        # Hidden from every client but the WM's connection (docs/wm-protocol.md §1); one that binds
        # it by its name anyway gets libwayland's invalid-global protocol error.
        restrict(Global(self.display, WayrayWmManagerV1, VERSION, self.bind), self._visible_to)

    def _visible_to(self, client: Client) -> bool:
        return client is self.privileged

    @property
    def active(self) -> bool:
        return self.manager is not None

    # Binding --------------------------------------------------------------------------------------

    def bind(self, new_id: NewId) -> None:
        res = ManagerResource(new_id, self)
        client = new_id.client
        if client is not self.privileged:
            log.warning(
                "%r tried to bind wayray_wm_manager_v1 but is not the session's window manager: "
                "refused (only the program session.toml's window_manager names, started by the "
                "compositor, may manage windows)",
                client,
            )
            res.post_error(
                WayrayWmManagerV1.error.not_window_manager,
                "only the session's window manager (session.toml window_manager) may bind "
                "wayray_wm_manager_v1",
            )
            return
        if self.manager is not None:
            res.post_error(WayrayWmManagerV1.error.already_bound, "wayray_wm_manager_v1 is already bound")
            return
        self.manager = res
        self.wm.delegate = self
        self.takeovers += 1
        area = self.wm.usable_area()
        res.post("usable_area", area.x, area.y, area.width, area.height)
        for window in self.wm.windows:
            self.window_new(window)
            handle = _handle(window)
            if handle is not None:
                handle.send_properties(force_done=not window.mapped)
                if window.mapped:
                    handle.post("mapped")
                    handle.post("done")
        res.post("workspace", self.wm.workspace)
        log.info(
            "the session's window manager (pid %d) manages its %d windows",
            self.privileged_pid,
            len(self.wm.windows),
        )
        self._ping = None
        self._schedule_ping()

    def manager_gone(self, res: ManagerResource, reason: str) -> None:
        if res is not self.manager:
            return
        self.drop(reason)

    def drop(self, reason: str) -> None:
        """The WM is no more: the built-in floating WM takes every window over where it is."""
        if self.manager is None:
            return
        manager, self.manager = self.manager, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ping = None
        for window in self.wm.windows:
            handle = _handle(window)
            if handle is not None:
                handle.window = None
        self.wm.external_gone()
        if not self.closing:
            log.warning(
                "the session's window manager (pid %d) %s; the built-in floating window manager "
                "manages the session's %d windows until it is back",
                self.privileged_pid,
                reason,
                len(self.wm.windows),
            )
        for b in list(manager.bindings):
            b.manager = None
        manager.bindings.clear()

    # Liveness -------------------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._timer = self.loop.call_later(PING_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._timer = None
        manager = self.manager
        if manager is None:
            return
        now = time.monotonic()
        if self._ping is not None:
            if now - self._ping[1] > HANG_TIMEOUT:
                self.hung(now - self._ping[1])
                return
        else:
            serial = self.display.next_serial()
            self._ping = (serial, now)
            manager.post("ping", serial)
        self._schedule_ping()

    def pong(self, serial: int) -> None:
        if self._ping is not None and self._ping[0] == serial:
            self._ping = None

    def hung(self, silent_for: float) -> None:
        client = self.privileged
        self.drop(f"did not answer for {silent_for:.0f} s (hung)")
        if client is not None and client.alive:
            client.destroy()
        if self.on_hung is not None:
            self.on_hung()

    # Keyboard -------------------------------------------------------------------------------------

    def key_binding(self, keysym: int, modifiers: int) -> bool:
        """A key went down: True when the WM bound the chord (it was told, and the key is taken)."""
        manager = self.manager
        if manager is None:
            return False
        sym = _fold(keysym)
        for b in manager.bindings:
            if b.keysym == sym and b.modifiers == modifiers:
                b.post("pressed")
                return True
        return False

    # WmDelegate: what the built-in WM tells the external one --------------------------------------

    def window_new(self, window: Window) -> None:
        manager = self.manager
        if manager is None:
            return
        handle = WindowResource(NewId.server_allocated(manager.client, manager.version), self, window)
        window.wm_handle = handle
        manager.post("window", handle)

    def window_changed(self, window: Window) -> None:
        handle = _handle(window)
        if handle is not None:
            handle.send_properties()

    def window_mapped(self, window: Window, mapped: bool) -> None:
        handle = _handle(window)
        if handle is not None:
            handle.send_properties(force_done=False)
            handle.post("mapped" if mapped else "unmapped")
            handle.post("done")

    def window_gone(self, window: Window) -> None:
        handle = _handle(window)
        if handle is not None:
            handle.window = None
            handle.post("closed")
        window.wm_handle = None

    def window_request(self, window: Window, request: str, *args: int) -> None:
        handle = _handle(window)
        if handle is not None:  # an event newer than the WM bound is skipped (Resource.post)
            handle.post(request, *args)

    def usable_area_changed(self, area: Rect) -> None:
        if self.manager is not None:
            self.manager.post("usable_area", area.x, area.y, area.width, area.height)


def _handle(window: Window) -> WindowResource | None:
    h = window.wm_handle
    return h if isinstance(h, WindowResource) and h.alive else None


class ManagerResource(Resource):
    interface = WayrayWmManagerV1

    def __init__(self, new_id: NewId, service: WmService) -> None:
        super().__init__(new_id)
        self.service = service
        self.bindings: list[BindingResource] = []

    def destroy(self) -> None:
        self.service.manager_gone(self, "gave up managing windows")

    def pong(self, serial: int) -> None:
        self.service.pong(serial)

    def bind_key(self, id: NewId, keysym: int, modifiers: int) -> None:
        binding = BindingResource(id, self, _fold(keysym), modifiers)
        if self.service.manager is not self:
            binding.manager = None  # not the active manager (an error is on its way): inert
            return
        if keysym == 0:
            raise ProtocolError(
                self, WayrayWmManagerV1.error.invalid_binding, "a key binding needs a keysym"
            )
        if any(b.keysym == binding.keysym and b.modifiers == modifiers for b in self.bindings):
            raise ProtocolError(
                self,
                WayrayWmManagerV1.error.invalid_binding,
                f"keysym 0x{keysym:x} with modifiers 0x{modifiers:x} is already bound",
            )
        self.bindings.append(binding)

    def show_workspace(self, workspace: int) -> None:
        if self.service.manager is not self:
            return
        self.service.wm.show_workspace(workspace)
        self.post("workspace", workspace)

    def on_destroy(self) -> None:
        self.service.manager_gone(self, "closed its connection" if not self.client.alive else "went away")


class BindingResource(Resource):
    interface = WayrayWmBindingV1

    def __init__(self, new_id: NewId, manager: ManagerResource, keysym: int, modifiers: int) -> None:
        super().__init__(new_id)
        self.manager: ManagerResource | None = manager
        self.keysym = keysym
        self.modifiers = modifiers

    def destroy(self) -> None:
        pass

    def on_destroy(self) -> None:
        if self.manager is not None and self in self.manager.bindings:
            self.manager.bindings.remove(self)
        self.manager = None


class WindowResource(Resource):
    """One toplevel for the WM; ``window`` is None once the toplevel is gone or the WM was dropped."""

    interface = WayrayWmWindowV1

    def __init__(self, new_id: NewId, service: WmService, window: Window) -> None:
        super().__init__(new_id)
        self.service = service
        self.window: Window | None = window
        self._sent: dict[str, object] = {}

    def _live(self) -> Window | None:
        w = self.window
        if w is None or not w.toplevel.alive or self.service.manager is None:
            return None
        return w

    def send_properties(self, *, force_done: bool = False) -> None:
        """Send what changed since the last batch (then done); nothing when nothing did."""
        w = self.window
        if w is None:
            return
        t = w.toplevel
        parent_toplevel = t.parent
        parent = None
        if parent_toplevel is not None:
            pw = next((x for x in self.service.wm.windows if x.toplevel is parent_toplevel), None)
            parent = _handle(pw) if pw is not None else None
        g = w.geometry
        now: dict[str, tuple[object, ...]] = {
            "app_id": (t.app_id or "",),
            "title": (t.title or "",),
            "pid": (max(0, t.pid or 0),),
            "parent": (parent,),
            "size_hints": (*t.min_size, *t.max_size),
            "title_bar": (w.title_height,),
            "position": (w.x, w.y),
            "size": (g.width, g.height),
        }
        changed = False
        for name, args in now.items():
            if name == "size" and not w.mapped:
                continue
            if self._sent.get(name) != args:
                self._sent[name] = args
                self.post(name, *args)
                changed = True
        if changed or force_done:
            self.post("done")

    # Requests ---------------------------------------------------------------------------------------

    def destroy(self) -> None:
        pass

    def set_geometry(self, x: int, y: int, width: int, height: int) -> None:
        if not (0 <= width <= MAX_SIZE and 0 <= height <= MAX_SIZE) or max(abs(x), abs(y)) > MAX_OFFSET:
            raise ProtocolError(
                self,
                WayrayWmManagerV1.error.invalid_geometry,
                f"geometry {width}x{height}+{x}+{y}: sizes go from 0 to {MAX_SIZE}, "
                f"positions to ±{MAX_OFFSET}",
            )
        w = self._live()
        if w is None:
            return
        w.x, w.y = x, y
        if not w.mapped:
            w.wm_placed = True
        elif not (w.maximized or w.fullscreen):
            # The WM's place wins over the one a maximize or fullscreen that just ended would
            # restore when the application draws its unmaximized size (a snap of a maximized window).
            w.restore = None
        size = (width, height) if width and height else None
        if w.maximized or w.fullscreen:
            pass  # those states decide the size; the geometry counts when they end
        elif w.initial_done or w.mapped:
            if size is not None:
                w.configure(size)
        else:
            w.wm_size = size
        self.service.wm.host.scene_changed()

    def begin_move(self) -> None:
        w = self._live()
        if w is not None:
            self.service.wm.external_move(w)

    def begin_resize(self, edges: int) -> None:
        w = self._live()
        if w is not None:
            self.service.wm.external_resize(w, edges & 15)

    def set_maximized(self, maximized: int) -> None:
        w = self._live()
        if w is not None:
            self.service.wm._maximize(w, bool(maximized))
            self.service.wm.host.scene_changed()

    def set_fullscreen(self, fullscreen: int) -> None:
        w = self._live()
        if w is not None:
            self.service.wm._fullscreen(w, bool(fullscreen))

    def focus(self) -> None:
        w = self._live()
        if w is not None:
            self.service.wm.focus(w, raise_=False)

    def raise_to_top(self) -> None:
        w = self._live()
        if w is not None:
            self.service.wm.raise_(w)

    def lower_to_bottom(self) -> None:
        w = self._live()
        if w is not None:
            self.service.wm.lower(w)

    def set_visible(self, visible: int) -> None:
        w = self._live()
        if w is not None:
            w.hidden = not visible
            self.service.wm.update_shown(w)

    def set_workspace(self, workspace: int) -> None:
        w = self._live()
        if w is not None:
            w.workspace = workspace
            self.service.wm.update_shown(w)

    def close(self) -> None:
        w = self._live()
        if w is not None:
            w.close()

    def on_destroy(self) -> None:
        w = self.window
        if w is not None and w.wm_handle is self:
            w.wm_handle = None
        self.window = None


class WmProcess:
    """The session's window manager program: started with its own Wayland connection (the one
    ``WmService`` lets bind), watched, and started again when it ends."""

    def __init__(
        self,
        service: WmService,
        argv: tuple[str, ...],
        env: Callable[[], dict[str, str]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.service = service
        self.argv = argv
        self.env = env
        self.loop = loop
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        service.on_hung = self._kill

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0])

    def start(self) -> None:
        self._task = self.loop.create_task(self._run(), name="window-manager")

    async def _run(self) -> None:
        while not self._closing:
            started = time.monotonic()
            proc = await self._spawn()
            if proc is None:
                return
            status = await proc.wait()
            self.proc = None
            if self._closing:
                return
            client = self.service.privileged
            self.service.privileged = None
            how = f"exited with status {status}" if status >= 0 else f"was killed by signal {-status}"
            self.service.drop(how)
            if client is not None and client.alive:
                client.destroy()
            if time.monotonic() - started >= STABLE_AFTER:
                self._failures = 0
            delay = RESTART_DELAYS[min(self._failures, len(RESTART_DELAYS) - 1)]
            self._failures += 1
            log.warning(
                "window manager %s (pid %d) %s; starting it again in %g s", self.name, proc.pid, how, delay
            )
            await asyncio.sleep(delay)

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            env = self.env()
            env["WAYLAND_SOCKET"] = str(theirs.fileno())
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv, env=env, pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL
                )
            except OSError as err:
                ours.close()
                log.error(
                    "cannot start the window manager %r: %s; the built-in floating window manager "
                    "manages the session (check session.toml's window_manager: wradm check)",
                    self.argv[0],
                    err.strerror or err,
                )
                return None
        finally:
            theirs.close()
        client = self.service.display.create_client(ours.detach())
        self.service.privileged = client
        self.service.privileged_pid = proc.pid
        self.proc = proc
        self.starts += 1
        log.info("window manager %s started (pid %d)", " ".join(self.argv), proc.pid)
        return proc

    def _kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            log.warning("stopping the hung window manager %s (pid %d)", self.name, self.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        self._closing = True
        self.service.closing = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

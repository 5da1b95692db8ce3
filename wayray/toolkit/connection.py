"""A Wayland client connection on asyncio: globals with version negotiation, dispatch, flush, lifetimes.

pywayland gives the protocol objects; this module adds what it leaves to the application:

* **The event loop.** The display fd is watched with ``loop.add_reader``. When it is readable we
  ``prepare_read`` (dispatching whatever is already queued), ``read_events`` (non-blocking: libwayland
  reads with ``MSG_DONTWAIT``), dispatch, and flush. Requests made outside an event handler are sent
  by a flush scheduled once per loop turn (:meth:`WaylandConnection.flush`); a full socket buffer waits for
  the fd to be writable instead of spinning.
* **Errors.** pywayland prints and swallows exceptions raised in event handlers. Handlers installed
  with :meth:`WaylandConnection.listen` are guarded: the first exception ends the connection and is raised
  again from :meth:`WaylandConnection.wait_closed`, so a bug never leaves a half-working client.
* **Lifetimes.** A pywayland proxy freed after its display is disconnected crashes the process
  (``wl_proxy_destroy`` on freed memory), and a proxy freed too early loses its events. So the
  connection keeps a strong reference to every object it hands out (:meth:`track`), toolkit objects
  destroy their proxies in protocol order in ``destroy()``, and :meth:`close` destroys what is left,
  then disconnects. An open connection is never garbage-collected (the loop's reader holds it);
  one nobody closed is closed at interpreter exit, before the proxies are torn down.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pywayland import ffi, lib
from pywayland.client import Display

from wayray.common.errors import WayRayError

log = logging.getLogger(__name__)

T = TypeVar("T")
D = TypeVar("D", bound="Destroyable")


class WaylandError(WayRayError):
    """The compositor cannot be reached, lacks something we need, or ended the connection."""


class Destroyable(Protocol):
    def destroy(self) -> None: ...


@dataclass(frozen=True, slots=True)
class GlobalInfo:
    """A global the compositor advertises: its registry name, interface name and highest version."""

    name: int
    interface: str
    version: int


class WaylandConnection:
    """One connection to a Wayland compositor, serviced by the running asyncio loop."""

    def __init__(self, display: Display, loop: asyncio.AbstractEventLoop) -> None:
        self.display = display
        self.loop = loop
        self.globals: dict[int, GlobalInfo] = {}
        self.on_global: list[Callable[[GlobalInfo], None]] = []
        self.on_global_remove: list[Callable[[GlobalInfo], None]] = []
        self._tracked: dict[int, Any] = {}  # id(proxy) -> proxy: kept alive while in use
        self._owned: list[Destroyable] = []  # toolkit objects destroyed (in reverse) by close()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._flush_scheduled = False
        self._writer_installed = False
        self._fd = display.get_fd()
        self._dispatching = False
        self.registry = self.track(display.get_registry())
        handlers: dict[str, Callable[..., Any]] = {"global": self._global_added}
        self.listen(self.registry, global_remove=self._global_removed, **handlers)
        loop.add_reader(self._fd, self._on_readable)
        ref = weakref.ref(self)

        def close_at_exit() -> None:
            conn = ref()
            if conn is not None:
                conn.close()

        self._atexit = close_at_exit
        atexit.register(close_at_exit)

    # Life -----------------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, name: str | None = None) -> WaylandConnection:
        """Connect to ``name`` (default ``$WAYLAND_DISPLAY``) and learn the compositor's globals."""
        display = Display(name)
        try:
            display.connect()
        except ValueError:
            target = name or os.environ.get("WAYLAND_DISPLAY") or "wayland-0"
            raise WaylandError(
                f"cannot connect to the Wayland compositor {target!r}",
                hint="run inside a Wayland session: WAYLAND_DISPLAY and XDG_RUNTIME_DIR name its socket "
                f"(XDG_RUNTIME_DIR={os.environ.get('XDG_RUNTIME_DIR', '(unset)')})",
            ) from None
        conn = cls(display, asyncio.get_running_loop())
        await conn.roundtrip()
        return conn

    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def wait_closed(self) -> None:
        """Wait until the connection ends; raises what ended it (a lost compositor, a handler's bug)."""
        await asyncio.shield(self._closed)

    def own(self, obj: D) -> D:
        """Destroy ``obj`` (a toolkit object with ``destroy()``) when the connection closes."""
        self._owned.append(obj)
        return obj

    def disown(self, obj: object) -> None:
        if obj in self._owned:
            self._owned.remove(obj)

    def close(self, error: BaseException | None = None) -> None:
        """Destroy everything, disconnect, and end :meth:`wait_closed` (with ``error`` if given)."""
        if self._closed.done():
            return
        if self._dispatching:
            # Called from an event handler: libwayland is inside wl_display_dispatch, so the display
            # must outlive this turn. Close right after it.
            self.loop.call_soon(self.close, error)
            return
        atexit.unregister(self._atexit)
        self._remove_io()
        if self.display._ptr is not None:
            for obj in reversed(self._owned):
                try:
                    obj.destroy()
                except Exception:  # keep tearing down: the socket goes next anyway
                    log.exception("destroying %r", obj)
            self._owned.clear()
            self.display.flush()
            # Display.disconnect destroys every proxy still alive, then the display itself: after this
            # no proxy can reach freed memory, whenever Python collects it.
            self.display.disconnect()
        self._tracked.clear()
        if error is None:
            self._closed.set_result(None)
        else:
            self._closed.set_exception(error)
            self._closed.exception()  # mark retrieved: wait_closed() callers see it; no "never retrieved"

    def _remove_io(self) -> None:
        try:
            self.loop.remove_reader(self._fd)
            if self._writer_installed:
                self.loop.remove_writer(self._fd)
                self._writer_installed = False
        except (ValueError, RuntimeError):  # loop already closed
            pass

    def _lost(self, what: str) -> None:
        code = lib.wl_display_get_error(self.display._ptr) if self.display._ptr is not None else 0
        detail = os.strerror(code) if code else "connection closed"
        if code == errno.EPROTO:
            detail = "protocol error (libwayland printed which on stderr)"
        self.close(WaylandError(f"the Wayland connection ended while {what}: {detail}"))

    # Objects --------------------------------------------------------------------------------------

    def track(self, proxy: T) -> T:
        """Keep ``proxy`` alive until :meth:`untrack` (or the connection closes)."""
        self._tracked[id(proxy)] = proxy
        return proxy

    def untrack(self, proxy: object) -> None:
        self._tracked.pop(id(proxy), None)

    def destroy(self, proxy: Any, request: str | None = "destroy") -> None:
        """Destroy ``proxy``: send its destructor ``request`` (None: a client-side destroy only)."""
        if proxy is None or proxy.destroyed:
            self.untrack(proxy)
            return
        if not self.closed:
            if request is not None and hasattr(proxy, request):
                getattr(proxy, request)()
            else:
                proxy._destroy()
            self.flush()
        self.untrack(proxy)

    def listen(self, proxy: Any, **handlers: Callable[..., Any]) -> None:
        """Install event handlers on ``proxy`` (called without the proxy argument), guarded."""
        for event, fn in handlers.items():
            proxy.dispatcher[event] = self._guard(fn, event)

    def _guard(self, fn: Callable[..., Any], event: str) -> Callable[..., None]:
        def handler(_proxy: Any, *args: Any) -> None:
            if self._closed.done():
                return
            try:
                fn(*args)
            except Exception as err:
                log.error("error handling the Wayland event %s", event, exc_info=True)
                self._pending_error = err

        return handler

    _pending_error: BaseException | None = None

    def globals_named(self, interface: str) -> list[GlobalInfo]:
        return [g for g in self.globals.values() if g.interface == interface]

    def has(self, interface: Any) -> bool:
        return bool(self.globals_named(interface.name))

    def bind(
        self, interface: Any, min_version: int, max_version: int, info: GlobalInfo | None = None
    ) -> Any:
        """Bind ``interface`` at the highest version both sides know (≥ ``min_version``).

        ``info`` picks one of several globals (outputs, seats); default: the first. Raises
        :class:`WaylandError` when the compositor lacks it or offers too old a version.
        """
        if info is None:
            found = self.globals_named(interface.name)
            if not found:
                raise WaylandError(
                    f"the Wayland compositor does not offer {interface.name}",
                    hint="use a compositor that supports it (wlroots-based ones, GNOME, KDE and weston do)",
                )
            info = found[0]
        if info.version < min_version:
            raise WaylandError(
                f"the Wayland compositor offers {interface.name} version {info.version}; "
                f"at least {min_version} is needed"
            )
        version = min(info.version, max_version, interface.version)
        proxy = self.registry.bind(info.name, interface, version)
        proxy.user_data = version  # the bound version, for requests added in later versions
        self.flush()
        return self.track(proxy)

    def _global_added(self, name: int, interface: str, version: int) -> None:
        info = GlobalInfo(name, interface, version)
        self.globals[name] = info
        for cb in list(self.on_global):
            cb(info)

    def _global_removed(self, name: int) -> None:
        info = self.globals.pop(name, None)
        if info is not None:
            for cb in list(self.on_global_remove):
                cb(info)

    # I/O ------------------------------------------------------------------------------------------

    async def roundtrip(self) -> None:
        """Wait until the compositor has handled every request sent so far (wl_display.sync)."""
        done: asyncio.Future[None] = self.loop.create_future()
        callback = self.track(self.display.sync())

        def finished(_data: int) -> None:
            self.destroy(callback, None)
            if not done.done():
                done.set_result(None)

        self.listen(callback, done=finished)
        self.flush()
        waiter = asyncio.ensure_future(asyncio.shield(self._closed))
        try:
            await asyncio.wait({done, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not done.done():
            done.cancel()
            await self.wait_closed()  # raises what ended the connection
            raise WaylandError("the Wayland connection was closed")

    def frame_callback(self, surface: Any, fn: Callable[[int], None]) -> Any:
        """``wl_surface.frame`` with ``fn(time_ms)`` called once; the callback proxy is handled here."""
        callback = self.track(surface.frame())

        def done(time: int) -> None:
            self.destroy(callback, None)
            fn(time)

        self.listen(callback, done=done)
        return callback

    def flush(self) -> None:
        """Send buffered requests at the end of this loop turn (coalesced)."""
        if not self._flush_scheduled and not self._closed.done():
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        if self._closed.done() or self._writer_installed:
            return
        if self.display.flush() < 0:
            err = ffi.errno  # type: ignore[attr-defined]
            if err == errno.EAGAIN:
                self._writer_installed = True
                self.loop.add_writer(self._fd, self._on_writable)
            else:
                self._lost("sending requests")

    def _on_writable(self) -> None:
        self.loop.remove_writer(self._fd)
        self._writer_installed = False
        self._flush_now()

    def _on_readable(self) -> None:
        if self._closed.done() or self._dispatching:
            return
        self._dispatching = True
        try:
            self.display.read()
            self.display.dispatch(block=False)
        except RuntimeError:
            self._dispatching = False
            self._lost("reading events")
            return
        finally:
            self._dispatching = False
        self.dispatch_pending()

    def dispatch_pending(self) -> None:
        """Dispatch queued events, then flush; raise a handler's error by closing the connection."""
        if self._closed.done():
            return
        self._dispatching = True
        try:
            self.display.dispatch(block=False)
        except RuntimeError:
            self._dispatching = False
            self._lost("dispatching events")
            return
        finally:
            self._dispatching = False
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            self.close(error)
            return
        self._flush_now()

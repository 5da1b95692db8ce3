"""The libwayland-server layer, driven by pywayland *client* objects in a worker thread.

The server runs on the test's asyncio loop (libwayland's epoll fd via add_reader); the client code
runs in ``asyncio.to_thread`` so its blocking roundtrips leave the loop free to serve them.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pywayland import lib as pw_lib
from pywayland.client import Display as ClientDisplay
from pywayland.protocol.viewporter import WpViewport, WpViewporter
from pywayland.protocol.wayland import (
    WlCompositor,
    WlDataDevice,
    WlDataDeviceManager,
    WlDataOffer,
    WlDataSource,
    WlKeyboard,
    WlSeat,
    WlShm,
    WlSurface,
)

from wayray.wayland.libwayland import loaded_libwayland_server
from wayray.wayland.server import Display, ForeignResource, Global, NewId, ProtocolError, Resource, _Listener
from wayray.wayland.shm import ShmBuffer, ShmFormat


class Log:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.destroyed: list[str] = []


class Surface(Resource):
    interface = WlSurface

    def __init__(self, new_id: NewId, log: Log) -> None:
        super().__init__(new_id)
        self.log = log
        self.pixels: list[int] = []

    def destroy(self) -> None:
        self.log.calls.append(("surface.destroy",))

    def attach(self, buffer: ForeignResource | None, x: int, y: int) -> None:
        self.log.calls.append(("attach", type(buffer).__name__, x, y))
        if buffer is not None:
            shm = ShmBuffer.of(buffer)
            assert shm is not None
            with shm.access() as data:
                self.log.calls.append(
                    ("shm", shm.width, shm.height, shm.stride, shm.format, data[1, 4:8].tobytes())
                )

    def damage(self, x: int, y: int, w: int, h: int) -> None:
        if w < 0:
            raise ProtocolError(self, WlSurface.error.invalid_size, "negative damage")
        if w == 0xBAD:
            raise RuntimeError("a bug in the compositor")
        self.log.calls.append(("damage", x, y, w, h))

    def frame(self, callback: NewId) -> None: ...
    def set_opaque_region(self, region: Any) -> None: ...
    def set_input_region(self, region: Any) -> None: ...
    def commit(self) -> None: ...
    def set_buffer_transform(self, transform: int) -> None: ...
    def set_buffer_scale(self, scale: int) -> None: ...
    def damage_buffer(self, x: int, y: int, w: int, h: int) -> None: ...
    def offset(self, x: int, y: int) -> None: ...
    def get_release(self, callback: NewId) -> None: ...

    def on_destroy(self) -> None:
        self.log.destroyed.append("surface")


class Compositor(Resource):
    interface = WlCompositor

    def __init__(self, new_id: NewId, log: Log) -> None:
        super().__init__(new_id)
        self.log = log
        log.calls.append(("bound wl_compositor", new_id.version))

    def create_surface(self, id: NewId) -> None:
        Surface(id, self.log)

    def create_region(self, id: NewId) -> None: ...
    def release(self) -> None: ...


class Viewporter(Resource):
    interface = WpViewporter

    def __init__(self, new_id: NewId, log: Log) -> None:
        super().__init__(new_id)
        self.log = log

    def destroy(self) -> None: ...

    def get_viewport(self, id: NewId, surface: Surface) -> None:
        vp = Viewport(id)
        vp.log = self.log
        self.log.calls.append(("get_viewport", type(surface).__name__))


class Viewport(Resource):
    interface = WpViewport
    log: Log

    def destroy(self) -> None: ...

    def set_source(self, x: float, y: float, w: float, h: float) -> None:
        self.log.calls.append(("set_source", x, y, w, h))

    def set_destination(self, w: int, h: int) -> None: ...


class Source(Resource):
    interface = WlDataSource

    def __init__(self, new_id: NewId, log: Log) -> None:
        super().__init__(new_id)
        self.log = log

    def offer(self, mime_type: str) -> None:
        self.log.calls.append(("offer", mime_type))

    def destroy(self) -> None: ...
    def set_actions(self, dnd_actions: int) -> None: ...


class Offer(Resource):
    interface = WlDataOffer

    def accept(self, serial: int, mime_type: str | None) -> None: ...

    def receive(self, mime_type: str, fd: int) -> None:
        os.write(fd, f"data for {mime_type}".encode())  # the dispatcher closes fd afterwards

    def destroy(self) -> None: ...
    def finish(self) -> None: ...
    def set_actions(self, dnd_actions: int, preferred_action: int) -> None: ...


class Device(Resource):
    interface = WlDataDevice

    def start_drag(self, source: Any, origin: Any, icon: Any, serial: int) -> None: ...
    def set_selection(self, source: Any, serial: int) -> None: ...
    def release(self) -> None: ...


class Manager(Resource):
    interface = WlDataDeviceManager

    def __init__(self, new_id: NewId, log: Log) -> None:
        super().__init__(new_id)
        self.log = log

    def create_data_source(self, id: NewId) -> None:
        Source(id, self.log)

    def get_data_device(self, id: NewId, seat: Any) -> None:
        device = Device(id)
        offer = Offer(NewId.server_allocated(device.client, device.version))
        device.post("data_offer", offer)  # a server-created object announced in an event
        offer.post("offer", "text/plain")
        device.post("selection", offer)

    def release(self) -> None: ...


class Keyboard(Resource):
    interface = WlKeyboard

    def release(self) -> None: ...


class Seat(Resource):
    interface = WlSeat

    def get_pointer(self, id: NewId) -> None: ...

    def get_keyboard(self, id: NewId) -> None:
        kb = Keyboard(id)
        kb.post("repeat_info", 25, 600)
        surface = next(
            r for r in self.display.objects() if isinstance(r, Surface) and r.client is self.client
        )
        kb.post("enter", 7, surface, b"\x1e\x00\x00\x00\x30\x00\x00\x00")

    def get_touch(self, id: NewId) -> None: ...
    def release(self) -> None: ...


def make_server(runtime: Path, log: Log) -> tuple[Display, str]:
    display = Display()
    name = display.add_socket(runtime)
    display.init_shm()
    Global(display, WlCompositor, 5, lambda n: Compositor(n, log))
    Global(display, WpViewporter, 1, lambda n: Viewporter(n, log))
    Global(display, WlDataDeviceManager, 3, lambda n: Manager(n, log))
    Global(display, WlSeat, 5, Seat)
    display.attach(asyncio.get_running_loop())
    return display, name


class Client:
    """A pywayland client (used only from the worker thread)."""

    def __init__(self, runtime: Path, name: str, versions: dict[str, int] | None = None) -> None:
        self.display = ClientDisplay(str(runtime / name))
        self.display.connect()
        self.advertised: dict[str, int] = {}
        self.bound: dict[str, Any] = {}
        want = {
            "wl_compositor": WlCompositor,
            "wp_viewporter": WpViewporter,
            "wl_shm": WlShm,
            "wl_data_device_manager": WlDataDeviceManager,
            "wl_seat": WlSeat,
        }
        versions = versions or {}

        def on_global(reg: Any, gname: int, interface: str, version: int) -> None:
            self.advertised[interface] = version
            if interface in want:
                self.bound[interface] = reg.bind(gname, want[interface], versions.get(interface, 1))

        # Kept: pywayland's client finds the display for new objects in events through the registry.
        self.registry = self.display.get_registry()
        self.registry.dispatcher["global"] = on_global
        self.display.roundtrip()

    def roundtrip(self) -> int:
        return int(self.display.roundtrip())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        # pywayland frees proxies from the GC: disconnect explicitly so they go before the display,
        # then break the registry's cycle so no stale registry lingers (pywayland's client finds
        # "the" display for new objects in events through any registry it still knows).
        self.display.disconnect()
        self.registry.dispatcher["global"] = None
        self.bound.clear()
        gc.collect()

    def error(self) -> int:
        return int(pw_lib.wl_display_get_error(self.display._ptr))


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


@pytest.fixture
def runtime(runtime_dir: Path) -> Path:
    return runtime_dir


async def test_only_one_libwayland_server_is_mapped() -> None:
    path = loaded_libwayland_server()
    maps = Path("/proc/self/maps").read_text()
    mapped = {line.split()[-1] for line in maps.splitlines() if "libwayland-server" in line}
    assert mapped == {str(path)}


async def test_globals_advertise_versions_and_binds_negotiate_down(runtime: Path) -> None:
    log = Log()
    display, name = make_server(runtime, log)
    try:

        def client_side() -> dict[str, int]:
            with Client(runtime, name, {"wl_compositor": 3}) as c:
                c.roundtrip()
                return c.advertised

        advertised = await in_thread(client_side)
        assert advertised["wl_compositor"] == 5
        assert advertised["wl_shm"] >= 1
        assert ("bound wl_compositor", 3) in log.calls
    finally:
        display.destroy()


async def test_requests_decode_new_id_object_fd_string_fixed_and_foreign_buffers(runtime: Path) -> None:
    log = Log()
    display, name = make_server(runtime, log)
    try:

        def client_side() -> tuple[bytes, list[str]]:
            with Client(runtime, name) as c:
                surface = c.bound["wl_compositor"].create_surface()
                vp = c.bound["wp_viewporter"].get_viewport(surface)
                vp.set_source(1.5, 2.25, 10.0, 20.5)
                src = c.bound["wl_data_device_manager"].create_data_source()
                src.offer("text/plain;charset=utf-8")
                # A wl_shm buffer: libwayland implements it, so it reaches us as a ForeignResource.
                w, h, stride = 4, 2, 16
                fd = os.memfd_create("t")
                os.ftruncate(fd, stride * h)
                with mmap.mmap(fd, stride * h) as mm:
                    mm[:] = bytes(range(32))
                pool = c.bound["wl_shm"].create_pool(fd, stride * h)
                buf = pool.create_buffer(0, w, h, stride, WlShm.format.xrgb8888.value)
                os.close(fd)
                surface.attach(buf, 0, 0)
                surface.attach(None, 0, 0)
                # An offer the server creates and announces in an event; receive() carries an fd.
                offers: list[Any] = []
                mimes: list[str] = []
                device = c.bound["wl_data_device_manager"].get_data_device(c.bound["wl_seat"])

                def on_offer(dev: Any, offer: Any) -> None:
                    offer.dispatcher["offer"] = lambda o, mime: mimes.append(mime)
                    offers.append(offer)

                device.dispatcher["data_offer"] = on_offer
                c.roundtrip()
                r, wfd = os.pipe()
                offers[0].receive("text/plain", wfd)
                os.close(wfd)
                c.roundtrip()
                data = os.read(r, 100)
                os.close(r)
                for offer in offers:
                    offer.destroy()  # while its display lives (see Client.__exit__)
                return data, mimes

        data, mimes = await in_thread(client_side)
    finally:
        display.destroy()
    assert data == b"data for text/plain"
    assert mimes == ["text/plain"]
    assert ("get_viewport", "Surface") in log.calls
    assert ("set_source", 1.5, 2.25, 10.0, 20.5) in log.calls
    assert ("offer", "text/plain;charset=utf-8") in log.calls
    assert ("attach", "ForeignResource", 0, 0) in log.calls
    assert ("attach", "NoneType", 0, 0) in log.calls
    shm = [c for c in log.calls if c[0] == "shm"]
    assert shm == [("shm", 4, 2, 16, ShmFormat.XRGB8888, bytes(range(20, 24)))]


async def test_events_carry_objects_and_arrays(runtime: Path) -> None:
    log = Log()
    display, name = make_server(runtime, log)
    try:

        def client_side() -> list[Any]:
            with Client(runtime, name, {"wl_seat": 5}) as c:
                got: list[Any] = []
                _surface = c.bound["wl_compositor"].create_surface()
                kb = c.bound["wl_seat"].get_keyboard()
                kb.dispatcher["repeat_info"] = lambda k, rate, delay: got.append(("repeat", rate, delay))
                kb.dispatcher["enter"] = lambda k, serial, s, keys: got.append(
                    ("enter", serial, s.interface.name, keys)
                )
                c.roundtrip()
                return got

        got = await in_thread(client_side)
    finally:
        display.destroy()
    assert got[0] == ("repeat", 25, 600)
    assert got[1][:2] == ("enter", 7)
    assert got[1][2] == "wl_surface"
    assert bytes(got[1][3]) == b"\x1e\x00\x00\x00\x30\x00\x00\x00"


async def test_protocol_errors_disconnect_only_that_client(runtime: Path) -> None:
    log = Log()
    display, name = make_server(runtime, log)
    try:

        def bad() -> tuple[int, int]:
            with Client(runtime, name) as c:
                c.bound["wl_compositor"].create_surface().damage(0, 0, -1, 1)
                return c.roundtrip(), c.error()

        def buggy() -> tuple[int, int]:
            with Client(runtime, name) as c:
                c.bound["wl_compositor"].create_surface().damage(0, 0, 0xBAD, 1)
                return c.roundtrip(), c.error()

        def good() -> int:
            with Client(runtime, name) as c:
                c.bound["wl_compositor"].create_surface().damage(1, 2, 3, 4)
                return c.roundtrip()

        assert await in_thread(bad) == (-1, errno.EPROTO)
        assert await in_thread(buggy) == (-1, errno.EPROTO)  # a compositor bug: implementation error
        assert await in_thread(good) >= 0
        assert ("damage", 1, 2, 3, 4) in log.calls
    finally:
        display.destroy()


async def test_lifetimes_destructors_and_disconnects_leave_nothing_behind(runtime: Path) -> None:
    log = Log()
    display, name = make_server(runtime, log)
    listeners_before = len(_Listener._live)
    try:

        def client_side() -> None:
            with Client(runtime, name) as c:
                for _ in range(50):
                    s = c.bound["wl_compositor"].create_surface()
                    s.destroy()
                c.roundtrip()
                for _ in range(20):
                    c.bound["wl_compositor"].create_surface()
                c.roundtrip()

        await in_thread(client_side)
        for _ in range(100):
            if not display.clients:
                break
            await asyncio.sleep(0.02)
        assert display.clients == []
        assert display.objects() == []
        assert log.destroyed.count("surface") == 70
        assert log.calls.count(("surface.destroy",)) == 50
        assert len(_Listener._live) == listeners_before
    finally:
        display.destroy()


class CountingCompositor(Compositor):
    """A subclass overriding one request of a Resource that already has its interface."""

    def create_region(self, id: NewId) -> None:
        self.log.calls.append(("create_region",))


async def test_a_subclass_override_of_a_request_is_the_handler(runtime: Path) -> None:
    log = Log()
    display = Display()
    name = display.add_socket(runtime)
    Global(display, WlCompositor, 5, lambda n: CountingCompositor(n, log))
    display.attach(asyncio.get_running_loop())
    try:

        def client_side() -> int:
            with Client(runtime, name) as c:
                c.bound["wl_compositor"].create_region()
                return c.roundtrip()

        assert await in_thread(client_side) >= 0
    finally:
        display.destroy()
    assert ("create_region",) in log.calls


class ForgetfulSeat(Seat):
    """A compositor bug on purpose: an event naming a surface the server has just destroyed."""

    def get_keyboard(self, id: NewId) -> None:
        kb = Keyboard(id)
        surface = next(
            r for r in self.display.objects() if isinstance(r, Surface) and r.client is self.client
        )
        surface.destroy_resource()
        kb.post("enter", 7, surface, b"")  # libwayland would read the freed wl_resource
        kb.post("repeat_info", 25, 600)


async def test_an_event_naming_a_destroyed_object_is_not_sent(runtime: Path) -> None:
    display = Display()
    name = display.add_socket(runtime)
    Global(display, WlCompositor, 5, lambda n: Compositor(n, Log()))
    Global(display, WlSeat, 5, ForgetfulSeat)
    display.attach(asyncio.get_running_loop())
    try:

        def client_side() -> list[str]:
            with Client(runtime, name, {"wl_seat": 5}) as c:
                got: list[str] = []
                surface = c.bound["wl_compositor"].create_surface()  # kept: events may name it
                kb = c.bound["wl_seat"].get_keyboard()
                kb.dispatcher["repeat_info"] = lambda *_a: got.append("repeat_info")
                kb.dispatcher["enter"] = lambda *_a: got.append("enter")
                c.roundtrip()
                del surface
                return got

        got = await in_thread(client_side)
    finally:
        display.destroy()
    assert got == ["repeat_info"]

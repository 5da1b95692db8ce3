"""The client toolkit against our session compositor, in one process (both on the test's asyncio loop).

In-process so the test can look at both sides at once: what the compositor holds for the client, and
the events the client got.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from tests.compositor.harness import Session, running_session
from wayray.compositor.testing import click, type_text
from wayray.toolkit.connection import WaylandConnection, WaylandError
from wayray.toolkit.display import Client
from wayray.toolkit.draw import Canvas, font
from wayray.toolkit.seat import Key, KeymapEvent, PointerAxis, SeatEvent
from wayray.toolkit.shm import PixelFormat, Swapchain
from wayray.toolkit.window import Window, WindowState
from wayray.wayland.xkb import Keymap

KEY_A, KEY_LEFTSHIFT = 30, 42


async def connect(s: Session, events: list[SeatEvent] | None = None, **kw: object) -> Client:
    sink = events.append if events is not None else (lambda _e: None)
    return await Client.connect(sink, name=str(s.comp.socket_path), **kw)  # type: ignore[arg-type]


async def painted_window(s: Session, client: Client, colour: int) -> Window:
    window = client.create_window(title="toolkit test", app_id="org.wayray.test", size=(200, 120))
    canvas = Canvas(window.surface, Swapchain(client.conn, client.shm, PixelFormat.XRGB8888))
    client.conn.own(canvas.swapchain)

    def configure(state: WindowState) -> None:
        canvas.resize(*state.buffer_size, state.scale)
        canvas.draw.rectangle((0, 0, *canvas.size), fill=colour)
        canvas.present()

    window.on_configure = configure
    await window.wait_configured()
    await s.wait_window(lambda w: w.title == "toolkit test", "the window")
    return window


def client_objects(s: Session) -> int:
    return sum(1 for r in s.comp.core.display.objects() if r.client.pid == __import__("os").getpid())


async def test_a_window_is_shown_and_everything_is_released_on_close(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        client = await connect(s, on_clipboard_text=lambda _t: None)
        assert (
            client.seat is not None and client.seat.keyboard is not None and client.seat.pointer is not None
        )
        assert client.viewporter is not None and client.clipboard is not None
        await painted_window(s, client, (200, 40, 10, 255))
        win = s.comp.windows()[0]
        await s.wait_for(
            lambda: int(s.pixels()[win.rect.y + 60, win.rect.x + 100]) == 0xC8280A, "the colour"
        )
        assert client_objects(s) > 10
        await client.close()
        await s.wait_for(lambda: client_objects(s) == 0 and not s.comp.windows(), "every object gone")
        gc.collect()  # proxies collected after the disconnect must not touch freed memory


async def test_the_compositor_forgets_a_client_that_had_focus_once_it_is_gone(tmp_path: Path) -> None:
    # A session runs for weeks and sees thousands of short-lived clients (wl-copy, launchers,
    # notifications): nothing of one may stay behind after it disconnects.
    async with running_session(tmp_path, size=(640, 480)) as s:
        client = await connect(s)
        await painted_window(s, client, (0, 0, 0, 255))
        win = s.comp.windows()[0]
        s.comp.pointer_motion(win.rect.x + 50, win.rect.y + 50)
        await click(s.comp, win.rect.x + 50, win.rect.y + 50)
        await type_text(s.comp, "a")
        await client.conn.roundtrip()
        (server_side,) = s.comp.core.display.clients
        gone = weakref.ref(server_side)
        del server_side
        await client.close()
        await s.wait_for(lambda: not s.comp.core.display.clients, "the client disconnected")
        gc.collect()
        leaked = gone()
        assert leaked is None, f"still referenced by {gc.get_referrers(leaked)}"


async def test_keys_carry_text_and_modifiers_from_the_compositors_keymap(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        s.comp.set_keymap(Keymap.from_names(layout="de").text)
        events: list[SeatEvent] = []
        client = await connect(s, events, key_repeat=False)
        await painted_window(s, client, (0, 0, 0, 255))
        await s.wait_for(lambda: s.comp.windows()[0].focused, "focus")
        assert isinstance(events[0], KeymapEvent) and events[0].text == s.comp.keymap_text
        await type_text(s.comp, "Zürich!")
        await s.wait_for(lambda: "".join(e.text for e in events if isinstance(e, Key)) == "Zürich!", "text")
        shifted = [e for e in events if isinstance(e, Key) and e.text in ("Z", "!")]
        assert all(e.modifiers.shift for e in shifted)
        z = next(e for e in events if isinstance(e, Key) and e.text == "Z")
        assert z.evdev_code == 21  # Z is where US keyboards have Y
        await client.close()


async def test_a_keymap_size_beyond_the_file_is_read_without_crashing(tmp_path: Path) -> None:
    # wl_keyboard.keymap names an fd and a size; a compositor that overstates the size must not make
    # the viewer read (mmap) past the end of the file: that is SIGBUS, the end of the process.
    async with running_session(tmp_path, size=(640, 480)) as s:
        keymap = s.comp.core.seat.keymap
        honest = keymap.memfd
        keymap.memfd = lambda: (honest()[0], 4 << 20)  # type: ignore[method-assign]
        events: list[SeatEvent] = []
        client = await connect(s, events)
        await client.conn.roundtrip()
        await client.close()
    assert any(isinstance(e, KeymapEvent) and e.text == keymap.text for e in events)


async def test_held_keys_repeat_on_the_client_until_released(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        events: list[SeatEvent] = []
        client = await connect(s, events)
        await painted_window(s, client, (0, 0, 0, 255))
        await s.wait_for(lambda: s.comp.windows()[0].focused, "focus")
        s.comp.key(KEY_A, True)

        def repeats() -> list[Key]:
            return [e for e in events if isinstance(e, Key) and e.repeat]

        await s.wait_for(lambda: len(repeats()) >= 3, "repeats of a held key")
        assert {(e.evdev_code, e.text) for e in repeats()} == {(KEY_A, "a")}
        s.comp.key(KEY_LEFTSHIFT, True)  # Shift pressed while repeating: repeats type "A"
        await s.wait_for(lambda: any(e.text == "A" for e in repeats()), "shifted repeats")
        s.comp.key(KEY_LEFTSHIFT, False)
        s.comp.key(KEY_A, False)

        def released() -> bool:
            return any(isinstance(e, Key) and not e.pressed and e.evdev_code == KEY_A for e in events)

        await s.wait_for(released, "the release")
        count = len(repeats())
        await asyncio.sleep(1.0)  # longer than the delay plus several repeat periods
        assert len(repeats()) == count, "no repeat after the release"
        await client.close()


async def test_a_wheel_turned_beyond_int32_reaches_a_v9_pointer_saturated(tmp_path: Path) -> None:
    # A viewer may send any i32 value120 and any finite f64 (wayray.wire); wl_pointer v8+ gets both
    # as int32 value120 and wl_fixed, cut at their ranges instead of failing in the compositor.
    async with running_session(tmp_path, size=(640, 480)) as s:
        events: list[SeatEvent] = []
        client = await connect(s, events)
        await painted_window(s, client, (0, 0, 0, 255))
        win = s.comp.windows()[0]
        s.comp.pointer_motion(win.rect.x + 50, win.rect.y + 50)
        s.comp.pointer_axis(0, -1e300, -(2**31) // 120)
        await s.wait_for(lambda: any(isinstance(e, PointerAxis) for e in events), "the wheel")
        axis = next(e for e in events if isinstance(e, PointerAxis))
        await client.close()
    assert axis.value == -8388608.0
    assert axis.value120 == -((2**31 - 1) // 120) * 120 and axis.discrete == -((2**31 - 1) // 120)


async def test_scale_follows_the_output(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(1280, 960), scale=2) as s:
        client = await connect(s)
        window = await painted_window(s, client, (10, 200, 10, 255))
        assert window.state is not None and window.state.scale == 2
        assert window.state.buffer_size == (400, 240)
        win = s.comp.windows()[0]
        assert (win.rect.width, win.rect.height) == (400, 240)  # output pixels: 200x120 logical at 2x
        s.comp.resize_output(1280, 960, scale=1)
        await s.wait_for(lambda: window.state is not None and window.state.scale == 1, "scale 1")
        await client.close()


async def test_a_handler_bug_ends_the_connection_with_that_error(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:

        def broken(event: SeatEvent) -> None:
            if isinstance(event, Key):
                raise RuntimeError("bug in a key handler")

        client = await Client.connect(broken, name=str(s.comp.socket_path))
        await painted_window(s, client, (0, 0, 0, 255))
        await s.wait_for(lambda: s.comp.windows()[0].focused, "focus")
        s.comp.key(KEY_A, True)
        with pytest.raises(RuntimeError, match="bug in a key handler"):
            await asyncio.wait_for(client.conn.wait_closed(), 30)
        await s.wait_for(lambda: not s.comp.windows(), "the client gone")


async def test_the_compositor_going_away_is_an_error_that_says_so(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        client = await connect(s)
        await painted_window(s, client, (0, 0, 0, 255))
        for c in list(s.comp.core.display.clients):
            c.destroy()
        with pytest.raises(WaylandError, match="Wayland connection ended"):
            await asyncio.wait_for(client.conn.wait_closed(), 30)
    gc.collect()


async def test_no_compositor_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WaylandError, match="cannot connect") as err:
        await WaylandConnection.connect(str(tmp_path / "nothing-here"))
    assert err.value.hint and "WAYLAND_DISPLAY" in err.value.hint


def test_fonts_and_text_fit() -> None:
    from wayray.toolkit.draw import text_width, wrap

    f = font(20)
    lines = wrap("Too many failed attempts; try again in 60 s.", f, 200)
    assert len(lines) > 1 and all(text_width(line, f) <= 200 for line in lines)
    assert wrap("x" * 100, f, 50) and all(text_width(line, f) <= 50 for line in wrap("x" * 100, f, 50))
    assert np.asarray(font(30, bold=True).getmask("A")).any()


async def test_closing_from_an_event_handler_is_safe(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        holder: list[Client] = []

        def close_on_key(event: SeatEvent) -> None:
            if isinstance(event, Key) and holder:
                holder[0].conn.close()  # inside libwayland's dispatch: must wait for it to return

        client = await Client.connect(close_on_key, name=str(s.comp.socket_path))
        holder.append(client)
        await painted_window(s, client, (0, 0, 0, 255))
        await s.wait_for(lambda: s.comp.windows()[0].focused, "focus")
        s.comp.key(KEY_A, True)
        await asyncio.wait_for(client.conn.wait_closed(), 30)
        await s.wait_for(lambda: not s.comp.windows(), "the client gone")
        gc.collect()


async def test_fullscreen_and_back(tmp_path: Path) -> None:
    async with running_session(tmp_path, size=(640, 480)) as s:
        client = await connect(s)
        window = await painted_window(s, client, (30, 60, 90, 255))
        window.set_fullscreen(True)
        await s.wait_for(
            lambda: window.state is not None and window.state.fullscreen, "a fullscreen configure"
        )
        info = await s.wait_window(lambda w: w.fullscreen and w.rect.width == 640, "a full-screen window")
        assert (info.rect.x, info.rect.y, info.rect.height) == (0, 0, 480)
        assert int(s.pixels()[470, 630]) == 0x1E3C5A
        window.set_fullscreen(False)
        await s.wait_window(lambda w: not w.fullscreen and w.rect.width == 200, "the window back at 200x120")
        await client.close()

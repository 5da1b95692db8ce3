"""One viewer attached to the session: its keymap and screen, its input, its frames, its clipboard.

Made when wrsrvd sends Attach, dropped on Detach (or when the link goes away). Input and requests
arrive as decoded wire messages (wrsrvd checked them); frames leave through a :class:`DisplayPump`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from wayray.codec import EncoderSettings
from wayray.common import trace
from wayray.common.errors import WayRayError
from wayray.common.log import Repeats
from wayray.compositor.limits import check_output_size, fit_output_size
from wayray.compositor.session import SelectionKind, SessionCompositor
from wayray.config import ClipboardDirection
from wayray.link import Attach
from wayray.session.pump import DisplayPump, Send
from wayray.wayland.xkb import KeymapError
from wayray.wire import (
    SCALE_ONE,
    AxisSource,
    ButtonState,
    Capability,
    Channel,
    ClipboardText,
    FrameAck,
    Key,
    KeyframeRequest,
    KeymapUpdate,
    KeyState,
    PointerAxis,
    PointerButton,
    PointerMotion,
    ResizeRequest,
    Selection,
    TouchCancel,
    TouchDown,
    TouchFrame,
    TouchMotion,
    TouchUp,
    encode_message,
)

log = logging.getLogger("wayray.session")

#: After an output resize for a new viewer: how long the clients may take to draw at the new size
#: before the first frame goes out (they take milliseconds; one that hangs is shown as it was).
SETTLE_TIMEOUT = 0.5
#: The text types offered to the session's clients for text from the viewer (what X11 and GTK ask).
TEXT_MIMES = ("text/plain;charset=utf-8", "text/plain", "UTF8_STRING", "TEXT", "STRING")


def scale_from_120(scale_120: int) -> int:
    """The output scale the compositor can drive (whole numbers 1-4) nearest to a viewer's scale."""
    return max(1, min(4, round(scale_120 / SCALE_ONE)))


class Attachment:
    def __init__(
        self,
        comp: SessionCompositor,
        attach: Attach,
        send: Send,
        *,
        settings: EncoderSettings,
        executor: Executor,
        on_resized: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.comp = comp
        self._on_resized = on_resized
        self.attach_id = attach.attach_id
        self.request = attach
        self.capabilities = frozenset(attach.capabilities)
        try:
            self.clipboard = ClipboardDirection(attach.clipboard)
        except ValueError:
            log.warning(
                "unknown clipboard direction %r from wrsrvd; the clipboard stays off", attach.clipboard
            )
            self.clipboard = ClipboardDirection.NONE
        self._send = send
        #: What the viewer makes happen as often as it likes is logged once a minute, counted.
        self.repeats = Repeats(log)
        self.pump = DisplayPump(
            comp,
            send,
            frame_window=attach.frame_window,
            capabilities=self.capabilities,
            settings=settings,
            executor=executor,
            first_seq=attach.first_seq,
            repeats=self.repeats,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        #: Attached was sent (resizes before it travel in Attached itself).
        self.pump_started = False
        #: The output was resized for this viewer before its first frame.
        self._resized_first = False

    @property
    def output(self) -> tuple[int, int, int]:
        """(width, height, scale in 120ths) of the session's output now."""
        w, h = self.comp.size
        return w, h, self.comp.scale * SCALE_ONE

    def prepare(self) -> None:
        """Take the viewer's keymap and screen (``output`` then says what the viewer will get)."""
        a = self.request
        self._set_keymap(a.keymap)
        if a.match_size:
            self._resized_first = self._resize(a.width, a.height, a.scale_120)

    def start_pump(self) -> None:
        """Wake the session up and start sending: a keyframe first, then frames within the credit."""
        self.comp.viewed = True
        # After a resize the clients are asked to draw at the new size: the first keyframe waits for
        # their answers (up to SETTLE_TIMEOUT), so it shows the windows as they are at that size.
        self.pump.start(settle=self._settle if self._resized_first else None)
        self.pump_started = True
        if Capability.CLIPBOARD in self.capabilities and self.clipboard.to_client:
            for kind in SelectionKind:
                if self.comp.selection_mime_types(primary=kind is SelectionKind.PRIMARY):
                    self.selection_changed(kind)

    async def stop(self) -> None:
        await self.pump.stop()
        for t in list(self._tasks):
            t.cancel()
        self.comp.release_all()
        self.repeats.flush()

    # --- from the viewer ---------------------------------------------------------------------------

    def handle(self, message: object) -> None:
        comp = self.comp
        if isinstance(message, Key):
            traced = (
                trace.key_id(message.time_ms) if trace.ENABLED and message.state == KeyState.PRESSED else ""
            )
            if traced:
                trace.mark("session_in", traced)
            comp.key(message.code, message.state == KeyState.PRESSED)
            if traced:  # only the focused client's commit answers it
                focus = comp.core.seat.keyboard_focus
                trace.hold("delivered", traced, owner=focus.client if focus is not None else None)
        elif isinstance(message, PointerMotion):
            comp.pointer_motion(message.x, message.y)
            self.pump.pointer_moved()
        elif isinstance(message, PointerButton):
            comp.pointer_button(message.button, message.state == ButtonState.PRESSED)
        elif isinstance(message, PointerAxis):
            if message.value or message.value120:  # a finger's stop has no equivalent here
                discrete = message.value120 // 120 if message.source == AxisSource.WHEEL else None
                comp.pointer_axis(int(message.axis), message.value, discrete or None)
        elif isinstance(message, TouchDown | TouchMotion | TouchUp | TouchFrame | TouchCancel):
            self._touch(message)
        elif isinstance(message, FrameAck):
            self.pump.acked(message.seq, message.decode_us)
        elif isinstance(message, KeyframeRequest):
            self.repeats.note(
                "keyframe request",
                logging.INFO,
                "the viewer asks for a keyframe (%s)",
                message.reason.name,
                summary="{n} more keyframe requests from the viewer in the last {seconds} s",
            )
            self.pump.request_keyframe()
        elif isinstance(message, ResizeRequest):
            self._resize(message.width, message.height, message.scale_120)
        elif isinstance(message, KeymapUpdate):
            self._set_keymap(message.keymap)
        elif isinstance(message, ClipboardText):
            self._clipboard_from_viewer(message)
        else:
            name = type(message).__name__
            self.repeats.note(
                f"unhandled {name}",
                logging.WARNING,
                "ignoring %s from the viewer: not handled here",
                name,
                summary=f"{{n}} more {name} from the viewer ignored in the last {{seconds}} s",
            )

    def _touch(self, message: TouchDown | TouchMotion | TouchUp | TouchFrame | TouchCancel) -> None:
        comp = self.comp
        if isinstance(message, TouchFrame):
            comp.touch_frame()
            return
        if isinstance(message, TouchCancel):
            comp.touch_cancel()
            return
        if isinstance(message, TouchDown):
            taken = comp.touch_down(message.id, message.x, message.y)
            why = "that point is down already, or too many are"
        elif isinstance(message, TouchMotion):
            taken = comp.touch_motion(message.id, message.x, message.y)
            why = "that point is not down"
        else:
            taken = comp.touch_up(message.id)
            why = "that point is not down"
        if not taken:
            name = type(message).__name__
            self.repeats.note(
                f"ignored {name}",
                logging.INFO,
                "ignoring %s of touch point %d from the viewer: %s",
                name,
                message.id,
                why,
                summary=f"{{n}} more {name} from the viewer ignored in the last {{seconds}} s",
            )

    def _set_keymap(self, text: str) -> None:
        try:
            self.comp.set_keymap(text or None)
        except KeymapError as err:
            self.repeats.note(
                "bad keymap",
                logging.WARNING,
                "the viewer's keymap does not compile (%s); keeping the default layout",
                err,
                summary="{n} more keymaps from the viewer did not compile in the last {seconds} s",
            )
            self.comp.set_keymap(None)

    async def _settle(self) -> None:
        if not await self.comp.settle(SETTLE_TIMEOUT):
            log.info(
                "a client did not draw at the new output size within %g s; the first frame shows it as is",
                SETTLE_TIMEOUT,
            )

    def _resize(self, width: int, height: int, scale_120: int) -> bool:
        """Follow the viewer's screen; whether the output changed."""
        scale = scale_from_120(scale_120)
        width -= width % scale
        height -= height % scale
        fitted = fit_output_size(width, height, scale)
        if fitted != (width, height):
            self.repeats.note(
                "over the pixel cap",
                logging.INFO,
                "the viewer's %dx%d is over this session's pixel cap: %dx%d",
                width,
                height,
                *fitted,
                summary="{n} more screen sizes from the viewer were over the cap in the last {seconds} s",
            )
            width, height = fitted
        if (width, height) == self.comp.size and scale == self.comp.scale:
            return False
        try:
            check_output_size(width, height, scale)
        except WayRayError as err:
            self.repeats.note(
                "resize refused",
                logging.INFO,
                "not resizing to the viewer's screen: %s",
                err.message,
                summary="{n} more resizes the viewer asked for were refused in the last {seconds} s",
            )
            return False
        self.repeats.note(
            "resize",
            logging.INFO,
            "output resized to %dx%d at scale %d for the viewer",
            width,
            height,
            scale,
            summary="{n} more output resizes for the viewer in the last {seconds} s",
        )
        self.comp.resize_output(width, height, scale)
        if self._on_resized is not None:
            self._on_resized(width, height, scale * SCALE_ONE)
        return True

    def _clipboard_from_viewer(self, message: ClipboardText) -> None:
        if not self.clipboard.to_server:
            log.debug("clipboard text from the viewer dropped: the policy allows %s", self.clipboard)
            return
        data = message.text.encode("utf-8")
        self.comp.set_selection(
            dict.fromkeys(TEXT_MIMES, data), primary=message.selection == Selection.PRIMARY
        )

    # --- to the viewer -----------------------------------------------------------------------------

    def selection_changed(self, kind: SelectionKind) -> None:
        """A client of the session set a selection: send its text to the viewer (if allowed)."""
        if Capability.CLIPBOARD not in self.capabilities or not self.clipboard.to_client:
            return
        task = asyncio.get_running_loop().create_task(self._send_selection(kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_selection(self, kind: SelectionKind) -> None:
        primary = kind is SelectionKind.PRIMARY
        mimes = self.comp.selection_mime_types(primary=primary) or []
        mime = next((m for m in TEXT_MIMES if m in mimes), None)
        if mime is None:
            return
        try:
            data = await self.comp.get_selection(mime, primary=primary)
        except Exception as err:  # the client that offers it may vanish or stall
            log.info("could not read the session's %s selection: %s", kind, err)
            return
        if data is None:
            return
        text = data.decode("utf-8", "replace")
        selection = Selection.PRIMARY if primary else Selection.CLIPBOARD
        await self._send(Channel.CONTROL, encode_message(ClipboardText.truncated(selection, text)))

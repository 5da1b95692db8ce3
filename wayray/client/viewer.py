"""wrclient's session logic: connect, show the session, send input back, reconnect when the link drops.

:class:`Viewer` owns the QUIC connection (``wayray.transport``), the frame and cursor decoders
(``wayray.codec``) and a display backend (``wayray.client.backend``). Frames are decoded, presented
and acknowledged one by one (the acknowledgement is what gives the server credit for the next
frame); a picture that lost sync (checksum mismatch, a broken update) asks for a keyframe once.
Input from the backend (or a script) goes out as wire messages while connected and is dropped while
not: a key held across a reconnect is released by the server when the old connection goes.

When the connection ends for a reason that can pass (the server restarted, the network dropped, the
session's compositor is reconnecting), the viewer reconnects with exponential backoff and jitter and
presents the same token, so it resumes the same session. Reasons that waiting cannot fix (the token
or the server's identity refused, another viewer took the session, the session ended) end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wayray.audio.mic_source import MicSource
from wayray.audio.receive import AudioReceiver
from wayray.client.backend import (
    ClipboardChangedEvent,
    CloseRequestedEvent,
    ConnectionState,
    CursorImage,
    DisplayBackend,
    InputEvent,
    KeyEvent,
    KeymapChangedEvent,
    PointerAxisEvent,
    PointerButtonEvent,
    PointerMotionEvent,
    ScreenChangedEvent,
    TouchCancelEvent,
    TouchDownEvent,
    TouchFrameEvent,
    TouchMotionEvent,
    TouchUpEvent,
)
from wayray.client.following import connect_following
from wayray.client.viewing import Ending, ViewerOptions, ViewerStats
from wayray.codec import CodecError, CursorDecoder, Decoder, Desync
from wayray.common import trace
from wayray.common.backoff import Backoff
from wayray.transport import (
    ClientConnection,
    ConnectError,
    ConnectionClosedError,
    ServerIdentityError,
    UsbStreamFull,
)
from wayray.transport.trust import host_key
from wayray.wire import (
    AudioFrame,
    AudioStart,
    AudioStop,
    Axis,
    AxisSource,
    ButtonState,
    Capability,
    ClipboardText,
    CursorPosition,
    ErrorCode,
    FrameUpdate,
    HelloParams,
    Key,
    KeyframeReason,
    KeyframeRequest,
    KeymapUpdate,
    KeyState,
    MicFrame,
    PointerAxis,
    PointerButton,
    PointerMotion,
    ResizeRequest,
    Selection,
    SessionEvent,
    SessionEventKind,
    TouchCancel,
    TouchDown,
    TouchFrame,
    TouchMotion,
    TouchUp,
    UsbDetached,
    UsbVerdict,
    WireUsageError,
)
from wayray.wire import (
    CursorImage as WireCursorImage,
)

if TYPE_CHECKING:
    from wayray.usb.kiosk import KioskUsb

log = logging.getLogger("wayray.client")

#: Close codes after which reconnecting cannot help.
FINAL_CODES = frozenset(
    {
        ErrorCode.TOKEN_REJECTED,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.CLIENT_CERTIFICATE_REQUIRED,
        ErrorCode.CLIENT_CERTIFICATE_REJECTED,
        ErrorCode.SERVER_IDENTITY_REJECTED,
        ErrorCode.SESSION_MOVED,
        ErrorCode.SESSION_ENDED,
        ErrorCode.ACCESS_DENIED,
    }
)


#: ``on_session_event(kind, detail)``: the server said what the session shows now (login screen,
#: desktop) or what happened to it.
SessionEventHandler = Callable[[SessionEventKind, str], None]


class Viewer:
    def __init__(
        self,
        options: ViewerOptions,
        backend: DisplayBackend,
        *,
        manage_backend: bool = True,
        on_picture: Callable[[], None] | None = None,
        on_session_event: SessionEventHandler | None = None,
        usb: KioskUsb | None = None,
        audio: AudioReceiver | None = None,
        microphone: MicSource | None = None,
    ) -> None:
        """``usb``: the kiosk's USB devices, offered to each connection's session.
        ``manage_backend``: the viewer starts the backend and shows its end on it (False: the
        kiosk owns the backend across viewers). ``on_picture``: called whenever the picture becomes
        complete after a (re)connection: what the person sees is the session now."""
        self.options = options
        self.backend = backend
        #: The session's sound (the ``audio`` capability), when this viewer offers it.
        self.audio = audio
        #: The kiosk's microphone, sent while the session may have it (AudioStart.microphone).
        self.microphone = microphone
        self._manage_backend = manage_backend
        self._on_picture = on_picture
        self._on_session_event = on_session_event
        self.usb = usb
        self.decoder = Decoder()
        self.cursor = CursorDecoder()
        self.stats = ViewerStats()
        self.conn: ClientConnection | None = None
        #: Set while a connection is established.
        self.connected = asyncio.Event()
        #: Set once the picture is complete and in sync (a keyframe applied, checksum matched).
        self.complete = asyncio.Event()
        #: When the last frame was applied (monotonic seconds).
        self.last_frame_at = 0.0
        #: What the session last put on its clipboards (``clipboard`` capability).
        self.session_clipboard: dict[Selection, str] = {}
        self.ending: Ending | None = None
        self.ending_detail = ""
        #: The close code that ended the viewer, when the server's Close did (ErrorCode).
        self.ending_code: int | None = None
        self.session_id: str | None = None
        self._stop = asyncio.Event()
        self._asked_keyframe = False
        self._pending_keys: list[float] = []
        self._clipboard_changed = asyncio.Event()
        self._keymap_override: str | None = None
        #: The server sent SessionEvent DETACHED on the connection that is closing.
        self._detached = ""
        #: The server (host, port) that answered last: the next connection tries it first.
        self.server = (options.host, options.port)
        #: The server the connection is to (after Redirects: the member it was sent to).
        self.connected_to = self.server
        #: While the server says the session does not respond (SessionEvent NOT_RESPONDING): its
        #: detail, which the notice over the frozen picture shows. None while it responds.
        self.not_responding: str | None = None

    # --- life --------------------------------------------------------------------------------------

    async def run(self) -> Ending:
        """Connect and serve until the viewer ends; returns why (``ending_detail`` says more)."""
        if self._manage_backend:
            await self.backend.start(self.handle_input)
        backoff = Backoff(self.options.backoff_first, self.options.backoff_longest)
        first = True
        try:
            while self.ending is None:
                self.backend.set_state(ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING)
                connects = self.stats.connects
                retry_reason = await self._connect_and_serve()
                if self.ending is not None:
                    break
                if self.stats.connects > connects:  # it was up: start the backoff afresh
                    backoff.reset()
                if not self.options.reconnect:
                    self._end(Ending.LOST, retry_reason)
                    break
                wait = backoff.delay()
                log.info("%s; reconnecting in %.1f s", retry_reason, wait)
                self.backend.set_state(ConnectionState.RECONNECTING, retry_reason)
                try:
                    await asyncio.wait_for(self._stop.wait(), wait)
                except TimeoutError:
                    pass
                first = False
        finally:
            if self.ending is not Ending.STOPPED and self._manage_backend:
                self.backend.set_state(ConnectionState.FAILED, self.ending_detail)
        assert self.ending is not None
        return self.ending

    def stop(self, reason: str = "the viewer is leaving") -> None:
        if self.ending is None:
            self._end(Ending.STOPPED, reason)
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.close(ErrorCode.NO_ERROR, reason)

    def _end(self, ending: Ending, detail: str, code: int | None = None) -> None:
        if self.ending is None:
            self.ending = ending
            self.ending_detail = detail
            self.ending_code = code
        self._stop.set()
        self.complete.set()  # wake whoever waits for a picture: there will be none
        self.connected.set()

    async def _connect_first_answering(self, hello: HelloParams) -> ClientConnection:
        """Connect to the server that answered last, or else to the first of the others (in their
        order) that answers. Only "no answer" moves on: a refusal (identity, token) is final, except
        from a server that discovery found: anyone may advertise in a pool, so one whose identity is
        not the pool's is passed over (and never sees the token)."""
        servers = self.options.servers
        if not servers:
            raise ConnectError(
                f"no server of pool {self.options.pool} has been found on the network yet",
                hint="check that the pool's servers run and that multicast (mDNS, UDP 5353) reaches "
                "this kiosk, or list servers in client.toml",
            )
        start = servers.index(self.server) if self.server in servers else 0
        order = servers[start:] + servers[:start]
        failures: list[ConnectError] = []
        for i, (host, port) in enumerate(order):
            try:
                conn = await self._connect_following(host, port, hello)
            except ConnectError as err:
                failures.append(err)
                self._unanswered((host, port))
                if i + 1 < len(order):
                    log.warning("%s; trying the next server, %s", err.message, host_key(*order[i + 1]))
                continue
            except ServerIdentityError as err:
                if not self.options.discovered((host, port)):
                    raise
                log.warning(
                    "passing over %s, which advertises itself in pool %s: %s",
                    host_key(host, port),
                    self.options.pool,
                    err.message,
                )
                failures.append(ConnectError(f"{host_key(host, port)} is not a server of the pool"))
                continue
            if (host, port) != self.server:
                log.info("now using the server %s", host_key(host, port))
            self.server = (host, port)
            return conn
        if len(failures) == 1:
            raise failures[0]
        raise ConnectError(
            f"none of the {len(order)} servers answered: " + "; ".join(f.message for f in failures),
            hint="check that wrsrvd runs on them and that their UDP ports are reachable",
        )

    def _unanswered(self, server: tuple[str, int]) -> None:
        if self.options.unanswered is not None and self.options.discovered(server):
            self.options.unanswered(server)
            self.server = ("", 0)  # start with the best of the others next time

    async def _connect_following(self, host: str, port: int, hello: HelloParams) -> ClientConnection:
        """Connect to ``host``, following the Redirects of its pool (``following``)."""
        conn, self.connected_to = await connect_following(host, port, hello, self.options, self.stats)
        return conn

    async def _connect_and_serve(self) -> str:
        """One connection; returns why it ended when reconnecting may help (else ``_end`` was called)."""
        o = self.options
        screen = self.backend.screen()
        keymap = self._keymap_override or self.backend.keymap() or ""
        hello = HelloParams(
            token=o.token,
            token_kind=o.token_kind,
            screen_width=screen.width,
            screen_height=screen.height,
            scale_120=screen.scale_120,
            keymap=keymap,
            client_name=o.client_name,
            client_version=o.client_version,
            access_key=o.access_key,
            terminal_key=o.terminal_key,
        )
        try:
            conn = await self._connect_first_answering(hello)
        except ServerIdentityError as err:
            self._end(Ending.REFUSED, err.message + (f" ({err.hint})" if err.hint else ""))
            return ""
        except ConnectionClosedError as err:
            self.stats.last_close = f"{ErrorCode.describe(err.code)}: {err.reason}"
            if err.code in FINAL_CODES:
                self._end(_ending_for(err.code), f"the server refused: {err.reason}", err.code)
                return ""
            return f"the server closed the connection: {err.reason}"
        except ConnectError as err:
            return err.message
        if self.ending is not None:  # stopped while connecting
            await conn.aclose(ErrorCode.NO_ERROR, self.ending_detail or "the viewer is leaving")
            return ""
        self.conn = conn
        self.decoder.video_scaled = Capability.VIDEO_SCALED in conn.capabilities
        sh = conn.server_hello
        assert sh is not None
        self.session_id = sh.session_id
        self.not_responding = None
        self.stats.connects += 1
        self._asked_keyframe = False
        self.connected.set()
        self.backend.set_state(ConnectionState.CONNECTED, f"session {sh.session_id}")
        if self.usb is not None and Capability.USB in conn.capabilities:
            conn.set_usb_handler(self.usb.stream_data)
            self.usb.connected(
                lambda message: _send_quietly(conn, message),
                lambda device, data, end: _stream_quietly(conn, device, data, end),
            )
        log.info(
            "%s session %s (%dx%d)",
            "resumed" if sh.resumed else "started",
            sh.session_id,
            sh.output_width,
            sh.output_height,
        )
        try:
            await self._serve(conn)
        finally:
            if self.usb is not None:
                self.usb.disconnected()
            await self._sound_off()
            self.connected.clear()
            self.conn = None
            if self.ending is None:
                self.complete.clear()
        event = conn.close_event
        if event is None:
            return "the connection ended"
        self.stats.last_close = f"{ErrorCode.describe(event.code)}: {event.reason}"
        if self.ending is not None:
            return ""
        if event.code in FINAL_CODES:
            self._end(_ending_for(event.code), event.reason, event.code)
            return ""
        if self._detached:
            self._end(Ending.DETACHED, self._detached)
            return ""
        self._unanswered(self.connected_to)
        return f"connection lost ({ErrorCode.describe(event.code)}: {event.reason})"

    async def _sound_off(self) -> None:
        """The connection ended: this kiosk goes quiet at once, and its microphone off."""
        if self.audio is not None:
            self.audio.disconnected()
        if self.microphone is not None:
            await self.microphone.stop()  # never a word into a session this viewer left

    async def _serve(self, conn: ClientConnection) -> None:
        async for message in conn:
            try:
                if isinstance(message, FrameUpdate):
                    self._frame(conn, message)
                elif isinstance(message, WireCursorImage | CursorPosition):
                    self._cursor(message)
                elif isinstance(message, AudioStart | AudioFrame | AudioStop):
                    self._audio_message(conn, message)
                elif isinstance(message, ClipboardText):
                    self.session_clipboard[message.selection] = message.text
                    self._clipboard_changed.set()
                    if message.selection is Selection.CLIPBOARD:
                        self.backend.set_clipboard(message.text)
                elif isinstance(message, UsbVerdict | UsbDetached):
                    if self.usb is not None:
                        self.usb.message(message)
                elif isinstance(message, SessionEvent):
                    self._session_event(message)
            except ConnectionClosedError:
                return

    def _audio_message(self, conn: ClientConnection, message: AudioStart | AudioFrame | AudioStop) -> None:
        if self.audio is not None:
            self.audio.handle(message)
            if isinstance(message, AudioFrame) and Capability.AV_SYNC in conn.capabilities:
                report = self.audio.delay_report()  # lip sync: the session holds pictures back as much
                if report is not None:
                    with contextlib.suppress(ConnectionClosedError, WireUsageError):
                        conn.send(report)
        if not isinstance(message, AudioStart) or self.microphone is None:
            return
        if not message.microphone:
            log.warning("the server does not take this viewer's microphone (its policy); it stays off")
            return

        def send(frame: MicFrame) -> None:
            with contextlib.suppress(ConnectionClosedError, WireUsageError):
                conn.send(frame)

        self.microphone.start(send, self.backend.set_microphone)

    def _session_event(self, message: SessionEvent) -> None:
        log.info("session event %s: %s", message.kind.name, message.detail)
        if message.kind in (SessionEventKind.MOVED, SessionEventKind.ENDED):
            self.ending_detail = message.detail
        elif message.kind is SessionEventKind.DETACHED:
            self._detached = message.detail or "the server detached this viewer"
        elif message.kind is SessionEventKind.NOT_RESPONDING:
            self._session_hangs(message.detail)
        elif message.kind is SessionEventKind.RESPONDING:
            self._session_responds()
        if self._on_session_event is not None:
            self._on_session_event(message.kind, message.detail)

    def _session_hangs(self, detail: str) -> None:
        """The session answers nothing: a notice over its frozen picture, until it responds again."""
        self.not_responding = detail or "waiting for it\u2026"
        log.warning("the session is not responding: %s", self.not_responding)
        self.backend.set_state(ConnectionState.NOT_RESPONDING, self.not_responding)

    def _session_responds(self) -> None:
        if self.not_responding is None:
            return
        self.not_responding = None
        log.info("the session responds again")
        self.backend.set_state(ConnectionState.CONNECTED, f"session {self.session_id}")

    # --- display -----------------------------------------------------------------------------------

    def _frame(self, conn: ClientConnection, update: FrameUpdate) -> None:
        if trace.ENABLED:
            trace.mark("viewer_in", trace.frame_id(update.seq))
        started = time.perf_counter()
        try:
            damage = self.decoder.apply(update)
        except CodecError as err:
            log.warning("frame %d could not be applied: %s", update.seq, err.message)
            damage = []
        elapsed = time.perf_counter() - started
        if trace.ENABLED:
            trace.mark("decoded", trace.frame_id(update.seq))
        log.debug(
            "frame %d%s: %d regions, %d rectangles changed, decoded in %.1f ms",
            update.seq,
            " (keyframe)" if update.keyframe else "",
            len(update.regions),
            len(damage),
            elapsed * 1000,
        )
        s = self.stats
        s.frames += 1
        s.keyframes += update.keyframe
        s.decode_seconds += elapsed
        for r in update.regions:
            s.regions[r.encoding.name] += 1
            s.region_bytes[r.encoding.name] += len(r.data)
            s.frame_bytes += len(r.data)
        s.scaled_pictures = self.decoder.scaled_pictures
        fb = self.decoder.framebuffer
        if fb is not None and (damage or update.keyframe):
            self.backend.present(fb, damage)
            if trace.ENABLED:
                trace.mark("presented", trace.frame_id(update.seq))
            self.last_frame_at = time.monotonic()
            if len(s.shown_at) < 100_000:
                s.shown_at.append(self.last_frame_at)
            if self._pending_keys:
                now = time.monotonic()
                s.key_to_pixels_ms += [(now - t) * 1000 for t in self._pending_keys]
                self._pending_keys.clear()
        # A small frame's ack may wait for our next message (a key) to ride with: see ack_frame.
        conn.ack_frame(update.seq, min(int(elapsed * 1e6), 0xFFFF_FFFF))
        if self.decoder.needs_keyframe:
            if not self._asked_keyframe and self.decoder.desync is not Desync.NO_KEYFRAME_YET:
                reason = (
                    KeyframeReason.CHECKSUM_MISMATCH
                    if self.decoder.desync is Desync.CHECKSUM_MISMATCH
                    else KeyframeReason.DECODER_ERROR
                )
                log.info("asking for a keyframe: %s", self.decoder.desync_reason)
                conn.send(KeyframeRequest(reason=reason))
                self._asked_keyframe = True
                s.keyframe_requests += 1
        else:
            self._asked_keyframe = False
            if not self.complete.is_set():
                self.complete.set()
                if self._on_picture is not None:
                    self._on_picture()

    def _cursor(self, message: WireCursorImage | CursorPosition) -> None:
        self.stats.cursor_messages += 1
        try:
            self.cursor.apply(message)
        except CodecError as err:
            log.warning("cursor image ignored: %s", err.message)
            return
        state = self.cursor.state
        if isinstance(message, WireCursorImage):
            self.backend.set_cursor(
                None if state is None else CursorImage(state.image, state.hotspot_x, state.hotspot_y)
            )
        else:
            if state is not None:
                self.backend.set_cursor(CursorImage(state.image, state.hotspot_x, state.hotspot_y))
            self.backend.move_cursor(message.x, message.y, message.visible and state is not None)

    # --- input -------------------------------------------------------------------------------------

    def handle_input(self, event: InputEvent) -> None:
        """From the backend (or a script): send it to the session while connected."""
        if isinstance(event, CloseRequestedEvent):
            self.stop("the window was closed")
            return
        if isinstance(event, KeymapChangedEvent):
            self._keymap_override = event.keymap
        conn = self.conn
        if conn is None or conn.closed:
            log.debug("input dropped while not connected: %s", type(event).__name__)
            return
        message = self._wire_message(event, conn)
        if message is None:
            return
        if trace.ENABLED and isinstance(message, Key) and message.state == KeyState.PRESSED:
            trace.mark("viewer_send", trace.key_id(message.time_ms))
        try:
            conn.send(message)
        except (ConnectionClosedError, WireUsageError) as err:
            log.debug("input not sent: %s", err)
            return
        if isinstance(event, KeyEvent) and event.pressed:
            self._pending_keys.append(time.monotonic())

    def _wire_message(self, event: InputEvent, conn: ClientConnection) -> Any:
        caps = conn.capabilities
        t = int(time.monotonic() * 1000) & 0xFFFF_FFFF
        if isinstance(event, ScreenChangedEvent):
            if Capability.DISPLAY not in caps:
                return None
            return ResizeRequest(width=event.width, height=event.height, scale_120=max(1, event.scale_120))
        if isinstance(event, ClipboardChangedEvent):
            if Capability.CLIPBOARD not in caps:
                return None
            return ClipboardText.truncated(Selection.CLIPBOARD, event.text)
        if Capability.INPUT not in caps:
            return None
        if isinstance(event, KeyEvent):
            state = KeyState.PRESSED if event.pressed else KeyState.RELEASED
            return Key(code=event.evdev_code, state=state, time_ms=t)
        if isinstance(event, PointerMotionEvent):
            return PointerMotion(x=float(event.x), y=float(event.y), time_ms=t)
        if isinstance(event, PointerButtonEvent):
            state_b = ButtonState.PRESSED if event.pressed else ButtonState.RELEASED
            return PointerButton(button=event.evdev_button, state=state_b, time_ms=t)
        if isinstance(event, PointerAxisEvent):
            return PointerAxis(
                axis=Axis(event.axis),
                value=float(event.value),
                value120=(event.discrete or 0) * 120,
                source=AxisSource.WHEEL if event.discrete else AxisSource.CONTINUOUS,
                time_ms=t,
            )
        if isinstance(event, KeymapChangedEvent):
            return KeymapUpdate(keymap=event.keymap)
        return self._touch_message(event, caps, t)

    @staticmethod
    def _touch_message(event: InputEvent, caps: frozenset[str], t: int) -> Any:
        if Capability.TOUCH not in caps:
            return None  # a server that does not take touch (an older one) gets none
        if isinstance(event, TouchDownEvent):
            return TouchDown(id=event.id & 0xFFFF_FFFF, x=float(event.x), y=float(event.y), time_ms=t)
        if isinstance(event, TouchMotionEvent):
            return TouchMotion(id=event.id & 0xFFFF_FFFF, x=float(event.x), y=float(event.y), time_ms=t)
        if isinstance(event, TouchUpEvent):
            return TouchUp(id=event.id & 0xFFFF_FFFF, time_ms=t)
        if isinstance(event, TouchFrameEvent):
            return TouchFrame(time_ms=t)
        if isinstance(event, TouchCancelEvent):
            return TouchCancel(time_ms=t)
        return None

    # --- waiting (scripts, snapshots) --------------------------------------------------------------

    async def wait_complete(self, timeout: float) -> bool:
        """Until the picture is complete and in sync; False after ``timeout`` or when the viewer ended."""
        try:
            await asyncio.wait_for(self.complete.wait(), timeout)
        except TimeoutError:
            return False
        return self.ending is None and not self.decoder.needs_keyframe

    async def wait_settled(self, quiet: float, timeout: float) -> bool:
        """Until no frame arrived for ``quiet`` seconds with the picture in sync and exact (no video
        stream left on it: the encoder refreshes a stream's rectangle losslessly once it stops
        changing), that is the session's screen settled; False after ``timeout`` or when the viewer
        ended. The quiet time counts from the call at the earliest: input sent just before takes a
        moment to show."""
        start = time.monotonic()
        end = start + timeout
        while self.ending is None:
            now = time.monotonic()
            if (
                self.connected.is_set()
                and self.complete.is_set()
                and not self.decoder.needs_keyframe
                and not self.decoder.video_streams
                and now - max(self.last_frame_at, start) >= quiet
            ):
                return True
            if now > end:
                return False
            await asyncio.sleep(min(0.05, quiet / 4))
        return False

    async def wait_delivered(self, timeout: float) -> bool:
        """Until the server has acknowledged everything sent to it (input included); True at once
        when not connected (nothing can be delivered then), False after ``timeout``."""
        end = time.monotonic() + timeout
        while (conn := self.conn) is not None and not conn.closed and conn.buffered_bytes():
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.005)
        return True

    async def wait_clipboard(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.ending is None:
            if self.session_clipboard.get(Selection.CLIPBOARD) == text:
                return True
            self._clipboard_changed.clear()
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._clipboard_changed.wait(), left)
            except TimeoutError:
                return False
        return False

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            return False
        return self.ending is None and self.conn is not None


def _send_quietly(conn: ClientConnection, message: Any) -> None:
    """Send unless the connection has closed (its end is handled where it is noticed)."""
    if not conn.closed:
        try:
            conn.send(message)
        except ConnectionClosedError:
            pass


def _stream_quietly(conn: ClientConnection, device: int, data: bytes, end: bool) -> None:
    """Send on a USB device's stream unless the connection has closed."""
    if not conn.closed:
        try:
            conn.usb_send(device, data, end=end)
        except (ConnectionClosedError, UsbStreamFull):
            pass


def _ending_for(code: int) -> Ending:
    if code == ErrorCode.SESSION_MOVED:
        return Ending.SESSION_MOVED
    if code == ErrorCode.SESSION_ENDED:
        return Ending.SESSION_ENDED
    return Ending.REFUSED

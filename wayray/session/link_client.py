"""The session compositor's end of the link: register with wrsrvd, serve attachments, come back.

The compositor connects to wrsrvd's link socket and registers (session id + secret). When the link
goes away (wrsrvd restarted or crashed) the session keeps running, detached, and the client
reconnects with exponential backoff and jitter and registers again, so the restarted wrsrvd finds it
in its registry and can attach viewers to it. Refusals that cannot change by waiting (the session
is unknown to the server, the secret is wrong, the protocol version differs, another process took
the session over) end the session; so does a server that stays away longer than the orphan timeout.
A link wrsrvd dropped (reset, or closed with ``protocol_error``: a compositor that did not read for a
while) is only a link: the compositor registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from wayray.audio.avsync import AvSync
from wayray.audio.capture import AudioSender
from wayray.audio.microphone import MicrophoneFeed
from wayray.codec import EncoderSettings
from wayray.common.backoff import Backoff
from wayray.common.log import Repeats
from wayray.compositor.session import SelectionKind, SessionCompositor
from wayray.link import (
    LINK_VERSION,
    Attach,
    Attached,
    Close,
    CloseCode,
    Detach,
    End,
    Ended,
    LinkError,
    LinkRole,
    OutputChanged,
    Ping,
    Pong,
    Register,
    Screenshot,
    ScreenshotFailed,
    ScreenshotResult,
    ToSession,
    ToViewer,
    Welcome,
)
from wayray.link.stream import LinkStream
from wayray.session import memory
from wayray.session.attachment import Attachment
from wayray.wire import (
    AudioDelay,
    Capability,
    Channel,
    MicFrame,
    WireProtocolError,
    decode_message,
    encode_message,
)
from wayray.wire.framing import HEADER_SIZE, parse_header

log = logging.getLogger("wayray.session")

REGISTER_TIMEOUT = 10.0


class SessionRefused(Exception):
    """wrsrvd will not serve this session (any more): it must end."""


class NotTheServer(LinkError):
    """The process listening on the link socket is not wrsrvd's (its uid is another): the compositor
    tells it nothing and tries again later, as when nothing listens."""


@dataclass(frozen=True)
class LinkSettings:
    path: str
    session_id: str
    secret: str
    #: The uid wrsrvd runs as, as the spawner says (None: this process's own). The compositor registers
    #: only with a server of that uid (or root): the secret goes to nobody else.
    server_uid: int | None = None
    #: End the session when wrsrvd cannot be reached for this long (None: wait for ever).
    orphan_timeout: float | None = 24 * 3600.0
    backoff_first: float = 0.1
    backoff_longest: float = 2.0


class LinkClient:
    def __init__(
        self,
        comp: SessionCompositor,
        settings: LinkSettings,
        *,
        encoder_settings: EncoderSettings,
        executor: Executor,
        on_end: Callable[[str], None],
    ) -> None:
        self.comp = comp
        self.settings = settings
        self._encoder_settings = encoder_settings
        self._executor = executor
        self._on_end = on_end
        self.stream: LinkStream | None = None
        self.attachment: Attachment | None = None
        self.registered = asyncio.Event()
        #: The session's sound server's environment (PULSE_SERVER ...) once it runs, and the Opus bit
        #: rate (kbit/s): viewers that negotiated ``audio`` get its sound. None: no sound.
        self.sound_env: dict[str, str] | None = None
        self.audio_bitrate = 96
        self.audio: AudioSender | None = None
        #: The source "WayRay microphone"'s feed (runs with the sound server); ``microphone_on``: the
        #: attached viewer may speak into it.
        self.microphone: MicrophoneFeed | None = None
        self.microphone_on = False
        #: Lip sync for the attached viewer (it negotiated ``av-sync`` and gets the session's sound).
        self.av_sync: AvSync | None = None
        #: The session's sound server while it is still starting (set by the session process, which
        #: starts it beside the link): a viewer attached before it is up gets its sound once it is.
        self.sound_ready: asyncio.Future[None] | None = None
        self._audio_starting: asyncio.Task[None] | None = None
        self._closing = False
        self._repeats = Repeats(log)

    # --- life --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, register, serve; reconnect when the link is lost. Returns when the session must end
        (``on_end`` has been called with the reason) or :meth:`close` was called."""
        s = self.settings
        backoff = Backoff(s.backoff_first, s.backoff_longest)
        lost_since = time.monotonic()
        said = ""  # the kind of trouble last logged: each new kind is logged once, not every retry
        while not self._closing:
            try:
                stream = await self._connect()
            except (OSError, NotTheServer) as err:
                if isinstance(err, NotTheServer):
                    kind, why = "not-the-server", f"{err.reason}; not registering there"
                else:
                    kind, why = "unreachable", f"cannot reach wrsrvd at {s.path} ({err.strerror or err})"
                away = time.monotonic() - lost_since
                if s.orphan_timeout is not None and away > s.orphan_timeout:
                    self._end(f"wrsrvd was unreachable for {away:.0f} s: {why}")
                    return
                if kind != said:
                    log.warning("%s; retrying", why)
                    said = kind
                await asyncio.sleep(backoff.delay())
                continue
            except SessionRefused as err:
                self._end(str(err))
                return
            except LinkError as err:
                log.warning("registering with wrsrvd failed: %s; retrying", err.reason)
                await asyncio.sleep(backoff.delay())
                continue
            backoff.reset()
            said = ""
            try:
                await self._serve(stream)
            except SessionRefused as err:
                self._end(str(err))
                return
            except LinkError as err:
                log.warning("link to wrsrvd broken: %s", err.reason)
                broken = True
            else:
                broken = False
            finally:
                stream.close()
                self.stream = None
                self.registered.clear()
                await self._detach("the link to wrsrvd is gone")
            if not self._closing:
                log.info("lost the link to wrsrvd; the session keeps running and reconnects")
                lost_since = time.monotonic()
                if broken:  # not wrsrvd going away: do not come straight back into the same trouble
                    await asyncio.sleep(backoff.delay())

    async def _connect(self) -> LinkStream:
        s = self.settings
        stream = await LinkStream.connect(s.path, LinkRole.COMPOSITOR, name="link to wrsrvd")
        try:
            self._check_server(stream)
            w, h = self.comp.size
            stream.send(
                Register(
                    link_version=LINK_VERSION,
                    session_id=s.session_id,
                    secret=s.secret,
                    pid=os.getpid(),
                    wayland_display=self.comp.socket_name,
                    width=w,
                    height=h,
                    scale_120=self.comp.scale * 120,
                )
            )
            try:
                answer = await asyncio.wait_for(_first_message(stream), REGISTER_TIMEOUT)
            except TimeoutError:  # wrsrvd is there but busy or stopped: not "unreachable"
                raise LinkError(
                    f"wrsrvd took the connection but did not answer the registration within "
                    f"{REGISTER_TIMEOUT:.0f} s"
                ) from None
        except BaseException:
            stream.close()
            raise
        if isinstance(answer, Close):
            stream.close()
            if answer.code is CloseCode.SHUTDOWN:
                raise LinkError(f"wrsrvd is stopping: {answer.reason}")
            raise SessionRefused(f"wrsrvd refused the session: {answer.code}: {answer.reason}")
        if not isinstance(answer, Welcome):
            stream.close(CloseCode.PROTOCOL_ERROR, f"expected Welcome, got {type(answer).__name__}")
            raise LinkError(f"wrsrvd answered the registration with {type(answer).__name__}")
        log.info(
            "registered with %s (link version %d) as session %s",
            answer.server,
            answer.link_version,
            s.session_id,
        )
        self.stream = stream
        self.registered.set()
        return stream

    def _check_server(self, stream: LinkStream) -> None:
        """Refuse a socket another user listens on (someone who took the runtime directory's place):
        the registration carries the session's secret, and the server's input reaches the session."""
        expected = self.settings.server_uid
        if expected is None:
            expected = os.geteuid()
        try:
            uid = stream.peer_uid()
        except OSError as err:
            raise NotTheServer(f"cannot tell who listens on {self.settings.path}: {err.strerror}") from None
        if uid is not None and uid not in (expected, 0):
            raise NotTheServer(
                f"the link socket {self.settings.path} is served by uid {uid}, not by wrsrvd's uid "
                f"{expected} (another user may have taken the runtime directory's place)"
            )

    async def close(self) -> None:
        """Stop serving (the session is ending): detach, close the link."""
        self._closing = True
        await self._detach("the session is ending")
        if self.stream is not None:
            self.stream.close()

    def send_ended(self, reason: str, exit_status: int) -> None:
        if self.stream is not None:
            try:
                self.stream.send(Ended(reason=reason[:1000], exit_status=max(-1, min(255, exit_status))))
            except LinkError:
                pass

    def _end(self, reason: str) -> None:
        log.warning("ending the session: %s", reason)
        self._closing = True
        self._on_end(reason)

    # --- serving -----------------------------------------------------------------------------------

    async def _serve(self, stream: LinkStream) -> None:
        async for message in stream.messages():
            if isinstance(message, Ping):
                stream.send(Pong(nonce=message.nonce))  # the keep-alive: this process runs and reads
            elif isinstance(message, Attach):
                await self._attach(stream, message)
            elif isinstance(message, ToSession):
                self._from_viewer(message)
            elif isinstance(message, Detach):
                if self.attachment is not None and self.attachment.attach_id == message.attach_id:
                    log.info("viewer detached: %s", message.reason or "no reason given")
                    await self._detach(message.reason)
            elif isinstance(message, Screenshot):
                self._screenshot(stream, message)
            elif isinstance(message, End):
                # Keep the link: the process stops its command, then says Ended and closes it.
                self._end(f"wrsrvd ends the session: {message.reason}")
            elif isinstance(message, Close):
                if message.code is CloseCode.SHUTDOWN:
                    log.info("wrsrvd is stopping: %s", message.reason)
                    return
                if message.code is CloseCode.PROTOCOL_ERROR:
                    # Something went wrong on this link, not with the session: a new link may do.
                    raise LinkError(f"wrsrvd closed the link: {message.reason}")
                raise SessionRefused(f"wrsrvd closed the link: {message.code}: {message.reason}")
            else:
                stream.close(CloseCode.PROTOCOL_ERROR, f"unexpected {type(message).__name__}")
                raise LinkError(f"wrsrvd sent an unexpected {type(message).__name__}")

    async def _attach(self, stream: LinkStream, message: Attach) -> None:
        await self._detach("another viewer attached")
        attach_id = message.attach_id

        async def send(channel: Channel, frame: bytes) -> None:
            stream.send(ToViewer(attach_id, channel, frame))
            await stream.drain()

        def resized(width: int, height: int, scale_120: int) -> None:
            if self.attachment is att and att.pump_started:
                stream.send(OutputChanged(width=width, height=height, scale_120=scale_120))

        att = Attachment(
            self.comp,
            message,
            send,
            settings=self._encoder_settings,
            executor=self._executor,
            on_resized=resized,
        )
        self.attachment = att
        # Attached goes out before the pump's first frame: wrsrvd answers the viewer's Hello with it.
        att.prepare()
        w, h, scale_120 = att.output
        stream.send(Attached(attach_id=attach_id, width=w, height=h, scale_120=scale_120))
        att.start_pump()
        if self.sound_ready is not None and not self.sound_ready.done():
            # A new session's first viewer: its picture does not wait for the sound server.
            self._audio_starting = asyncio.get_running_loop().create_task(
                self._start_audio_when_ready(self.sound_ready, stream, message), name="audio-start"
            )
        else:
            await self._start_audio(stream, message)
        log.info(
            "viewer attached (%s): output %dx%d, %s",
            attach_id,
            w,
            h,
            ", ".join(sorted(message.capabilities)),
        )

    async def _start_audio_when_ready(
        self, ready: asyncio.Future[None], stream: LinkStream, message: Attach
    ) -> None:
        with contextlib.suppress(Exception):  # the session process logs a sound server that failed
            await asyncio.shield(ready)
        await self._start_audio(stream, message)

    async def _start_audio(self, stream: LinkStream, message: Attach) -> None:
        """The session's sound to this viewer, when it negotiated ``audio`` and the session has sound."""
        if self.sound_env is None or Capability.AUDIO not in message.capabilities:
            return
        attach_id = message.attach_id

        def send(wire_message: object) -> None:
            try:
                stream.send(ToViewer(attach_id, Channel.AUDIO, encode_message(wire_message)))
            except LinkError:
                pass  # a link that does not take it now: this frame is lost, as late sound would be

        audio = AudioSender(
            self.sound_env,
            send,
            bitrate=message.audio_bitrate or self.audio_bitrate,  # wrsrvd's policy now, if it says
            microphone=Capability.MICROPHONE in message.capabilities,
        )
        try:
            started = await audio.start()
        except asyncio.CancelledError:  # the viewer left while its sound started
            audio.stop()
            raise
        if started:
            self.audio = audio
            if Capability.AV_SYNC in message.capabilities:
                self.av_sync = AvSync(self.comp, self.sound_env["PULSE_SERVER"], lambda: audio.last_sound)
                self.av_sync.start(audio.stream_id)
        if audio.microphone and self.microphone is not None:
            self.microphone.viewer_changed()
            self.microphone_on = True
            log.info("the viewer's microphone feeds the source 'WayRay microphone'")

    async def _detach(self, reason: str) -> None:
        starting, self._audio_starting = self._audio_starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
        audio, self.audio = self.audio, None
        if audio is not None:
            audio.stop()  # never waits: this loop must go on answering wrsrvd
        av_sync, self.av_sync = self.av_sync, None
        if av_sync is not None:
            av_sync.stop()  # the pictures are shown at once again
        if self.microphone_on and self.microphone is not None:
            self.microphone.viewer_changed()  # the source records silence again
        self.microphone_on = False
        att, self.attachment = self.attachment, None
        if att is None:
            return
        await att.stop()
        if self.attachment is None:
            self.comp.viewed = False
            # After this step of the loop (a move's Attach is handled first): a session nobody
            # watches lets its framebuffer and the viewer's encoder state go.
            asyncio.get_running_loop().call_soon(self._release_if_detached)
        st = att.pump.stats
        log.info(
            "viewer %d gone (%s): %d frames (%d keyframes, %d H.264 regions), %d bytes, encoding %.1f s",
            att.attach_id,
            reason,
            st.frames,
            st.keyframes,
            st.h264_regions,
            st.bytes,
            st.encode_seconds,
        )

    def _release_if_detached(self) -> None:
        if self.attachment is None and not self.comp.viewed and not self._closing:
            memory.release(self.comp)

    def _from_viewer(self, message: ToSession) -> None:
        att = self.attachment
        if att is None:
            return  # input that was on its way when the viewer left
        try:
            msg_type, _length = parse_header(message.frame)
            decoded = decode_message(message.channel, msg_type, message.frame[HEADER_SIZE:])
        except WireProtocolError as err:  # wrsrvd validated it: this is a bug on one side
            self._repeats.note(
                "undecodable",
                logging.WARNING,
                "ignoring a viewer message wrsrvd relayed: %s",
                err.reason,
                summary="{n} more viewer messages ignored in the last {seconds} s",
            )
            return
        if isinstance(decoded, AudioDelay):
            if self.av_sync is not None:
                self.av_sync.viewer_delay(decoded.stream_id, decoded.delay_us)
            return
        if isinstance(decoded, MicFrame):
            if self.microphone is not None and self.microphone_on:
                self.microphone.handle(decoded)
            return
        att.handle(decoded)

    def selection_changed(self, kind: SelectionKind, mimes: list[str] | None) -> None:
        if mimes is not None and self.attachment is not None:
            self.attachment.selection_changed(kind)

    def _screenshot(self, stream: LinkStream, message: Screenshot) -> None:
        try:
            png = self.comp.screenshot_png(include_cursor=message.include_cursor)
        except Exception as err:
            log.exception("screenshot failed")
            stream.send(ScreenshotFailed(request_id=message.request_id, reason=str(err)[:1000]))
            return
        stream.send(ScreenshotResult(message.request_id, png))


async def _first_message(stream: LinkStream) -> object:
    message = await stream.receive()
    if message is None:
        raise LinkError("wrsrvd closed the link without answering the registration")
    return message

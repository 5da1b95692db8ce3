"""One WayRay connection over QUIC: the asyncio adapter between aioquic and the sans-IO WireConnection.

Stream mapping (docs/protocol.md, "Over QUIC"): each side opens one unidirectional stream per channel
it sends on, when it first sends; the stream's first byte is the channel number, then frames follow.

Bounds: the adapter moves frames from the WireConnection's queues into aioquic only while that
stream has less than ``send_high_water`` bytes unacknowledged (aioquic itself buffers without limit),
so a peer that does not read fills the wire's bounded queues and is closed, never this process's
memory. Received messages wait for the application in an inbox bounded by ``receive_queue_limit``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from cryptography import x509

from wayray.common import trace
from wayray.transport import _aioquic_private as private
from wayray.transport.errors import ConnectionClosedError
from wayray.wire import (
    Capability,
    Channel,
    ConnectionClosed,
    ErrorCode,
    FrameAck,
    FrameUpdate,
    HandshakeCompleted,
    Hello,
    HelloReceived,
    MessageReceived,
    ServerHello,
    WireConfig,
    WireConnection,
    WireEvent,
    WireRole,
)
from wayray.wire.layout import KiB, MiB

log = logging.getLogger("wayray.transport")

#: A USB device stream's preamble: the channel byte (4), then the device's handle (u32 LE).
USB_PREAMBLE = struct.Struct("<BI")
#: Most USB device streams a peer may have open towards this side at once (as many as offers).
MAX_USB_STREAMS = 32
#: Most bytes of one device's stream the peer may leave unacknowledged before the stream fails.
USB_SEND_LIMIT = 8 * MiB


class UsbStreamFull(Exception):
    """The peer does not take a device stream's data: that device is given up, not the connection."""


#: The TLS application protocol name. Versions are negotiated in Hello, not here, so that a viewer
#: of another major version gets a clear refusal instead of a failed TLS handshake.
ALPN = "wayray"
#: The same as ``wayray.config.DEFAULT_PORT`` (the transport does not import the configuration model;
#: a test checks that the two agree).
DEFAULT_PORT = 7100
#: QUIC's CONNECTION_CLOSE must fit one packet: reasons longer than this are cut there (the Close
#: message on the control stream carries up to 1 KiB).
QUIC_REASON_LIMIT = 200
#: An acknowledgement waits this long for a packet of ours to ride on (below the 25 ms max_ack_delay
#: aioquic advertises: a display frame goes out every 16.7 ms at 60 Hz) ...
ACK_DELAY = 0.020
#: ... unless this many ack-eliciting datagrams wait for it (a display frame is one or two).
ACK_EVERY = 4

#: Closes an operator should look at (a broken or hostile peer, a bug); the others are daily life
#: (a viewer detaching or vanishing, a session moving, a refused token).
_WORTH_A_WARNING = frozenset(
    {
        ErrorCode.PROTOCOL_VIOLATION,
        ErrorCode.MALFORMED_MESSAGE,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.UNKNOWN_MESSAGE,
        ErrorCode.UNEXPECTED_MESSAGE,
        ErrorCode.CAPABILITY_NOT_NEGOTIATED,
        ErrorCode.FLOW_CONTROL_ERROR,
        ErrorCode.UNKNOWN_CHANNEL,
        ErrorCode.SEND_BUFFER_FULL,
        ErrorCode.RECEIVE_BUFFER_FULL,
        ErrorCode.CLIENT_CERTIFICATE_REJECTED,
        ErrorCode.SERVER_IDENTITY_REJECTED,
        ErrorCode.INTERNAL_ERROR,
    }
)


@dataclass(frozen=True)
class QuicSettings:
    """Tuning shared by server and client; the defaults suit a LAN and a WAN alike."""

    #: QUIC's own idle timeout; the wire's Ping/Pong notices a vanished peer first (WireConfig).
    idle_timeout: float = 20.0
    #: Largest UDP payload. aioquic's cost is per packet, so larger is faster; 1350 passes most paths.
    max_datagram_size: int = 1350
    #: Flow-control windows this side grants the peer (connection and per stream).
    max_data: int = 16 * MiB
    max_stream_data: int = 8 * MiB
    #: Most unacknowledged bytes handed to aioquic per stream; the rest waits in the wire's queues.
    send_high_water: int = 512 * KiB
    #: Most bytes of received messages (not counting FrameUpdates, bounded by the credit window)
    #: waiting for the application before the connection closes with RECEIVE_BUFFER_FULL.
    receive_queue_limit: int = 16 * MiB

    def configuration(self, *, is_client: bool) -> QuicConfiguration:
        return QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            idle_timeout=self.idle_timeout,
            max_datagram_size=self.max_datagram_size,
            max_data=self.max_data,
            max_stream_data=self.max_stream_data,
        )


class WireProtocol(QuicConnectionProtocol, metaclass=abc.ABCMeta):
    """aioquic's protocol object for one connection, driving a WireConnection. Internal: applications
    use :class:`Connection` (``.connection``). A side (client, server) says how it checks the peer's
    certificate and what it does with a Hello."""

    role: WireRole

    def __init__(
        self,
        quic: QuicConnection,
        stream_handler: Any = None,
        *,
        wire_config: WireConfig,
        settings: QuicSettings,
    ) -> None:
        super().__init__(quic, stream_handler)
        self.settings = settings
        self.wire = WireConnection(self.role, wire_config, now=self._loop.time())
        self.tls_ok = False
        self.quic_terminated = False
        self._send_streams: dict[Channel, int] = {}
        self._refused_streams: set[int] = set()
        self._recv_streams: dict[int, int | None] = {}
        # USB (docs/usb.md, section 4): one stream per forwarded device and direction on channel 4,
        # its preamble the channel byte and the device's handle; raw USB/IP bytes follow.
        self._usb_send: dict[int, int] = {}
        self._usb_recv: dict[int, int] = {}
        self._usb_preamble: dict[int, bytes] = {}
        #: The application's receiver of device streams: (device, data, end).
        self.usb_handler: Callable[[int, bytes, bool], None] | None = None
        self._inbox: deque[tuple[Any, int]] = deque()
        self._inbox_bytes = 0
        self._inbox_event = asyncio.Event()
        self._credit_event = asyncio.Event()
        self.established: asyncio.Future[HandshakeCompleted] = self._loop.create_future()
        self.closed_future: asyncio.Future[ConnectionClosed] = self._loop.create_future()
        self._wire_timer: asyncio.TimerHandle | None = None
        self._wire_timer_at: float | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._wrote = False  # stream data written to aioquic since the last transmit()
        self._unacked = 0  # ack-eliciting datagrams our waiting acknowledgement covers
        private.delay_acks(quic, ACK_DELAY)
        self.connection = self._make_connection()
        self._arm_wire_timer()

    def _make_connection(self) -> Connection:
        return Connection(self)

    @property
    def peer_address(self) -> str:
        addr = self._quic.get_peer_address()
        if not addr:
            return "?"
        host, port = str(addr[0]).removeprefix("::ffff:"), int(addr[1])  # an IPv4 peer on a v6 socket
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # --- aioquic → wire ------------------------------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        # As the base class does, plus a pump: acknowledgements free room in the send buffers.
        if trace.ENABLED and self._usb_recv:  # bench.usb_roundtrip --trace: a URB's datagram, maybe
            trace.mark("quic_datagram_in", "d")
        now = self._loop.time()
        waiting = private.ack_pending(self._quic)
        self._quic.receive_datagram(cast(bytes, data), addr, now=now)
        # Input first: a key and the FrameAck riding with it go to the application in that order.
        private.stream_data_first(self._quic, self._is_input_stream)
        if private.ack_pending(self._quic):
            self._unacked = self._unacked + 1 if waiting else 1
            if self._unacked >= ACK_EVERY:
                private.ack_now(self._quic, now)
        self._process_events()
        self.after_wire()
        self.transmit()

    def _is_input_stream(self, sid: int) -> bool:
        return self._recv_streams.get(sid) == Channel.INPUT

    def transmit(self) -> None:
        # A waiting acknowledgement rides on the stream data about to leave instead of a datagram of
        # its own (see _aioquic_private, "acknowledgements").
        if self._wrote:
            self._wrote = False
            private.ack_now(self._quic, self._loop.time())
        super().transmit()

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        try:
            if isinstance(event, qe.HandshakeCompleted):
                self.tls_handshake_completed()
            elif isinstance(event, qe.StreamDataReceived):
                self._stream_data(event)
            elif isinstance(event, qe.StreamReset):
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, f"the peer reset its stream {event.stream_id}")
            elif isinstance(event, qe.StopSendingReceived):  # aioquic has reset our stream already
                self._refused_streams.add(event.stream_id)
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, f"the peer refused stream {event.stream_id}")
            elif isinstance(event, qe.ConnectionTerminated):
                self._quic_terminated(event)
        except Exception:  # one connection's bug must not reach aioquic's caller (the server's loop)
            log.exception("%s: internal error handling %s", self.peer_address, type(event).__name__)
            self.wire.fail(ErrorCode.INTERNAL_ERROR, "internal error in the transport (see the log)")
        self.after_wire()

    # --- what Connection (and the server's accept path) use --------------------------------------------

    def now(self) -> float:
        """The event loop's clock, which the wire's timers run on."""
        return self._loop.time()

    def peer_certificate(self) -> x509.Certificate | None:
        return private.peer_certificate(self._quic)[0]

    async def credit_changed(self) -> None:
        """Return at the next FrameAck, handshake or close (the caller checks what changed)."""
        self._credit_event.clear()
        await self._credit_event.wait()

    async def inbox_changed(self) -> None:
        """Return at the next message received, or the close."""
        self._inbox_event.clear()
        await self._inbox_event.wait()

    @abc.abstractmethod
    def tls_handshake_completed(self) -> None:
        """Check the peer's certificate (pinning, mutual TLS); set ``tls_ok`` or close."""

    def _stream_data(self, ev: qe.StreamDataReceived) -> None:
        if not self.tls_ok:
            if not self.wire.closed:
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, "stream data before the TLS checks completed")
            return
        sid = ev.stream_id
        if sid in self._usb_recv or sid in self._usb_preamble:
            self._usb_stream_data(sid, ev.data, ev.end_stream)
            return
        if sid not in self._recv_streams:
            if (
                ev.data[:1] == bytes([Channel.USB])
                and bool(sid & 1) == (self.role is WireRole.CLIENT)
                and sid & 2
            ):
                self._usb_stream_data(sid, ev.data, ev.end_stream)
                return
            peer_initiated = bool(sid & 1) == (self.role is WireRole.CLIENT)
            if not sid & 2 or not peer_initiated:
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, "WayRay uses unidirectional streams only")
                return
            if len(self._recv_streams) >= len(Channel):
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, "more streams than there are channels")
                return
            self._recv_streams[sid] = None
        data = ev.data
        channel = self._recv_streams[sid]
        if channel is None:
            if not data:
                if ev.end_stream:
                    self.wire.fail(
                        ErrorCode.PROTOCOL_VIOLATION, f"stream {sid} ended before naming its channel"
                    )
                return
            channel = data[0]
            data = data[1:]
            if channel in self._recv_streams.values():
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, f"a second stream for channel {channel}")
                return
            self._recv_streams[sid] = channel
        self.wire.receive(channel, data, self._loop.time(), end=ev.end_stream)

    def _usb_stream_data(self, sid: int, data: bytes, end: bool) -> None:
        """A device's stream: its preamble (channel 4, the device's handle), then raw USB/IP bytes for
        the application. Only with the ``usb`` capability, at most MAX_USB_STREAMS at once."""
        device = self._usb_recv.get(sid)
        if device is None:
            if Capability.USB not in self.wire.capabilities:
                self.wire.fail(
                    ErrorCode.CAPABILITY_NOT_NEGOTIATED, "a USB device stream without the usb capability"
                )
                return
            if self.usb_handler is None:  # no device was accepted on this connection
                self.wire.fail(
                    ErrorCode.PROTOCOL_VIOLATION, "a stream for a USB device that is not attached"
                )
                return
            if (
                sid not in self._usb_preamble
                and len(self._usb_recv) + len(self._usb_preamble) >= MAX_USB_STREAMS
            ):
                self.wire.fail(
                    ErrorCode.PROTOCOL_VIOLATION, f"more than {MAX_USB_STREAMS} USB device streams"
                )
                return
            head = self._usb_preamble.pop(sid, b"") + data
            if len(head) < USB_PREAMBLE.size:
                if end:
                    self.wire.fail(
                        ErrorCode.PROTOCOL_VIOLATION, f"stream {sid} ended inside its USB preamble"
                    )
                else:
                    self._usb_preamble[sid] = head
                return
            _channel, device = USB_PREAMBLE.unpack_from(head)
            if device in self._usb_recv.values():
                self.wire.fail(ErrorCode.PROTOCOL_VIOLATION, f"a second stream for USB device {device}")
                return
            self._usb_recv[sid] = device
            data = head[USB_PREAMBLE.size :]
        if end:
            del self._usb_recv[sid]
        if data or end:
            assert self.usb_handler is not None
            self.usb_handler(device, bytes(data), end)

    def usb_send(self, device: int, data: bytes, *, end: bool = False) -> None:
        """Bytes on device ``device``'s stream (opened with its preamble on first use); ``end`` ends it.
        Raises UsbStreamFull when the peer has not taken USB_SEND_LIMIT bytes of it yet."""
        sid = self._usb_send.get(device)
        if sid is None:
            if end and not data:
                return
            sid = self._quic.get_next_available_stream_id(is_unidirectional=True)
            self._usb_send[device] = sid
            data = USB_PREAMBLE.pack(Channel.USB, device) + data
        elif private.unacked_stream_bytes(self._quic, sid) > USB_SEND_LIMIT:
            raise UsbStreamFull(f"USB device {device}: the peer does not take its stream's data")
        self._quic.send_stream_data(sid, data, end_stream=end)
        if end:
            del self._usb_send[device]
        self._wrote = True
        # At once, not in the loop's next iteration: a URB's round trip must not wait behind whatever
        # else is ready (a display frame, audio), and the acknowledgement waiting rides along.
        self.transmit()

    def _quic_terminated(self, ev: qe.ConnectionTerminated) -> None:
        self.quic_terminated = True
        if ev.frame_type is None:  # an application close: the code is a WayRay ErrorCode
            code, reason = ev.error_code, ev.reason_phrase
        else:
            code = ErrorCode.TRANSPORT_ERROR
            reason = f"QUIC: {ev.reason_phrase or 'connection closed'} (QUIC error 0x{ev.error_code:x})"
        self.wire.connection_lost(code, reason)

    # --- wire → application and aioquic ------------------------------------------------------------

    def after_wire(self) -> None:
        while (event := self.wire.next_event()) is not None:
            self._wire_event(event)
        if not self.wire.closed:
            try:
                self._pump()
            except (ValueError, RuntimeError) as err:  # aioquic refusing a write: end this connection only
                log.exception("%s: cannot write to QUIC", self.peer_address)
                self.wire.fail(ErrorCode.INTERNAL_ERROR, f"cannot write to QUIC: {err}")
                while (event := self.wire.next_event()) is not None:
                    self._wire_event(event)
        self._arm_wire_timer()

    def _wire_event(self, event: WireEvent) -> None:
        if isinstance(event, MessageReceived):
            self._deliver(event)
        elif isinstance(event, HelloReceived):
            self.hello_received(event)
        elif isinstance(event, HandshakeCompleted):
            if not self.established.done():
                self.established.set_result(event)
            self._credit_event.set()
        elif isinstance(event, ConnectionClosed):
            self._wire_closed(event)

    @abc.abstractmethod
    def hello_received(self, event: HelloReceived) -> None:
        """A viewer's Hello (the wire gives it only to a server)."""

    def _deliver(self, event: MessageReceived) -> None:
        msg = event.message
        if isinstance(msg, FrameAck):
            self._credit_event.set()
        size = 0 if isinstance(msg, FrameUpdate) else event.size
        self._inbox.append((msg, size))
        self._inbox_bytes += size
        self._inbox_event.set()
        if self._inbox_bytes > self.settings.receive_queue_limit:
            self.wire.fail(
                ErrorCode.RECEIVE_BUFFER_FULL,
                f"this {self.role} is not keeping up: {self._inbox_bytes} bytes of messages wait unread",
            )

    def _wire_closed(self, event: ConnectionClosed) -> None:
        level = logging.WARNING if event.code in _WORTH_A_WARNING else logging.INFO
        log.log(level, "%s: connection closed: %s", self.peer_address, event.describe())
        if not self.quic_terminated:
            # The Close message goes out first (it may be lost; CONNECTION_CLOSE says the same).
            try:
                self._pump(unlimited=True)
            except (ValueError, RuntimeError):
                pass  # the QUIC close below carries the same code and reason
            self.transmit()
            reason = event.reason.encode("utf-8")[:QUIC_REASON_LIMIT].decode("utf-8", "ignore")
            self._quic.close(error_code=int(event.code), reason_phrase=reason)
            self.transmit()
        err = ConnectionClosedError(event, where=self.peer_address)
        if not self.established.done():
            self.established.set_exception(err)
            self.established.exception()  # retrieved: nobody need await it
        if not self.closed_future.done():
            self.closed_future.set_result(event)
        self._inbox_event.set()
        self._credit_event.set()
        if self._wire_timer is not None:
            self._wire_timer.cancel()
            self._wire_timer = None

    def _pump(self, *, unlimited: bool = False) -> None:
        budget: dict[Channel, int] | None = None
        if not unlimited:
            budget = {}
            for ch in Channel:
                if self.wire.queued_bytes(ch):
                    sid = self._send_streams.get(ch)
                    used = 0 if sid is None else private.unacked_stream_bytes(self._quic, sid)
                    budget[ch] = self.settings.send_high_water - used
        for ch, data in self.wire.data_to_send(budget):
            if self.quic_terminated:
                return
            sid = self._send_streams.get(ch)
            if sid is None:
                sid = self._open_stream()
                self._send_streams[ch] = sid
                data = bytes([ch]) + data
            elif sid in self._refused_streams:  # reset by aioquic: writing would raise
                continue
            self._quic.send_stream_data(sid, data)
            self._wrote = True

    def _open_stream(self) -> int:
        """A new unidirectional stream for a channel (WebTransport opens its own kind: wayray.web)."""
        return self._quic.get_next_available_stream_id(is_unidirectional=True)

    def schedule_flush(self) -> None:
        """Send what the application queued, once per loop iteration (so bursts coalesce)."""
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        self.after_wire()
        self.transmit()

    def _arm_wire_timer(self) -> None:
        at = self.wire.get_timer()
        if at == self._wire_timer_at and self._wire_timer is not None:
            return
        if self._wire_timer is not None:
            self._wire_timer.cancel()
            self._wire_timer = None
        self._wire_timer_at = at
        if at is not None:
            self._wire_timer = self._loop.call_at(at, self._on_wire_timer)

    def _on_wire_timer(self) -> None:
        self._wire_timer = None
        at = self._wire_timer_at or 0.0
        self._wire_timer_at = None
        self.wire.handle_timer(max(at, self._loop.time()))
        self.after_wire()
        self.transmit()

    # --- for Connection ----------------------------------------------------------------------------

    def send_buffered_bytes(self) -> int:
        """Everything this side holds for the peer: the wire's queues plus aioquic's unacked data."""
        queued = sum(self.wire.queued_bytes(ch) for ch in Channel)
        unacked = sum(private.unacked_stream_bytes(self._quic, sid) for sid in self._send_streams.values())
        return queued + unacked


class Connection:
    """An established (or, on the server before ``accept``, a greeted) WayRay connection.

    Send with :meth:`send` (never blocks: queues are bounded and latest-wins messages coalesce);
    receive with ``await receive()`` or ``async for message in connection``; pace frames with
    ``await wait_frame_credit()``. Every error the peer makes closes the connection with a reason
    (``close_event``); after that, :meth:`send` and :meth:`receive` raise ConnectionClosedError.
    """

    def __init__(self, protocol: WireProtocol) -> None:
        self._p = protocol

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer_address} {self._p.wire.state.value}>"

    # what was negotiated

    @property
    def role(self) -> WireRole:
        return self._p.role

    @property
    def peer_address(self) -> str:
        return self._p.peer_address

    @property
    def hello(self) -> Hello | None:
        return self._p.wire.hello

    @property
    def server_hello(self) -> ServerHello | None:
        return self._p.wire.server_hello

    @property
    def capabilities(self) -> frozenset[str]:
        return self._p.wire.capabilities

    @property
    def version(self) -> tuple[int, int] | None:
        return self._p.wire.version

    @property
    def rtt(self) -> float | None:
        """The last Ping round trip, in seconds."""
        return self._p.wire.rtt

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        return self._p.peer_certificate()

    # state

    @property
    def closed(self) -> bool:
        return self._p.wire.closed

    @property
    def close_event(self) -> ConnectionClosed | None:
        return self._p.wire.close_event

    @property
    def frame_credit(self) -> int:
        return self._p.wire.frame_credit

    def can_send_frame(self) -> bool:
        return self._p.wire.can_send_frame()

    @property
    def last_frame_seq(self) -> int | None:
        """Server: the seq of the last FrameUpdate sent (a relay switching sources continues after it)."""
        return self._p.wire.credit.last_seq

    @property
    def unacked_frames(self) -> tuple[int, ...]:
        return self._p.wire.unacked_frames

    async def wait_frames_acked(self) -> None:
        """Server: return once the peer acknowledged every FrameUpdate sent; raises
        ConnectionClosedError. (wrsrvd waits for this before it switches the viewer to another
        compositor, whose frame credit starts full.)"""
        pinged = False
        while True:
            self._check_open()
            if not self._p.wire.unacked_frames:
                return
            if not pinged:  # a viewer that holds a small frame's ack sends it with its Pong
                pinged = True
                self._p.wire.ping(self._p.now())
                self._p.schedule_flush()
            await self._p.credit_changed()

    def buffered_bytes(self) -> int:
        """Bytes held for the peer on this side (wire queues + QUIC unacknowledged), for bounds and stats."""
        return self._p.send_buffered_bytes()

    # sending

    def _check_open(self) -> None:
        if self._p.wire.closed:
            assert self._p.wire.close_event is not None
            raise ConnectionClosedError(self._p.wire.close_event, where=self.peer_address)

    def send(self, message: Any) -> None:
        """Queue a message for the peer. Raises WireUsageError/EncodeError for local mistakes (see
        WireConnection.send) and ConnectionClosedError once closed."""
        self._check_open()
        self._p.wire.send(message, now=self._p.now())
        self._p.schedule_flush()

    def ack_frame(self, seq: int, decode_us: int) -> None:
        """Client: acknowledge the frames up to ``seq``; a small frame's ack may wait a moment for
        the next message to ride with (WireConnection.ack_frame)."""
        self._check_open()
        self._p.wire.ack_frame(seq, decode_us, now=self._p.now())
        self._p.schedule_flush()

    def send_encoded(self, channel: Channel, frame: bytes) -> None:
        """Queue an already encoded frame (relay path; see WireConnection.send_encoded)."""
        self._check_open()
        self._p.wire.send_encoded(channel, frame)
        self._p.schedule_flush()

    def set_usb_handler(self, handler: Callable[[int, bytes, bool], None]) -> None:
        """Who receives the USB device streams the peer opens: ``handler(device, data, end)``."""
        self._p.usb_handler = handler

    def usb_send(self, device: int, data: bytes, *, end: bool = False) -> None:
        """Send on device ``device``'s stream (docs/usb.md, section 4); ``end`` ends it."""
        self._check_open()
        self._p.usb_send(device, data, end=end)

    async def wait_frame_credit(self) -> None:
        """Return when a FrameUpdate may be sent (server side); raises ConnectionClosedError."""
        while True:
            self._check_open()
            if self._p.wire.can_send_frame():
                return
            await self._p.credit_changed()

    # receiving

    def receive_nowait(self) -> Any | None:
        """The next received message, or None if none is waiting (raises once closed and drained)."""
        p = self._p
        if p._inbox:
            msg, size = p._inbox.popleft()
            p._inbox_bytes -= size
            return msg
        self._check_open()
        return None

    async def receive(self) -> Any:
        """The next message from the peer, in arrival order per channel."""
        while True:
            msg = self.receive_nowait()
            if msg is not None:
                return msg
            await self._p.inbox_changed()

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except ConnectionClosedError:
            raise StopAsyncIteration from None

    # closing

    def close(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Close with a code and a reason the peer will see. Idempotent."""
        if not self._p.wire.closed:
            self._p.wire.close(code, reason)
            self._p.after_wire()

    async def wait_closed(self) -> ConnectionClosed:
        return await asyncio.shield(self._p.closed_future)

    async def aclose(
        self, code: int = ErrorCode.NO_ERROR, reason: str = "", *, timeout: float = 2.0
    ) -> None:
        """Close and wait until QUIC has said goodbye (at most ``timeout`` seconds)."""
        self.close(code, reason)
        try:
            await asyncio.wait_for(self._p.wait_closed(), timeout)
        except TimeoutError:
            pass

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

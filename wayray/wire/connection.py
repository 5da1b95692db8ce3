"""The sans-IO protocol engine: one WayRay connection, either side, without sockets or clocks.

Like aioquic's ``QuicConnection``: the owner feeds received bytes per channel with the current time
(``receive``), takes events (``next_event``), sends messages (``send``), collects the bytes to put on
each channel (``data_to_send``) and calls ``handle_timer`` when ``get_timer`` says so. Everything
a peer can get wrong ends the connection with a Close carrying an error code and a reason; nothing a
peer sends raises out of ``receive``.

Flow control: the server may have at most ``frame_window`` FrameUpdates unacknowledged; the client
acknowledges each applied frame with a cumulative FrameAck. ``frame_credit`` / ``can_send_frame()``
say whether the encoder may produce the next frame. Every per-channel send queue is bounded:
FrameUpdates by the credit window, everything else by ``send_queue_limit`` bytes, past which the
connection closes with SEND_BUFFER_FULL (the peer is not reading). Latest-wins messages (pointer
motion, cursor position, frame acks) replace an unsent predecessor instead of queueing behind it.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import deque
from collections.abc import Mapping
from typing import Any

from wayray.common import trace
from wayray.wire import display as d
from wayray.wire import messages as m
from wayray.wire.ackhold import AckHold
from wayray.wire.config import CAPABILITY_NAME, WireConfig
from wayray.wire.credit import CreditError, FrameCredit, SeqOrderError
from wayray.wire.errors import ErrorCode, WireProtocolError, WireUsageError
from wayray.wire.events import (
    ConnectionClosed,
    HandshakeCompleted,
    HelloReceived,
    MessageReceived,
    WireEvent,
)
from wayray.wire.framing import HEADER_SIZE, FrameDecoder, parse_header
from wayray.wire.layout import MiB
from wayray.wire.protocol import (
    CLOSE,
    FRAME_UPDATES,
    HELLO,
    MAX_REASON,
    REDIRECT,
    SERVER_HELLO,
    MessageSpec,
    WireRole,
    decode_body,
    encode_message,
    lookup,
    max_body,
    spec_of,
)
from wayray.wire.sendqueue import SendQueues

log = logging.getLogger("wayray.wire")

_VERSION = struct.Struct("<HH")
_SEQ = struct.Struct("<Q")
#: Client: most bytes held from other channels while the ServerHello is still on its way.
_HOLD_LIMIT = 65 * MiB


class State(enum.Enum):
    #: Client: Hello not sent yet. Server: waiting for the client's Hello.
    START = "start"
    #: Client: Hello sent, waiting for ServerHello.
    HELLO_SENT = "hello-sent"
    #: Server: Hello received, the application has not answered yet.
    HELLO_RECEIVED = "hello-received"
    ESTABLISHED = "established"
    CLOSED = "closed"


class WireConnection:
    """One side of one WayRay connection. See the module docstring for the calling pattern."""

    def __init__(self, role: WireRole, config: WireConfig | None = None, *, now: float) -> None:
        self.role = role
        self.config = config or WireConfig()
        self.state = State.START
        self.hello: m.Hello | None = None
        self.server_hello: m.ServerHello | None = None
        #: The capabilities in use (server: known from the Hello on; client: from the ServerHello on).
        self.capabilities: frozenset[str] = frozenset()
        #: The protocol version in use, once negotiated.
        self.version: tuple[int, int] | None = None
        #: The reason the connection closed, once it has.
        self.close_event: ConnectionClosed | None = None
        #: The last measured round-trip time (Ping → Pong), in seconds.
        self.rtt: float | None = None
        #: Client: the Redirect the server sent in place of a ServerHello (a Close follows).
        self.redirect: m.Redirect | None = None

        self._events: deque[WireEvent] = deque()
        self._decoders: dict[m.Channel, FrameDecoder] = {}
        self._out = SendQueues(self.config.send_queue_limit)
        self._created = now
        #: When the peer last proved it is alive and reading: its Pong, or the handshake.
        self._last_pong = now
        self._next_ping: float | None = None
        self._ping_nonce = 0
        self._pings_out: dict[int, float] = {}
        # Frame flow control. Server: frames sent, not acked. Client: frames received, not acked
        # (its window comes with the ServerHello).
        self.credit = FrameCredit(self.config.frame_window)
        # Client: bytes on other channels that overtook the ServerHello.
        self._held: dict[m.Channel, bytearray] = {}
        self._held_end: set[m.Channel] = set()
        # Client: a small frame's ack waiting for company (ack_frame); the latest time passed in.
        self._ack_hold = AckHold(self.config.frame_ack_hold if role is WireRole.CLIENT else 0.0)
        self._now = now

    # --- handshake ---------------------------------------------------------------------------------

    def send_hello(self, params: m.HelloParams) -> m.Hello:
        """Client: start the handshake. Nothing else can be sent until ServerHello arrives."""
        if self.role is not WireRole.CLIENT or self.state is not State.START:
            raise WireUsageError(
                f"send_hello() is for a client that has not said Hello (state {self.state})"
            )
        hello = m.Hello(
            version_major=self.config.version[0],
            version_minor=self.config.version[1],
            token=params.token,
            token_kind=params.token_kind,
            capabilities=frozenset(self.config.capabilities),
            screen_width=params.screen_width,
            screen_height=params.screen_height,
            scale_120=params.scale_120,
            keymap=params.keymap,
            client_name=params.client_name,
            client_version=params.client_version,
            access_key=params.access_key,
            terminal_id=params.terminal_id,
        )
        frame = encode_message(hello)
        self.hello = hello
        self.state = State.HELLO_SENT
        self._enqueue(HELLO, frame)
        return hello

    def withhold(self, capabilities: frozenset[str]) -> None:
        """Server, before accept(): do not confirm these (a policy turned them off for this viewer)."""
        if self.role is not WireRole.SERVER or self.state is not State.HELLO_RECEIVED:
            raise WireUsageError(f"withhold() comes between HelloReceived and accept() (state {self.state})")
        self.capabilities = self.capabilities - capabilities

    def accept(
        self,
        *,
        session_id: str,
        output_width: int,
        output_height: int,
        output_scale_120: int = m.SCALE_ONE,
        resumed: bool = False,
        keyframe_follows: bool = True,
        server_name: str = "wrsrvd",
        server_version: str = "",
        now: float,
    ) -> m.ServerHello:
        """Server: answer a HelloReceived; the connection is established once this returns."""
        if self.role is not WireRole.SERVER or self.state is not State.HELLO_RECEIVED or self.hello is None:
            raise WireUsageError(f"accept() answers a HelloReceived on a server (state {self.state})")
        assert self.version is not None
        sh = m.ServerHello(
            version_major=self.version[0],
            version_minor=self.version[1],
            capabilities=self.capabilities,
            session_id=session_id,
            output_width=output_width,
            output_height=output_height,
            output_scale_120=output_scale_120,
            resumed=resumed,
            keyframe_follows=keyframe_follows,
            frame_window=self.credit.window,
            server_name=server_name,
            server_version=server_version,
        )
        frame = encode_message(sh)
        self.server_hello = sh
        self._enqueue(SERVER_HELLO, frame)
        self._establish(now)
        self._events.append(HandshakeCompleted(self.hello, sh))
        return sh

    def redirect_to(self, host: str, port: int, fingerprint: str, server_id: str, reason: str) -> m.Redirect:
        """Server: answer a HelloReceived with a Redirect to another member of the pool, then close
        with ``REDIRECTED``. Only for a client that offered the ``pools`` capability."""
        if self.role is not WireRole.SERVER or self.state is not State.HELLO_RECEIVED or self.hello is None:
            raise WireUsageError(f"redirect_to() answers a HelloReceived on a server (state {self.state})")
        if m.Capability.POOLS not in self.hello.capabilities:
            raise WireUsageError(
                "the client did not offer the 'pools' capability: it cannot follow a Redirect"
            )
        message = m.Redirect(
            host=host,
            port=port,
            fingerprint=fingerprint,
            server_id=server_id,
            reason=_truncate(reason, MAX_REASON),
        )
        self._enqueue(REDIRECT, encode_message(message))
        self._close(ErrorCode.REDIRECTED, reason)
        return message

    def _establish(self, now: float) -> None:
        self.state = State.ESTABLISHED
        self._last_pong = now
        self._next_ping = now + self.config.ping_interval

    # --- receiving ---------------------------------------------------------------------------------

    def receive(
        self, channel: int, data: bytes | bytearray | memoryview, now: float, *, end: bool = False
    ) -> None:
        """Bytes that arrived on ``channel`` (``end``: the peer finished that channel's stream)."""
        if self.state is State.CLOSED:
            return
        self._now = max(self._now, now)
        try:
            ch = self._receiving_channel(channel)
            if (
                self.role is WireRole.CLIENT
                and self.state is not State.ESTABLISHED
                and ch is not m.Channel.CONTROL
            ):
                # QUIC does not order streams against each other: the first frames may overtake the
                # ServerHello. Hold them (bounded) until it arrives.
                self._hold(ch, data, end)
                return
            self._feed(ch, data, end, now)
        except WireProtocolError as err:
            self.fail(err.code, err.reason)
        except Exception as err:  # a bug here must cost one connection, never the process
            log.exception("internal error handling data on channel %s", channel)
            self.fail(ErrorCode.INTERNAL_ERROR, f"internal error: {type(err).__name__}")

    def _feed(self, ch: m.Channel, data: bytes | bytearray | memoryview, end: bool, now: float) -> None:
        decoder = self._decoders.get(ch)
        if decoder is None:
            decoder = self._decoders[ch] = FrameDecoder(
                max_body(ch, self.role.peer), what=f"{ch.name.lower()} frame"
            )
        for frame in decoder.feed(data):
            self._handle_frame(ch, frame.type, frame.body, now)
            if self.state is State.CLOSED:
                return
        if end:
            decoder.check_finished()
            if ch is m.Channel.CONTROL:
                self._closed_by_peer(ErrorCode.PROTOCOL_VIOLATION, "the peer ended its control channel")

    def _hold(self, ch: m.Channel, data: bytes | bytearray | memoryview, end: bool) -> None:
        held = self._held.setdefault(ch, bytearray())
        held += data
        if end:
            self._held_end.add(ch)
        total = sum(len(b) for b in self._held.values())
        if total > _HOLD_LIMIT:
            raise WireProtocolError(
                ErrorCode.UNEXPECTED_MESSAGE,
                f"the server sent {total} bytes on other channels before ServerHello",
            )

    def _release_held(self, now: float) -> None:
        held, self._held = self._held, {}
        ends, self._held_end = self._held_end, set()
        for ch, data in held.items():
            if self.state is State.CLOSED:
                return
            self._feed(ch, data, ch in ends, now)

    def _receiving_channel(self, channel: int) -> m.Channel:
        try:
            ch = m.Channel(channel)
        except ValueError:
            raise WireProtocolError(ErrorCode.UNKNOWN_CHANNEL, f"channel {channel} is not defined") from None
        if max_body(ch, self.role.peer) == 0:
            raise WireProtocolError(
                ErrorCode.PROTOCOL_VIOLATION, f"the {self.role.peer} sends nothing on the {ch.name} channel"
            )
        return ch

    def _handle_frame(self, ch: m.Channel, msg_type: int, body: bytes, now: float) -> None:
        spec = lookup(ch, msg_type)
        if not spec.direction.allows(self.role.peer):
            raise WireProtocolError(
                ErrorCode.UNEXPECTED_MESSAGE, f"{spec.name} is never sent by the {self.role.peer}"
            )
        if spec is CLOSE:
            close = decode_body(spec, body)
            self._closed_by_peer(close.code, close.reason)
            return
        if self.state is not State.ESTABLISHED:
            self._handle_handshake_frame(spec, body, now)
            return
        if spec.capability is not None and spec.capability not in self.capabilities:
            raise WireProtocolError(
                ErrorCode.CAPABILITY_NOT_NEGOTIATED,
                f"{spec.name} needs the '{spec.capability}' capability, which was not negotiated",
            )
        if spec is HELLO or spec is SERVER_HELLO:
            raise WireProtocolError(ErrorCode.UNEXPECTED_MESSAGE, f"{spec.name} after the handshake")
        message = decode_body(spec, body)
        if isinstance(message, m.Ping):
            # A held ack goes with the Pong; and the next ack is not held (the Ping may have
            # overtaken a frame the server waits to see acknowledged: wrsrvd switching compositors).
            self._ack_hold.pinged()
            self._enqueue_message(m.Pong(nonce=message.nonce))
            return
        if isinstance(message, m.Pong):
            sent = self._pings_out.pop(message.nonce, None)
            if sent is not None:
                self.rtt = now - sent
                self._last_pong = now
            return
        if isinstance(message, d.SmallFrameUpdate):
            message = message.expand()  # the application sees FrameUpdates only
        if isinstance(message, d.FrameUpdate):
            # A held ack goes when the next frame comes, on its own: every frame keeps its own ack
            # (the server's link estimate measures each frame), and an animation's acks stay steady.
            self._flush_held_ack()
            self._frame_received(message.seq)
            self._ack_hold.frame_received(message.seq, message.keyframe, len(body))
        elif isinstance(message, m.FrameAck):
            self._ack_received(message.seq)
        self._events.append(MessageReceived(ch, message, len(body)))

    def _handle_handshake_frame(self, spec: MessageSpec, body: bytes, now: float) -> None:
        if self.role is WireRole.SERVER:
            if self.state is not State.START or spec is not HELLO:
                expected = (
                    "Hello first" if self.state is State.START else "nothing until it gets ServerHello"
                )
                raise WireProtocolError(
                    ErrorCode.UNEXPECTED_MESSAGE, f"got {spec.name}; the client must send {expected}"
                )
            # Read the version before anything else: a client of another major version may lay out
            # the rest of its Hello differently, and deserves a clear refusal, not a decoding error.
            if len(body) >= _VERSION.size:
                major, minor = _VERSION.unpack_from(body, 0)
                self._check_major(major, minor)
            hello: m.Hello = decode_body(spec, body)
            bad = sorted(c for c in hello.capabilities if not CAPABILITY_NAME.match(c))
            if bad:
                raise WireProtocolError(ErrorCode.MALFORMED_MESSAGE, f"Hello.capabilities: bad names {bad}")
            self.hello = hello
            self.version = (self.config.version[0], min(self.config.version[1], hello.version_minor))
            self.capabilities = frozenset(hello.capabilities & self.config.capabilities)
            self.state = State.HELLO_RECEIVED
            self._events.append(HelloReceived(hello, self.capabilities))
            return
        # client
        if self.state is State.HELLO_SENT and spec is REDIRECT and self.redirect is None:
            assert self.hello is not None
            if m.Capability.POOLS not in self.hello.capabilities:
                raise WireProtocolError(
                    ErrorCode.UNEXPECTED_MESSAGE, "got Redirect, but the client did not offer 'pools'"
                )
            self.redirect = decode_body(spec, body)
            return
        if self.state is not State.HELLO_SENT or spec is not SERVER_HELLO:
            raise WireProtocolError(
                ErrorCode.UNEXPECTED_MESSAGE,
                f"got {spec.name} before the handshake finished (state {self.state.value})",
            )
        sh: m.ServerHello = decode_body(spec, body)
        assert self.hello is not None
        self._check_major(sh.version_major, sh.version_minor)
        if sh.version_minor > self.hello.version_minor:
            raise WireProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                f"ServerHello picked minor version {sh.version_minor}, "
                f"above the client's {self.hello.version_minor}",
            )
        extra = sorted(sh.capabilities - self.hello.capabilities)
        if extra:
            raise WireProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                f"ServerHello confirms capabilities the client never offered: {extra}",
            )
        self.server_hello = sh
        self.version = (sh.version_major, sh.version_minor)
        self.capabilities = sh.capabilities
        self.credit.reset(sh.frame_window)
        self._establish(now)
        self._events.append(HandshakeCompleted(self.hello, sh))
        self._release_held(now)

    def _check_major(self, major: int, minor: int) -> None:
        ours = self.config.version
        if major != ours[0]:
            raise WireProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"the {self.role.peer} speaks WayRay protocol {major}.{minor} and this {self.role} "
                f"{ours[0]}.{ours[1]}; the major versions must match (update the older side)",
            )

    def _frame_received(self, seq: int) -> None:
        try:
            self.credit.sent(seq)
        except SeqOrderError as err:
            raise WireProtocolError(ErrorCode.PROTOCOL_VIOLATION, str(err)) from None
        except CreditError as err:
            raise WireProtocolError(ErrorCode.FLOW_CONTROL_ERROR, str(err)) from None

    def _ack_received(self, seq: int) -> None:
        try:
            self.credit.acked(seq)
        except CreditError as err:
            raise WireProtocolError(ErrorCode.FLOW_CONTROL_ERROR, str(err)) from None

    # --- events ------------------------------------------------------------------------------------

    def next_event(self) -> WireEvent | None:
        try:
            return self._events.popleft()
        except IndexError:
            return None

    # --- sending -----------------------------------------------------------------------------------

    @property
    def frame_credit(self) -> int:
        """Server: how many more FrameUpdates may be sent now. Client: how many the server may still send."""
        if self.state is not State.ESTABLISHED:
            return 0
        return self.credit.available

    def can_send_frame(self) -> bool:
        return self.role is WireRole.SERVER and self.frame_credit > 0

    @property
    def unacked_frames(self) -> tuple[int, ...]:
        return self.credit.unacked

    def send(self, message: Any, *, now: float | None = None) -> None:
        """Queue a message. Raises WireUsageError for local mistakes (wrong side, no credit, before
        the handshake, capability not negotiated) and EncodeError for values that do not fit; after the
        connection closed, messages are dropped silently. ``now``: the time, if the owner knows it (a
        FrameAck held by :meth:`ack_frame` goes first, and counts the time it waited)."""
        if self.state is State.CLOSED:
            return
        if now is not None:
            self._now = max(self._now, now)
        self._flush_held_ack()  # it rides with this message, and goes before a newer FrameAck
        if isinstance(message, d.FrameUpdate) and m.Capability.SMALL_FRAMES in self.capabilities:
            message = d.SmallFrameUpdate.of(message) or message  # the short form, if it fits
        spec = spec_of(message)
        self._check_send(spec)
        if isinstance(message, d.FrameUpdate | d.SmallFrameUpdate):
            self._frame_sent(message.seq)
        elif isinstance(message, m.FrameAck):
            self._ack_sent(message.seq)
        self._enqueue(spec, encode_message(message))

    def ack_frame(self, seq: int, decode_us: int, *, now: float) -> None:
        """Client: acknowledge every frame up to ``seq``, shown ``decode_us`` after it arrived.

        If ``seq`` is the last frame received and it was small (one datagram, not a keyframe), the
        FrameAck may wait up to ``frame_ack_hold`` for another message of ours and go just before it,
        in the same datagram, its ``decode_us`` counting the wait (:mod:`wayray.wire.ackhold`).
        """
        if self.state is State.CLOSED:
            return
        self._now = max(self._now, now)
        self._flush_held_ack()
        ack = m.FrameAck(seq=seq, decode_us=decode_us)
        self._check_send(spec_of(ack))
        if not self._ack_hold.offer(ack, self._now):
            self.send(ack)

    @property
    def held_frame_ack(self) -> m.FrameAck | None:
        """Client: the FrameAck waiting for another message (see :meth:`ack_frame`), if any."""
        return self._ack_hold.held

    def _flush_held_ack(self) -> None:
        ack = self._ack_hold.take(self._now)
        if ack is not None:
            self.send(ack)

    def send_encoded(self, channel: m.Channel, frame: bytes) -> None:
        """Queue a frame someone else encoded (wrsrvd relaying a compositor's FrameUpdate untouched).

        The header is checked and FrameUpdate's seq is read from the body (its first field); the body
        itself is not decoded, so the viewer is what validates it.
        """
        if self.state is State.CLOSED:
            return
        try:
            msg_type, length = parse_header(frame)
            spec = lookup(channel, msg_type)
        except WireProtocolError as err:
            raise WireUsageError(f"cannot relay this frame: {err.reason}") from None
        if length > max_body(channel, self.role):
            raise WireUsageError(f"{spec.name} of {length} bytes exceeds the {channel.name} channel's limit")
        self._check_send(spec)
        if spec in FRAME_UPDATES:
            if length < _SEQ.size:
                raise WireUsageError("FrameUpdate too short to carry a seq")
            (seq,) = _SEQ.unpack_from(frame, HEADER_SIZE)
            self._frame_sent(seq)
            if trace.ENABLED:
                trace.mark("relayed", trace.frame_id(seq))
        self._enqueue(spec, frame)

    def _check_send(self, spec: MessageSpec) -> None:
        if not spec.direction.allows(self.role):
            raise WireUsageError(f"a {self.role} never sends {spec.name}")
        if spec is CLOSE:
            raise WireUsageError("use close() to send Close")
        if self.state is not State.ESTABLISHED:
            raise WireUsageError(
                f"cannot send {spec.name} before the handshake completes (state {self.state.value})"
            )
        if spec.cls in (m.Hello, m.ServerHello):
            raise WireUsageError(f"{spec.name} is sent by the handshake only")
        if spec.capability is not None and spec.capability not in self.capabilities:
            raise WireUsageError(f"{spec.name} needs the '{spec.capability}' capability, not negotiated")

    def _frame_sent(self, seq: int) -> None:
        try:
            self.credit.sent(seq)
        except CreditError as err:
            raise WireUsageError(f"cannot send this FrameUpdate: {err}") from None

    def _ack_sent(self, seq: int) -> None:
        try:
            self.credit.acked(seq)
        except CreditError as err:
            raise WireUsageError(f"cannot send this FrameAck: {err}") from None

    def _enqueue_message(self, message: Any) -> None:
        self._enqueue(spec_of(message), encode_message(message))

    def _enqueue(self, spec: MessageSpec, frame: bytes) -> None:
        if self._ack_hold.held is not None:
            self._flush_held_ack()  # it rides with this message (a Pong, a Close)
        waiting = self._out.add(spec, frame)
        if waiting is not None:
            self.fail(
                ErrorCode.SEND_BUFFER_FULL,
                f"the {self.role.peer} is not reading: {waiting} bytes queued on the "
                f"{spec.channel.name} channel (limit {self.config.send_queue_limit})",
            )

    def queued_bytes(self, channel: m.Channel) -> int:
        """Bytes queued on ``channel`` that ``data_to_send`` has not handed out yet."""
        return self._out.queued_bytes(channel)

    def data_to_send(self, budget: Mapping[m.Channel, int] | None = None) -> list[tuple[m.Channel, bytes]]:
        """Take queued bytes, whole frames, per channel in priority order.

        ``budget`` limits each channel (a transport passes the room left in its own buffers): frames
        are taken while the amount taken is below it, so one frame may overshoot. Channels not in it
        get nothing; ``None`` takes everything.
        """
        return self._out.take(budget)

    # --- timers ------------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        if self.state is State.CLOSED:
            return None
        if self.state is not State.ESTABLISHED:
            return self._created + self.config.handshake_timeout
        assert self._next_ping is not None
        at = min(self._next_ping, self._last_pong + self.config.idle_timeout)
        if (deadline := self._ack_hold.deadline) is not None:
            at = min(at, deadline)
        return at

    def handle_timer(self, now: float) -> None:
        if self.state is State.CLOSED:
            return
        self._now = max(self._now, now)
        if (deadline := self._ack_hold.deadline) is not None and now >= deadline:
            self._flush_held_ack()  # nothing came to ride on: it goes alone
        if self.state is not State.ESTABLISHED:
            if now >= self._created + self.config.handshake_timeout:
                limit = f"{self.config.handshake_timeout:g} s"
                if self.role is WireRole.CLIENT:
                    why = f"no ServerHello from the server within {limit}"
                elif self.state is State.START:
                    why = f"no Hello from the client within {limit}"
                else:  # the server's own side: it found no answer to the Hello in time
                    why = f"the server did not answer the client's Hello within {limit}"
                self.fail(ErrorCode.HANDSHAKE_TIMEOUT, why)
            return
        if now >= self._last_pong + self.config.idle_timeout:
            self.fail(
                ErrorCode.IDLE_TIMEOUT,
                f"the {self.role.peer} answered no Ping for {now - self._last_pong:.1f} s "
                f"(idle timeout {self.config.idle_timeout:g} s): it vanished or does not read",
            )
            return
        assert self._next_ping is not None
        if now >= self._next_ping:
            self.ping(now)

    def ping(self, now: float) -> None:
        """Send a Ping now (the next one follows ``ping_interval`` later). A client answers at once,
        and a FrameAck it held (:meth:`ack_frame`) goes with its Pong: a server that must know every
        frame acknowledged (wrsrvd switching compositors) pings instead of waiting for the hold."""
        if self.state is not State.ESTABLISHED:
            return
        self._ping_nonce += 1
        self._pings_out[self._ping_nonce] = now
        # Only recent pings matter for the RTT; forget pongs that never came.
        for old in [n for n in self._pings_out if n < self._ping_nonce - 8]:
            del self._pings_out[old]
        self._enqueue_message(m.Ping(nonce=self._ping_nonce))
        self._next_ping = now + self.config.ping_interval

    # --- closing -----------------------------------------------------------------------------------

    def close(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Close: queue a Close for the peer and emit ConnectionClosed. Queued control messages stay
        ahead of the Close; queued display and input data is dropped."""
        if self.state is State.CLOSED:
            return
        for ch in (m.Channel.DISPLAY, m.Channel.INPUT):
            self._drop_queue(ch)
        self._close(int(code), reason)

    def connection_lost(self, code: int, reason: str) -> None:
        """The transport under this connection ended (QUIC close, timeout). Emits ConnectionClosed."""
        if self.state is not State.CLOSED:
            self._set_closed(ConnectionClosed(int(code), reason, by_peer=True))

    def fail(self, code: ErrorCode, reason: str) -> None:
        """Close because the peer broke the rules (also for transports that detect it): everything
        queued is dropped and only the Close goes out."""
        if self.state is State.CLOSED:
            return
        log.debug("%s closing: %s: %s", self.role, code.name, reason)
        for ch in m.Channel:
            self._drop_queue(ch)
        self._close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        reason = _truncate(reason, MAX_REASON)
        self._enqueue(CLOSE, encode_message(m.Close(code=code, reason=reason)))
        self._set_closed(ConnectionClosed(code, reason, by_peer=False))

    def _closed_by_peer(self, code: int, reason: str) -> None:
        for ch in m.Channel:
            self._drop_queue(ch)
        self._set_closed(ConnectionClosed(code, reason, by_peer=True))

    def _set_closed(self, event: ConnectionClosed) -> None:
        self.state = State.CLOSED
        self.close_event = event
        self._decoders.clear()
        self._events.append(event)

    def _drop_queue(self, ch: m.Channel) -> None:
        self._out.drop(ch)
        if ch is m.Channel.DISPLAY:
            self._ack_hold.held = None

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def established(self) -> bool:
        return self.state is State.ESTABLISHED


def _truncate(text: str, limit: int) -> str:
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."

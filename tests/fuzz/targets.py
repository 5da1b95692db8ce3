"""Fuzz targets: one function per decoder that reads another process's bytes. Each takes any bytes and
checks the decoder's documented contract; a violation is an exception (AssertionError, or whatever
escaped the decoder), which the fuzzer reports with the input that caused it.

The contract, for every target:

- malformed input ends in the documented way: the wire closes with a specific ErrorCode and a reason
  (never INTERNAL_ERROR), the link raises LinkError (a Close {protocol_error, reason}), wrsessd's IPC
  raises its IpcProtocolError (an error {bad_request}), wrsrvd's admin socket answers an error saying
  what was wrong; nothing else escapes, and nothing is logged as an error (a traceback);
- valid input round-trips: what a decoder accepted encodes again and decodes to the same message.

Each input starts with one option byte (which peer, which state, how the stream is cut); seeds.py
writes valid inputs in this format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fuzz import mutate, seeds
from wayray.launcher import protocol as ipc
from wayray.link import protocol as link
from wayray.server import admin
from wayray.wire import (
    ConnectionClosed,
    ErrorCode,
    FrameDecoder,
    HandshakeCompleted,
    HelloParams,
    HelloReceived,
    MessageReceived,
    TokenKind,
    WireConfig,
    WireConnection,
    WireRole,
)
from wayray.wire.messages import Channel
from wayray.wire.protocol import decode_message, encode_body, encode_message, max_body, spec_of

# --- shared checks -------------------------------------------------------------------------------


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_errors = _Errors()


@contextlib.contextmanager
def no_error_logged() -> Iterator[None]:
    """Fail when the code under test logs an error (``log.exception`` is how a caught bug shows)."""
    root = logging.getLogger("wayray")
    root.addHandler(_errors)
    _errors.records.clear()
    try:
        yield
    finally:
        root.removeHandler(_errors)
    if _errors.records:
        r = _errors.records[0]
        detail = logging.Formatter().format(r)
        raise AssertionError(f"logged as an error (a traceback means a bug): {detail}")


def _no_internal_error(text: str) -> None:
    assert "internal error" not in text.lower() and "Traceback" not in text, text


# --- the wire: a WireConnection in every state ---------------------------------------------------

WIRE_STATES = ("server-start", "client-hello-sent", "server-established", "client-established")
#: One record of a wire input: channel, flags (1: the stream ends, 2: time passes), chunk length.
WIRE_RECORD = struct.Struct("<BBH")


def _hello() -> HelloParams:
    return HelloParams(
        token="badge-0123456789abcdef",
        token_kind=TokenKind.BADGE,
        screen_width=1920,
        screen_height=1080,
        keymap="xkb_keymap { };",
    )


def _wire_connection(state: str) -> tuple[WireConnection, list[Any]]:
    """A connection in ``state`` and the events it had on the way there."""
    if state == "server-start":
        return WireConnection(WireRole.SERVER, WireConfig(), now=0.0), []
    cli = WireConnection(WireRole.CLIENT, WireConfig(), now=0.0)
    cli.send_hello(_hello())
    if state == "client-hello-sent":
        cli.data_to_send()
        return cli, []
    srv = WireConnection(WireRole.SERVER, WireConfig(frame_window=3), now=0.0)
    for channel, data in cli.data_to_send():
        srv.receive(channel, data, 0.0)
    _drain(srv)
    srv.accept(session_id="s-1", output_width=1920, output_height=1080, now=0.0)
    for channel, data in srv.data_to_send():
        cli.receive(channel, data, 0.0)
    _drain(cli)
    _drain(srv)
    return (srv if state == "server-established" else cli), []


def _drain(conn: WireConnection) -> list[Any]:
    out = []
    while (ev := conn.next_event()) is not None:
        out.append(ev)
    return out


def _wire_round_trip(channel: Channel, message: Any) -> None:
    spec = spec_of(message)
    assert spec.channel is channel, (spec.name, channel)
    again = decode_message(channel, spec.number, encode_body(message))
    assert again == message, (message, again)


def _check_sent(conn: WireConnection, decoders: dict[int, FrameDecoder]) -> None:
    """What the connection sends is itself valid: complete frames of messages its side may send."""
    for channel, data in conn.data_to_send():
        ch = Channel(channel)
        dec = decoders.setdefault(ch, FrameDecoder(max_body(ch, conn.role)))
        for frame in dec.feed(data):
            decode_message(ch, frame.type, frame.body)


def wire(data: bytes) -> None:
    if not data:
        return
    state = WIRE_STATES[data[0] % len(WIRE_STATES)]
    conn, _ = _wire_connection(state)
    sent: dict[int, FrameDecoder] = {}
    now, pos = 1.0, 1
    with no_error_logged():
        while pos < len(data) and not conn.closed:
            if len(data) - pos >= WIRE_RECORD.size:
                channel, flags, n = WIRE_RECORD.unpack_from(data, pos)
                pos += WIRE_RECORD.size
            else:
                channel, flags, n = Channel.CONTROL, 0, len(data) - pos
            chunk = data[pos : pos + n]
            pos += n
            if flags & 2:
                now += 3.0
                conn.handle_timer(now)
            conn.receive(channel, chunk, now, end=bool(flags & 1))
            for ev in _drain(conn):
                if isinstance(ev, HelloReceived):
                    _wire_round_trip(Channel.CONTROL, ev.hello)
                    # As the front door does: only a connection still open is answered (the rest of
                    # the same chunk may have broken the protocol after a good Hello).
                    if not conn.closed:
                        conn.accept(session_id="s-2", output_width=800, output_height=600, now=now)
                elif isinstance(ev, HandshakeCompleted):
                    _wire_round_trip(Channel.CONTROL, ev.server_hello)
                elif isinstance(ev, MessageReceived):
                    _wire_round_trip(ev.channel, ev.message)
                elif isinstance(ev, ConnectionClosed) and not ev.by_peer:
                    assert ev.code in ErrorCode.__members__.values(), ev
                    assert ev.code != ErrorCode.INTERNAL_ERROR, ev
                    assert ev.reason, ev
            _check_sent(conn, sent)


def wire_seeds() -> list[bytes]:
    """A Hello to a server; a ServerHello and frames to a client; every message to each side."""

    def record(channel: int, frame: bytes, flags: int = 0) -> bytes:
        return WIRE_RECORD.pack(channel, flags, len(frame)) + frame

    cli = WireConnection(WireRole.CLIENT, WireConfig(), now=0.0)
    cli.send_hello(_hello())
    hello = cli.data_to_send()
    srv = WireConnection(WireRole.SERVER, WireConfig(), now=0.0)
    for ch, d in hello:
        srv.receive(ch, d, 0.0)
    _drain(srv)
    srv.accept(session_id="s-1", output_width=1920, output_height=1080, now=0.0)
    server_hello = b"".join(record(ch, d) for ch, d in srv.data_to_send())
    out = [bytes([0]) + b"".join(record(ch, d) for ch, d in hello), bytes([1]) + server_hello]
    for spec, msg in seeds.wire_sent_by(WireRole.SERVER):
        frame = record(spec.channel, encode_message(msg))
        out += [bytes([1]) + server_hello + frame, bytes([3]) + frame]
    client_sends = [record(s.channel, encode_message(m)) for s, m in seeds.wire_sent_by(WireRole.CLIENT)]
    out += [bytes([2]) + frame for frame in client_sends]
    # One side's messages in one stream, with time passing between them (pings, timeouts).
    out.append(bytes([2]) + b"".join(f[:1] + b"\x02" + f[2:] for f in client_sends))
    return out


# --- the link ------------------------------------------------------------------------------------


def _link_options(option: int) -> tuple[link.LinkRole, bool, int]:
    peer = link.LinkRole.COMPOSITOR if option & 1 else link.LinkRole.SERVER
    unregistered = bool(option & 2)  # wrsrvd's limit before a Register is accepted
    step = option >> 2  # bytes per read; 0: the whole stream at once
    return peer, unregistered, step


def link_stream(data: bytes) -> None:
    """wrsrvd's and the compositor's link decoders (:class:`wayray.link.LinkDecoder`)."""
    if not data:
        return
    peer, unregistered, step = _link_options(data[0])
    stream = data[1:]
    decoder = link.LinkDecoder(peer)
    if unregistered:
        decoder.limit(link.MAX_REGISTER_BODY)
    got: list[link.LinkMessage] = []
    with no_error_logged():
        try:
            for i in range(0, len(stream), step or max(1, len(stream))):
                got += decoder.feed(stream[i : i + (step or len(stream))])
            decoder.check_finished()
        except link.LinkError as err:
            assert isinstance(err.reason, str) and err.reason.strip(), repr(err.reason)
            _no_internal_error(err.reason)
        for message in got:
            assert type(message) in {s.cls for s in link.MESSAGES if s.sender is peer}, message
            again = link.LinkDecoder(peer).feed(link.encode(message, peer))
            assert again == [message], (message, again)


def link_seeds() -> list[bytes]:
    out = []
    for sender, message in seeds.link_messages():
        option = (1 if sender is link.LinkRole.COMPOSITOR else 0) | (
            2 if message.__class__ is link.Register else 0
        )
        out.append(bytes([option]) + link.encode(message, sender))
    # A compositor's whole conversation, read 7 bytes at a time.
    conversation = b"".join(
        link.encode(m, s) for s, m in seeds.link_messages() if s is link.LinkRole.COMPOSITOR
    )
    out.append(bytes([1 | 7 << 2]) + conversation)
    return out


def link_names() -> tuple[str, ...]:
    return tuple(sorted({f for s in link.MESSAGES if not s.binary for f in s.cls.__dataclass_fields__}))


# --- wrsessd's IPC: the sans-IO decoder and the daemon's frame reader ---------------------------------

_loop: asyncio.AbstractEventLoop | None = None


def _run(coro: Any) -> Any:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


async def _read_all(
    stream: bytes, max_bytes: int
) -> tuple[list[dict[str, Any]], ipc.IpcProtocolError | None]:
    reader = asyncio.StreamReader(limit=max_bytes + 16)
    reader.feed_data(stream)
    reader.feed_eof()
    out: list[dict[str, Any]] = []
    try:
        while (obj := await ipc.read_message(reader, max_bytes)) is not None:
            out.append(obj)
    except ipc.IpcProtocolError as err:
        return out, err
    return out, None


def launcher_ipc(data: bytes) -> None:
    """wrsessd's IPC: :class:`FrameDecoder` (wrlogin's channel), ``read_message`` (the daemon), parsing.
    Option bit 0: the stream is responses (a client reads them) instead of requests (the daemon)."""
    if not data:
        return
    direction = ipc.Direction.RESPONSE if data[0] & 1 else ipc.Direction.REQUEST
    limit = ipc.MAX_MESSAGE_BYTES if direction is ipc.Direction.RESPONSE else ipc.MAX_REQUEST_BYTES
    stream = data[1:]
    with no_error_logged():
        decoder = ipc.FrameDecoder(limit)
        error: ipc.IpcProtocolError | None = None
        try:
            decoded = decoder.feed(stream)
        except ipc.IpcProtocolError as err:
            decoded, error = [], err
        read, read_error = _run(_read_all(stream, limit))
        # The two readers agree: the same objects, and an error from one is an error from the other
        # (a stream that stops inside a frame is pending for the decoder, an error for the reader).
        if error is None:
            assert repr(decoded) == repr(read), (decoded, read)
            assert (read_error is not None) == (decoder.pending > 0), (read_error, decoder.pending)
        else:
            assert read_error is not None, (error, read)
        for err in (error, read_error):
            if err is not None:
                assert str(err).strip(), repr(err)
                _no_internal_error(str(err))
        for obj in read:
            try:
                message = ipc.parse(obj, direction)
            except ipc.IpcProtocolError as err:
                assert str(err).strip()
                _no_internal_error(str(err))
                continue
            (again,) = ipc.FrameDecoder(ipc.MAX_MESSAGE_BYTES).feed(message.encode())
            assert ipc.parse(again, direction) == message, (message, again)


def launcher_ipc_seeds() -> list[bytes]:
    out = []
    for message in seeds.ipc_messages():
        option = 1 if message.direction is ipc.Direction.RESPONSE else 0
        out.append(bytes([option]) + message.encode())
    requests = [m for m in seeds.ipc_messages() if m.direction is ipc.Direction.REQUEST]
    out.append(bytes([0]) + b"".join(m.encode() for m in requests))
    return out


def ipc_names() -> tuple[str, ...]:
    names = set(ipc.MESSAGES)
    for cls in ipc.MESSAGES.values():
        names |= {name for name, _ in cls.specs()}
    return tuple(sorted(names))


# --- wrsrvd's admin socket ------------------------------------------------------------------------


class _Writer:
    """Just enough of an asyncio.StreamWriter for AdminServer."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.data += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


async def _admin_serve(stream: bytes) -> tuple[bytes, list[dict[str, Any]], bool]:
    handled: list[dict[str, Any]] = []

    async def handler(request: dict[str, Any]) -> dict[str, Any]:
        handled.append(request)
        if request["type"] == "status":
            raise admin.AdminError("a refusal the handler chose")
        return {"type": "answer", "n": len(handled)}

    reader = asyncio.StreamReader(limit=1 << 20)
    reader.feed_data(stream)
    reader.feed_eof()
    writer = _Writer()
    server = admin.AdminServer(Path("/nonexistent/admin.sock"), handler)
    await server._serve(reader, writer)  # type: ignore[arg-type]
    return bytes(writer.data), handled, writer.closed


def _expected_admin_requests(stream: bytes) -> list[dict[str, Any]]:
    """What the handler must be given: each complete frame's JSON object with a string type, up to
    the first frame that is not one."""
    out = []
    frames, _ = mutate.IPC.split(stream)
    for _, body in frames:
        if len(body) > admin.MAX_REQUEST:
            break
        try:
            obj = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            break
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            break
        out.append(obj)
    return out


def admin_socket(data: bytes) -> None:
    """wrsrvd's admin socket: framing, JSON, the answers (the handler is a stand-in; the real one is
    fuzzed through a running wrsrvd in test_sockets.py)."""
    if not data:
        return
    stream = data[1:]
    with no_error_logged():
        out, handled, closed = _run(_admin_serve(stream))
    assert closed, "the connection was left open"
    assert repr(handled) == repr(_expected_admin_requests(stream)), handled
    answers, tail = mutate.IPC.split(out)
    assert not tail, f"a partial answer: {tail[:60]!r}"
    kinds = []
    for _, body in answers:
        answer = json.loads(body)
        assert isinstance(answer, dict) and isinstance(answer.get("type"), str), answer
        kinds.append(answer["type"])
        if answer["type"] == "error":
            assert isinstance(answer.get("description"), str) and answer["description"].strip(), answer
            _no_internal_error(answer["description"])
    # One answer per request handled; at most one more, the error that ended the connection.
    assert len(answers) - len(handled) in (0, 1), (kinds, handled)
    if len(answers) > len(handled):
        assert kinds[-1] == "error", kinds


def admin_seeds() -> list[bytes]:
    frames = [seeds.admin_frame(r) for r in seeds.ADMIN_REQUESTS]
    return [bytes([0]) + f for f in frames] + [bytes([0]) + b"".join(frames)]


def admin_names() -> tuple[str, ...]:
    return ("type", "status", "sessions", "kill", "detach", "screenshot", "session_id", "include_cursor")


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    #: For the JSON-framed protocols: their framing and the names worth putting in messages.
    framing: mutate.Framing | None = None
    names: Callable[[], tuple[str, ...]] | None = None
    #: libFuzzer's -max_len: room for the hostile values of mutate.py.
    max_len: int = 64 * 1024


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("wire", wire, wire_seeds, max_len=16 * 1024),
        Target("link", link_stream, link_seeds, mutate.LINK, link_names),
        Target("launcher_ipc", launcher_ipc, launcher_ipc_seeds, mutate.IPC, ipc_names),
        Target("admin_socket", admin_socket, admin_seeds, mutate.IPC, admin_names),
    )
}

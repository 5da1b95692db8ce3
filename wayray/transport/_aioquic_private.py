"""Every use of aioquic's private attributes, in one place, each covered by tests/transport.

aioquic 1.7.2 (pinned exactly in pyproject.toml) has no public way to (1) make a server request a
client certificate, (2) read the peer's certificate, (3) see how much written stream data is not
yet acknowledged (its writer never pushes back), (4) choose when acknowledgements go out (see
:func:`delay_acks`), or (5) handle one datagram's streams in another order than its frames'
(:func:`stream_data_first`). If an upgrade breaks one of these, the tests in
tests/transport/test_aioquic_hooks.py fail; at run time the hooks fail closed (no certificate means
rejected, unknown buffer state means "full").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aioquic
from aioquic import tls
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import StreamDataReceived
from cryptography import x509

log = logging.getLogger("wayray.transport")

TESTED_AIOQUIC = "1.7.2"
if aioquic.__version__ != TESTED_AIOQUIC:  # pragma: no cover - only with an unpinned install
    log.warning(
        "aioquic %s is installed, WayRay's private hooks were tested with %s: mutual TLS and send "
        "backpressure may not work",
        aioquic.__version__,
        TESTED_AIOQUIC,
    )


def request_client_certificate(quic: QuicConnection) -> None:
    """Make this server connection send a TLS CertificateRequest (before its first packet)."""
    original = quic._initialize

    def _initialize(peer_cid: bytes) -> None:
        original(peer_cid)
        quic.tls._request_client_certificate = True

    quic._initialize = _initialize  # type: ignore[method-assign]


def peer_certificate(quic: QuicConnection) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    """The certificate the peer proved it holds the key for (TLS CertificateVerify), and its chain."""
    tls: Any = getattr(quic, "tls", None)
    if tls is None:
        return None, []
    cert = getattr(tls, "_peer_certificate", None)
    chain = getattr(tls, "_peer_certificate_chain", [])
    return cert, list(chain)


UNKNOWN = 1 << 62


def unacked_stream_bytes(quic: QuicConnection, stream_id: int) -> int:
    """Bytes written to the stream that the peer has not acknowledged yet (aioquic keeps them)."""
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0
    buf = getattr(stream.sender, "_buffer", None)
    return len(buf) if buf is not None else UNKNOWN


# --- acknowledgements ----------------------------------------------------------------------------------
#
# aioquic acknowledges every ack-eliciting packet on its own, 1 ms after it arrived, in an ACK-only
# datagram, even when a packet of ours leaves a moment later (it writes an ACK frame only once it is
# due). A display stream is one frame (one or two datagrams) each way every 16 ms, answered by a frame
# acknowledgement, so that doubled the datagrams: each costs a wake-up and aioquic's per-packet Python
# on both ends. With these hooks an acknowledgement waits up to ``delay`` for a packet of ours to ride
# on (we advertise max_ack_delay 25 ms, aioquic's default, so the peer's loss timers allow for it), but
# goes at once when ``every`` ack-eliciting datagrams wait for it (bulk transfers keep a steady ACK
# clock, as RFC 9000 section 13.2.2 asks).


def delay_acks(quic: QuicConnection, delay: float) -> None:
    """Let acknowledgements wait up to ``delay`` seconds (aioquic's default is 1 ms)."""
    quic._ack_delay = delay


def ack_pending(quic: QuicConnection) -> bool:
    """Whether an acknowledgement of application packets is waiting to be sent."""
    space = quic._spaces.get(tls.Epoch.ONE_RTT)
    return space is not None and space.ack_at is not None


def ack_now(quic: QuicConnection, now: float) -> None:
    """Make a waiting acknowledgement due now: it goes in the next packet built."""
    space = quic._spaces.get(tls.Epoch.ONE_RTT)
    if space is not None and space.ack_at is not None and space.ack_at > now:
        space.ack_at = now


# --- the order of one datagram's streams ----------------------------------------------------------------
#
# aioquic serves the streams it sends on round robin, so a datagram carrying a key and a FrameAck
# (a viewer's held ack rides with its next key) may hold the FrameAck's stream first, and the
# receiver would relay the ack, and the session digest it, before the key. QUIC orders nothing
# across streams; WayRay orders messages only within a channel (docs/protocol.md): the receiver may
# take the input first.


def stream_data_first(quic: QuicConnection, first: Callable[[int], bool]) -> None:
    """Among the stream data events waiting, put those of the streams ``first`` picks ahead of the
    others (each group in its order). Other events (handshake, close) keep their places."""
    events = quic._events
    if len(events) < 2:
        return
    slots = [i for i, ev in enumerate(events) if isinstance(ev, StreamDataReceived)]
    data = [events[i] for i in slots]
    ahead = [ev for ev in data if first(ev.stream_id)]  # type: ignore[attr-defined]
    if not ahead or len(ahead) == len(data) or data[: len(ahead)] == ahead:
        return
    behind = [ev for ev in data if not first(ev.stream_id)]  # type: ignore[attr-defined]
    for i, ev in zip(slots, ahead + behind, strict=True):
        events[i] = ev

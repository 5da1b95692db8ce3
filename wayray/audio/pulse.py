"""A playback stream on the kiosk's sound server through libpulse's own stream API (``pa_stream``), by
ctypes: the few calls the kiosk's player needs, nothing of the protocol re-done here.

Why not ``pacat``: a stream's buffer (its target length, ``tlength``) can then be changed while it
plays (``pa_stream_set_buffer_attr``), where pacat fixes it when it starts, and no pipe and no other
process sit between the jitter buffer and the sink. PipeWire's pulse server speaks the same API.

libpulse runs its own thread (``pa_threaded_mainloop``); the stream asks for sound from it
(:attr:`PulseStream.on_request`, called with the number of bytes wanted) and says when the sink ran dry
(:attr:`PulseStream.on_underflow`). Both are called in that thread with libpulse's lock held: they must
be quick and may call :meth:`write` and :meth:`set_target_ms`. Every other call takes the lock itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from typing import Any

# pa_sample_format_t, pa_context_state_t, pa_stream_state_t, pa_stream_flags_t (pulse/def.h)
_S16LE = 3
_CONTEXT_READY, _CONTEXT_FAILED, _CONTEXT_TERMINATED = 4, 5, 6
_STREAM_READY, _STREAM_FAILED, _STREAM_TERMINATED = 2, 3, 4
_ADJUST_LATENCY = 0x2000
_NOFLAGS = 0
_UINT32_MAX = 0xFFFFFFFF


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [
        ("maxlength", ctypes.c_uint32),
        ("tlength", ctypes.c_uint32),
        ("prebuf", ctypes.c_uint32),
        ("minreq", ctypes.c_uint32),
        ("fragsize", ctypes.c_uint32),
    ]


_StateCb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_RequestCb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_SuccessCb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

_lib: Any = None
_lib_lock = threading.Lock()


class PulseError(Exception):
    """libpulse is missing, or the sound server refused or failed (in libpulse's words)."""


def _library() -> Any:
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        name = ctypes.util.find_library("pulse") or "libpulse.so.0"
        try:
            lib = ctypes.CDLL(name)
        except OSError as err:
            raise PulseError(f"libpulse is not installed ({err}; Debian: apt install libpulse0)") from None
        p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        for fn, res, args in [
            ("pa_threaded_mainloop_new", p, []),
            ("pa_threaded_mainloop_get_api", p, [p]),
            ("pa_threaded_mainloop_start", i, [p]),
            ("pa_threaded_mainloop_stop", None, [p]),
            ("pa_threaded_mainloop_free", None, [p]),
            ("pa_threaded_mainloop_lock", None, [p]),
            ("pa_threaded_mainloop_unlock", None, [p]),
            ("pa_threaded_mainloop_signal", None, [p, i]),
            ("pa_threaded_mainloop_wait", None, [p]),
            ("pa_context_new", p, [p, ctypes.c_char_p]),
            ("pa_context_connect", i, [p, ctypes.c_char_p, i, p]),
            ("pa_context_set_state_callback", None, [p, _StateCb, p]),
            ("pa_context_get_state", i, [p]),
            ("pa_context_errno", i, [p]),
            ("pa_context_disconnect", None, [p]),
            ("pa_context_unref", None, [p]),
            ("pa_strerror", ctypes.c_char_p, [i]),
            ("pa_stream_new", p, [p, ctypes.c_char_p, ctypes.POINTER(_SampleSpec), p]),
            ("pa_stream_set_state_callback", None, [p, _StateCb, p]),
            ("pa_stream_set_write_callback", None, [p, _RequestCb, p]),
            ("pa_stream_set_underflow_callback", None, [p, _StateCb, p]),
            ("pa_stream_connect_playback", i, [p, ctypes.c_char_p, ctypes.POINTER(_BufferAttr), i, p, p]),
            ("pa_stream_get_state", i, [p]),
            ("pa_stream_write", i, [p, ctypes.c_char_p, sz, p, ctypes.c_int64, i]),
            ("pa_stream_set_buffer_attr", p, [p, ctypes.POINTER(_BufferAttr), _SuccessCb, p]),
            ("pa_stream_get_buffer_attr", ctypes.POINTER(_BufferAttr), [p]),
            ("pa_stream_disconnect", i, [p]),
            ("pa_stream_unref", None, [p]),
            ("pa_operation_unref", None, [p]),
        ]:
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        _lib = lib
        return lib


def available() -> bool:
    try:
        _library()
    except PulseError:
        return False
    return True


def _ms_bytes(ms: float, bytes_per_second: int, unit: int) -> int:
    return max(unit, int(ms * bytes_per_second / 1000) // unit * unit)


class PulseStream:
    """One playback stream, 16-bit little-endian PCM at ``rate`` Hz and ``channels`` channels."""

    def __init__(
        self,
        *,
        rate: int,
        channels: int,
        target_ms: int,
        request_ms: int,
        sink: str | None = None,
        client_name: str = "wrclient",
        stream_name: str = "the session's sound",
    ) -> None:
        self._lib = _library()
        self.rate, self.channels = rate, channels
        self._unit = 2 * channels
        self.bytes_per_second = rate * self._unit
        self.target_ms = target_ms
        self.request_ms = request_ms
        self.sink = sink
        self.client_name, self.stream_name = client_name, stream_name
        self.on_request: Callable[[int], None] = lambda n: None
        self.on_underflow: Callable[[], None] = lambda: None
        self._ml: int | None = None
        self._ctx: int | None = None
        self._stream: int | None = None
        self._closed = False  # torn down
        self._close_wanted = False
        self._opening = False
        self._state_lock = threading.Lock()
        # ctypes callbacks must outlive the C side's use of them
        self._cbs = (
            _StateCb(self._context_state),
            _StateCb(self._stream_state),
            _RequestCb(self._request),
            _StateCb(self._underflow),
            _SuccessCb(lambda s, ok, u: None),
        )

    # -- opening and closing (blocking: call from a worker thread) --

    def open(self) -> None:
        """Connect to the sound server and start the stream; raises PulseError with its reason. A
        :meth:`close` meanwhile (from another thread) takes effect when this returns."""
        with self._state_lock:
            if self._close_wanted:
                raise PulseError("closed before it opened")
            self._opening = True
        try:
            self._open()
        finally:
            with self._state_lock:
                self._opening = False
                wanted = self._close_wanted
            if wanted:
                self._teardown()

    def _open(self) -> None:
        lib = self._lib
        self._ml = lib.pa_threaded_mainloop_new()
        if not self._ml:
            raise PulseError("pa_threaded_mainloop_new failed")
        self._ctx = lib.pa_context_new(lib.pa_threaded_mainloop_get_api(self._ml), self.client_name.encode())
        lib.pa_context_set_state_callback(self._ctx, self._cbs[0], None)
        if lib.pa_context_connect(self._ctx, None, _NOFLAGS, None) < 0:
            raise PulseError(self._error())
        if lib.pa_threaded_mainloop_start(self._ml) < 0:
            raise PulseError("cannot start libpulse's thread")
        self._lock()
        try:
            while (state := lib.pa_context_get_state(self._ctx)) != _CONTEXT_READY:
                if state in (_CONTEXT_FAILED, _CONTEXT_TERMINATED):
                    raise PulseError(self._error())
                lib.pa_threaded_mainloop_wait(self._ml)
            spec = _SampleSpec(_S16LE, self.rate, self.channels)
            self._stream = lib.pa_stream_new(self._ctx, self.stream_name.encode(), ctypes.byref(spec), None)
            if not self._stream:
                raise PulseError(self._error())
            lib.pa_stream_set_state_callback(self._stream, self._cbs[1], None)
            lib.pa_stream_set_write_callback(self._stream, self._cbs[2], None)
            lib.pa_stream_set_underflow_callback(self._stream, self._cbs[3], None)
            attr = self._attr(self.target_ms)
            sink = self.sink.encode() if self.sink else None
            flags = _ADJUST_LATENCY
            if lib.pa_stream_connect_playback(self._stream, sink, ctypes.byref(attr), flags, None, None) < 0:
                raise PulseError(self._error())
            while (state := lib.pa_stream_get_state(self._stream)) != _STREAM_READY:
                if state in (_STREAM_FAILED, _STREAM_TERMINATED):
                    raise PulseError(self._error())
                lib.pa_threaded_mainloop_wait(self._ml)
        finally:
            self._unlock()

    def close(self) -> None:
        """End the stream at once (the server drops what it still holds for it) and the connection;
        while :meth:`open` runs in another thread, when it returns."""
        with self._state_lock:
            self._close_wanted = True
            if self._opening:
                return
        self._teardown()

    def _teardown(self) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        lib = self._lib
        if self._ml is None:
            return
        self._lock()
        try:
            if self._stream:
                lib.pa_stream_set_write_callback(self._stream, _RequestCb(), None)
                lib.pa_stream_set_underflow_callback(self._stream, _StateCb(), None)
                lib.pa_stream_set_state_callback(self._stream, _StateCb(), None)
                lib.pa_stream_disconnect(self._stream)
                lib.pa_stream_unref(self._stream)
                self._stream = None
            if self._ctx:
                lib.pa_context_set_state_callback(self._ctx, _StateCb(), None)
                lib.pa_context_disconnect(self._ctx)
                lib.pa_context_unref(self._ctx)
                self._ctx = None
        finally:
            self._unlock()
        lib.pa_threaded_mainloop_stop(self._ml)
        lib.pa_threaded_mainloop_free(self._ml)
        self._ml = None

    # -- while it plays --

    def write(self, data: bytes) -> None:
        """Queue ``data`` (whole samples) after what the stream holds. From :attr:`on_request` only."""
        if self._stream and data:
            self._lib.pa_stream_write(self._stream, data, len(data), None, 0, 0)

    def set_target_ms(self, ms: int) -> None:
        """A new target length for the stream's buffer, taken while it plays. From the callbacks, or
        any thread (the lock is taken then)."""
        self.target_ms = ms
        if not self._stream:
            return
        attr = self._attr(ms)
        op = self._lib.pa_stream_set_buffer_attr(self._stream, ctypes.byref(attr), self._cbs[4], None)
        if op:
            self._lib.pa_operation_unref(op)

    def set_target_ms_locked(self, ms: int) -> None:
        """:meth:`set_target_ms` from outside libpulse's thread."""
        if self._ml is None or self._closed:
            return
        self._lock()
        try:
            self.set_target_ms(ms)
        finally:
            self._unlock()

    def buffer_ms(self) -> int | None:
        """The target length the server granted (ms), None while not playing."""
        if not self._stream or self._closed:
            return None
        self._lock()
        try:
            attr = self._lib.pa_stream_get_buffer_attr(self._stream)
            return None if not attr else attr.contents.tlength * 1000 // self.bytes_per_second
        finally:
            self._unlock()

    @property
    def failed(self) -> bool:
        """The stream or the connection ended on the server's side (it went away)."""
        if not self._stream or self._closed:
            return False
        return self._lib.pa_stream_get_state(self._stream) in (_STREAM_FAILED, _STREAM_TERMINATED)

    # -- libpulse's side --

    def _attr(self, target_ms: int) -> _BufferAttr:
        bps, unit = self.bytes_per_second, self._unit
        return _BufferAttr(
            maxlength=_UINT32_MAX,
            tlength=_ms_bytes(target_ms, bps, unit),
            prebuf=_UINT32_MAX,  # the default: as much as tlength before it plays (again)
            minreq=_ms_bytes(self.request_ms, bps, unit),
            fragsize=_UINT32_MAX,
        )

    def _lock(self) -> None:
        self._lib.pa_threaded_mainloop_lock(self._ml)

    def _unlock(self) -> None:
        self._lib.pa_threaded_mainloop_unlock(self._ml)

    def _error(self) -> str:
        lib = self._lib
        if not self._ctx:
            return "cannot reach the sound server"
        text = lib.pa_strerror(lib.pa_context_errno(self._ctx))
        return text.decode(errors="replace") if text else "the sound server failed"

    def _context_state(self, _c: int, _u: int) -> None:
        self._lib.pa_threaded_mainloop_signal(self._ml, 0)

    def _stream_state(self, _s: int, _u: int) -> None:
        self._lib.pa_threaded_mainloop_signal(self._ml, 0)

    def _request(self, _s: int, nbytes: int, _u: int) -> None:
        self.on_request(nbytes)

    def _underflow(self, _s: int, _u: int) -> None:
        self.on_underflow()

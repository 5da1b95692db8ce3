"""The server side of Wayland over libwayland-server: display, clients, globals, resources, dispatch.

pywayland's own server API cannot dispatch requests (see docs/compositor.md), so this module drives
libwayland directly and uses pywayland only for its generated interface tables
(``pywayland.protocol.*``): the C ``wl_interface`` structs and the typed argument lists.

How a protocol object is written::

    class Region(Resource):
        interface = WlRegion                       # pywayland's generated Interface class

        def add(self, x: int, y: int, w: int, h: int) -> None: ...   # one method per request
        def subtract(self, x: int, y: int, w: int, h: int) -> None: ...
        def destroy(self) -> None: ...             # destructor requests: destroy_resource() follows

    Region(new_id)                                 # new_id: the NewId a request or a bind handed us
    res.post("configure", 640, 480, b"")           # events by name, arguments typed by the table

Argument types, request side: ``int`` (i, u, h), ``float`` (fixed), ``str | None``, ``bytes`` (array),
``NewId`` (n), and for objects our own ``Resource`` or, for objects libwayland implements itself
(``wl_buffer`` from ``wl_shm``), a ``ForeignResource``. File descriptors handed to a request are closed
by the dispatcher once the handler returns: ``os.dup()`` one to keep it. A ``float`` sent in an event
saturates at wl_fixed's range.

Raise ``ProtocolError`` in a handler to post a protocol error; the client is disconnected and everyone
else carries on. Any other exception is a compositor bug: it is logged with its traceback, and the
client gets an ``implementation`` error rather than taking the compositor down.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pywayland import ffi as pw_ffi
from pywayland.protocol_core import ArgumentType, Interface

from wayray.wayland.libwayland import address, ffi, lib

log = logging.getLogger(__name__)

# Argument kinds, in the order of the wire signature letters.
_INT, _UINT, _FIXED, _STRING, _OBJECT, _NEW_ID, _ARRAY, _FD = range(8)
_KIND = {
    ArgumentType.Int: _INT,
    ArgumentType.Uint: _UINT,
    ArgumentType.Fixed: _FIXED,
    ArgumentType.String: _STRING,
    ArgumentType.Object: _OBJECT,
    ArgumentType.NewId: _NEW_ID,
    ArgumentType.Array: _ARRAY,
    ArgumentType.FileDescriptor: _FD,
}


class ProtocolError(Exception):
    """Raised by a request handler: post ``code`` on ``resource`` and disconnect its client."""

    def __init__(self, resource: Resource, code: int, message: str) -> None:
        super().__init__(f"{resource}: error {code}: {message}")
        self.resource = resource
        self.code = int(code)
        self.message = message


_FIXED_MIN, _FIXED_MAX = -(1 << 31), (1 << 31) - 1


def to_fixed(value: float) -> int:
    """``value`` as a wl_fixed_t (24.8), saturated at its range (about +-8388608; NaN is 0): input
    from a viewer may carry any finite double, and an event must not fail on it."""
    scaled = value * 256
    if scaled != scaled:
        return 0
    if scaled >= _FIXED_MAX:
        return _FIXED_MAX
    if scaled <= _FIXED_MIN:
        return _FIXED_MIN
    return round(scaled)


def c_interface(interface: type[Interface]) -> Any:
    """Our ``struct wl_interface *`` for a pywayland Interface class (same memory, our FFI)."""
    return ffi.cast("struct wl_interface *", int(pw_ffi.cast("uintptr_t", interface._ptr)))


@dataclass(frozen=True)
class _Message:
    name: str
    since: int
    kinds: tuple[int, ...]
    nullable: tuple[bool, ...]
    destructor: bool


def _messages(messages: list[Any]) -> tuple[_Message, ...]:
    out = []
    for m in messages:
        kinds = tuple(_KIND[a.argument_type] for a in m.arguments)
        if any(k == _NEW_ID and a.interface is None for k, a in zip(kinds, m.arguments, strict=True)):
            # Only wl_registry.bind has an untyped new_id, and libwayland implements the registry.
            raise TypeError(f"{m.name}: untyped new_id arguments are not supported")
        # The scanner marks destructor requests by making the client stub call self._destroy().
        destructor = "_destroy" in m.py_func.__code__.co_names
        out.append(
            _Message(
                name=m.name,
                since=m.version or 1,
                kinds=kinds,
                nullable=tuple(bool(a.nullable) for a in m.arguments),
                destructor=destructor,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class InterfaceTable:
    """What we need of one pywayland Interface, computed once per interface."""

    name: str
    version: int
    c_interface: Any
    requests: tuple[_Message, ...]
    events: tuple[_Message, ...]
    event_index: dict[str, int]

    @classmethod
    def of(cls, interface: type[Interface]) -> InterfaceTable:
        table = _TABLES.get(interface)
        if table is None:
            events = _messages(interface.events)
            table = cls(
                name=interface.name,
                version=interface.version,
                c_interface=c_interface(interface),
                requests=_messages(interface.requests),
                events=events,
                event_index={e.name: i for i, e in enumerate(events)},
            )
            _TABLES[interface] = table
        return table


_TABLES: dict[type[Interface], InterfaceTable] = {}


class _Listener:
    """A ``struct wl_listener`` whose notify calls a Python function (once, for destroy signals)."""

    _live: ClassVar[dict[int, _Listener]] = {}

    def __init__(self, fn: Callable[[Any], None], *, once: bool = True) -> None:
        self.c = ffi.new("struct wl_listener *")
        self.c.notify = _listener_notify
        self.fn = fn
        self.once = once
        _Listener._live[address(self.c)] = self


@ffi.callback("void(struct wl_listener *, void *)")
def _listener_notify(c_listener: Any, data: Any) -> None:
    key = address(c_listener)
    listener = _Listener._live.get(key)
    if listener is None:
        return
    if listener.once:
        del _Listener._live[key]
    try:
        listener.fn(data)
    except Exception:
        log.exception("error in a libwayland signal handler")


class NewId:
    """An object id a request (or a bind) asked us to create, with the version it gets.

    ``NewId.server_allocated(client, version)`` makes one for an object the server creates itself and
    announces in an event (``wl_data_device.data_offer``).
    """

    __slots__ = ("client", "id", "version")

    def __init__(self, client: Client, id: int, version: int) -> None:
        self.client = client
        self.id = id
        self.version = version

    @classmethod
    def server_allocated(cls, client: Client, version: int) -> NewId:
        return cls(client, 0, version)

    def __repr__(self) -> str:
        return f"NewId({self.client!r}, {self.id}, v{self.version})"


class Client:
    """One connected Wayland client."""

    def __init__(self, display: Display, ptr: Any) -> None:
        self.display = display
        self.ptr = ptr
        pid, uid, gid = ffi.new("int32_t *"), ffi.new("uint32_t *"), ffi.new("uint32_t *")
        lib.wl_client_get_credentials(ptr, pid, uid, gid)
        self.pid: int = pid[0]
        self.uid: int = uid[0]
        self.gid: int = gid[0]
        self.alive = True
        self._destroy_callbacks: list[Callable[[Client], None]] = []
        self._listener = _Listener(self._destroyed)
        lib.wl_client_add_destroy_listener(ptr, self._listener.c)

    def __repr__(self) -> str:
        return f"<client pid {self.pid}>"

    def on_destroy(self, fn: Callable[[Client], None]) -> None:
        """Call ``fn(client)`` when this client disconnects (libwayland then destroys its resources)."""
        self._destroy_callbacks.append(fn)

    def _destroyed(self, _data: Any) -> None:
        self.alive = False
        self.display._clients.pop(address(self.ptr), None)
        log.debug("%r disconnected", self)
        for fn in self._destroy_callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("error while cleaning up after %r", self)

    def post_implementation_error(self, message: str) -> None:
        if self.alive:
            lib.wl_client_post_implementation_error(self.ptr, b"%s", ffi.new("char[]", message.encode()))
            self.display.schedule_flush()

    def post_no_memory(self) -> None:
        if self.alive:
            lib.wl_client_post_no_memory(self.ptr)
            self.display.schedule_flush()

    def object(self, id: int) -> Resource | ForeignResource | None:
        """The client's object ``id`` (None when it has none by that id)."""
        if not self.alive:
            return None
        ptr = lib.wl_client_get_object(self.ptr, id)
        return None if ptr == ffi.NULL else self.display.lookup(ptr)

    def destroy(self) -> None:
        """Disconnect the client now (its resources are destroyed first)."""
        if self.alive:
            lib.wl_client_destroy(self.ptr)


class ForeignResource:
    """A resource libwayland implements itself (``wl_buffer`` from its ``wl_shm``), seen as an argument."""

    def __init__(self, display: Display, ptr: Any) -> None:
        self.display = display
        self.ptr = ptr
        self.interface_name: str = ffi.string(lib.wl_resource_get_class(ptr)).decode()
        self.alive = True
        self._destroy_callbacks: dict[int, Callable[[ForeignResource], None]] = {}
        self._listener = _Listener(self._destroyed)
        lib.wl_resource_add_destroy_listener(ptr, self._listener.c)

    def __repr__(self) -> str:
        state = "" if self.alive else " (destroyed)"
        return f"<{self.interface_name}@{lib.wl_resource_get_id(self.ptr) if self.alive else '?'}{state}>"

    def add_destroy_callback(self, key: object, fn: Callable[[ForeignResource], None]) -> None:
        self._destroy_callbacks[id(key)] = fn

    def remove_destroy_callback(self, key: object) -> None:
        self._destroy_callbacks.pop(id(key), None)

    def _destroyed(self, _data: Any) -> None:
        self.alive = False
        self.display._foreign.pop(address(self.ptr), None)
        callbacks = list(self._destroy_callbacks.values())
        self._destroy_callbacks.clear()
        for fn in callbacks:
            fn(self)

    def post_event(self, opcode: int) -> None:
        """Send an argument-less event (``wl_buffer.release`` is opcode 0)."""
        if self.alive:
            lib.wl_resource_post_event_array(self.ptr, opcode, ffi.NULL)
            self.display.schedule_flush()


class Resource:
    """Base class of every protocol object we implement. Subclasses set ``interface``."""

    interface: ClassVar[type[Interface]]
    _table: ClassVar[InterfaceTable]
    _handlers: ClassVar[tuple[Callable[..., Any], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "interface" in cls.__dict__:
            table = InterfaceTable.of(cls.interface)
            missing = [m.name for m in table.requests if not callable(getattr(cls, m.name, None))]
            if missing:
                raise TypeError(f"{cls.__name__} implements {table.name} but lacks requests {missing}")
            cls._table = table
        elif not hasattr(cls, "_table"):
            return  # a base class with no interface yet
        # The class's functions (a subclass's overrides included), not getattr on the instance: an
        # attribute may share a request's name.
        cls._handlers = tuple(getattr(cls, m.name) for m in cls._table.requests)

    def __init__(self, new_id: NewId) -> None:
        client = new_id.client
        self.client = client
        self.display = client.display
        self.version = new_id.version
        self.alive = False
        ptr = lib.wl_resource_create(client.ptr, self._table.c_interface, new_id.version, new_id.id)
        if ptr == ffi.NULL:
            client.post_no_memory()
            raise MemoryError(f"cannot create {self._table.name} for {client!r}")
        self.ptr = ptr
        self.id: int = lib.wl_resource_get_id(ptr)
        self._handle = ffi.new_handle(self)
        lib.wl_resource_set_dispatcher(ptr, _dispatch, self._handle, self._handle, _resource_destroyed)
        self.display._objects[address(ptr)] = self
        self.alive = True

    def __repr__(self) -> str:
        return f"<{self._table.name}@{self.id}{'' if self.alive else ' (destroyed)'}>"

    # Lifetimes ------------------------------------------------------------------------------------

    def destroy_resource(self) -> None:
        """Destroy the resource (idempotent); ``on_destroy`` runs from libwayland's callback.

        (Not ``destroy``: that is the name of many protocols' destructor request.)
        """
        if self.alive:
            lib.wl_resource_destroy(self.ptr)

    def on_destroy(self) -> None:
        """Hook: the resource is gone (destroyed by a request, by us, or by the client disconnecting)."""

    # Events ---------------------------------------------------------------------------------------

    def supports(self, event: str) -> bool:
        """True when this resource's bound version has ``event``."""
        return self.version >= self._table.events[self._table.event_index[event]].since

    def post(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args``; silently skipped when the bound version predates it."""
        if not self.alive or not self.client.alive:
            return
        opcode = self._table.event_index[event]
        message = self._table.events[opcode]
        if self.version < message.since:
            return
        if len(args) != len(message.kinds):
            raise TypeError(f"{self._table.name}.{event} takes {len(message.kinds)} arguments")
        cargs = ffi.new("union wl_argument[]", max(1, len(args)))
        keep: list[Any] = []
        for i, (kind, value) in enumerate(zip(message.kinds, args, strict=True)):
            slot = cargs[i]
            if kind == _INT or kind == _FD:
                slot.i = value
            elif kind == _UINT:
                slot.u = value
            elif kind == _FIXED:
                slot.f = to_fixed(value)
            elif kind == _STRING:
                if value is None:
                    slot.s = ffi.NULL
                else:
                    s = ffi.new("char[]", value.encode() if isinstance(value, str) else value)
                    keep.append(s)
                    slot.s = s
            elif kind == _OBJECT or kind == _NEW_ID:
                if value is not None and not value.alive:
                    # libwayland would read the freed wl_resource: a compositor bug, never a crash.
                    if not message.nullable[i]:
                        log.warning("not sending %s.%s: it names the destroyed %r", self, event, value)
                        return
                    value = None
                slot.o = ffi.NULL if value is None else ffi.cast("struct wl_object *", value.ptr)
            elif kind == _ARRAY:
                data = bytes(value)
                buf = ffi.new("char[]", max(1, len(data)))
                ffi.memmove(buf, data, len(data))
                arr = ffi.new("struct wl_array *", {"size": len(data), "alloc": len(data), "data": buf})
                keep.append((buf, arr))
                slot.a = arr
        lib.wl_resource_post_event_array(self.ptr, opcode, cargs)
        self.display.schedule_flush()

    def post_error(self, code: int, message: str) -> None:
        """Post a protocol error on this object: the client will be disconnected."""
        if not self.alive or not self.client.alive:
            return
        log.info("protocol error for %r on %r: %s (code %d)", self.client, self, message, code)
        lib.wl_resource_post_error(self.ptr, int(code), b"%s", ffi.new("char[]", message.encode()))
        self.display.schedule_flush()


def _decode(display: Display, res: Resource, message: _Message, cargs: Any) -> tuple[list[Any], list[int]]:
    args: list[Any] = []
    fds: list[int] = []
    for i, kind in enumerate(message.kinds):
        a = cargs[i]
        if kind == _INT:
            args.append(a.i)
        elif kind == _UINT:
            args.append(a.u)
        elif kind == _FIXED:
            args.append(a.f / 256.0)
        elif kind == _OBJECT:
            args.append(None if a.o == ffi.NULL else display.lookup(a.o))
        elif kind == _NEW_ID:
            args.append(NewId(res.client, a.n, res.version))
        elif kind == _STRING:
            args.append(None if a.s == ffi.NULL else ffi.string(a.s).decode("utf-8", "replace"))
        elif kind == _FD:
            fds.append(a.h)
            args.append(a.h)
        else:  # _ARRAY
            arr = a.a
            args.append(ffi.buffer(arr.data, arr.size)[:] if arr.size else b"")
    return args, fds


@ffi.callback("int(const void *, void *, uint32_t, const struct wl_message *, union wl_argument *)")
def _dispatch(impl: Any, _target: Any, opcode: int, _msg: Any, cargs: Any) -> int:
    res: Resource = ffi.from_handle(ffi.cast("void *", impl))
    message = res._table.requests[opcode]
    fds: list[int] = []
    try:
        args, fds = _decode(res.display, res, message, cargs)
        res._handlers[opcode](res, *args)
        if message.destructor:
            res.destroy_resource()
    except ProtocolError as err:
        err.resource.post_error(err.code, err.message)
    except Exception:
        log.exception(
            "compositor bug while handling %s.%s from %r", res._table.name, message.name, res.client
        )
        res.client.post_implementation_error(f"compositor error while handling {message.name}")
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
    return 0


@ffi.callback("void(struct wl_resource *)")
def _resource_destroyed(ptr: Any) -> None:
    res: Resource = ffi.from_handle(lib.wl_resource_get_user_data(ptr))
    res.alive = False
    res.display._objects.pop(address(ptr), None)
    try:
        res.on_destroy()
    except Exception:
        log.exception("error while destroying %r", res)


class Global:
    """A global the registry advertises; ``bind(new_id)`` creates the client's resource."""

    def __init__(
        self, display: Display, interface: type[Interface], version: int, bind: Callable[[NewId], Any]
    ) -> None:
        table = InterfaceTable.of(interface)
        if version > table.version:
            raise ValueError(f"{table.name} v{version} is newer than the protocol table (v{table.version})")
        self.display = display
        self.interface = interface
        self.name = table.name
        self.version = version
        self._bind = bind
        self._handle = ffi.new_handle(self)
        self.ptr = lib.wl_global_create(display.ptr, table.c_interface, version, self._handle, _global_bind)
        if self.ptr == ffi.NULL:
            raise MemoryError(f"wl_global_create failed for {table.name}")
        display._globals.append(self)

    def __repr__(self) -> str:
        return f"<global {self.name} v{self.version}>"

    def destroy(self) -> None:
        if self.ptr is not None:
            lib.wl_global_destroy(self.ptr)
            self.ptr = None
            self.display._globals.remove(self)


@ffi.callback("void(struct wl_client *, void *, uint32_t, uint32_t)")
def _global_bind(c_client: Any, data: Any, version: int, id: int) -> None:
    glob: Global = ffi.from_handle(data)
    client = glob.display.client(c_client)
    try:
        glob._bind(NewId(client, id, version))
    except Exception:
        log.exception("compositor bug while binding %s for %r", glob.name, client)
        client.post_implementation_error(f"compositor error while binding {glob.name}")


class Display:
    """A ``wl_display``: listening socket, globals, clients, and our map of live resources."""

    def __init__(self) -> None:
        self.ptr = lib.wl_display_create()
        if self.ptr == ffi.NULL:
            raise MemoryError("wl_display_create failed")
        self._objects: dict[int, Resource] = {}
        self._foreign: dict[int, ForeignResource] = {}
        self._clients: dict[int, Client] = {}
        self._globals: list[Global] = []
        self._event_loop = lib.wl_display_get_event_loop(self.ptr)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._socket_path: Path | None = None
        self._lock_fd: int | None = None
        self._client_created = _Listener(self._on_client_created, once=False)
        lib.wl_display_add_client_created_listener(self.ptr, self._client_created.c)
        self.client_listeners: list[Callable[[Client], None]] = []

    # Clients and objects --------------------------------------------------------------------------

    def _on_client_created(self, data: Any) -> None:
        client = self.client(ffi.cast("struct wl_client *", data))
        log.debug("%r connected", client)
        for fn in self.client_listeners:
            fn(client)

    def client(self, c_client: Any) -> Client:
        key = address(c_client)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = Client(self, c_client)
        return client

    @property
    def clients(self) -> list[Client]:
        return list(self._clients.values())

    def lookup(self, ptr: Any) -> Resource | ForeignResource:
        """Our Python object for a ``wl_resource *`` (a ForeignResource if libwayland implements it)."""
        key = address(ptr)
        obj = self._objects.get(key)
        if obj is not None:
            return obj
        foreign = self._foreign.get(key)
        if foreign is None:
            foreign = self._foreign[key] = ForeignResource(self, ffi.cast("struct wl_resource *", ptr))
        return foreign

    def objects(self) -> list[Resource]:
        """Every live resource we implement (for tests and leak checks)."""
        return list(self._objects.values())

    def next_serial(self) -> int:
        return int(lib.wl_display_next_serial(self.ptr))

    @property
    def serial(self) -> int:
        return int(lib.wl_display_get_serial(self.ptr))

    # shm ------------------------------------------------------------------------------------------

    def init_shm(self, extra_formats: tuple[int, ...] = ()) -> None:
        """Advertise libwayland's own ``wl_shm`` (ARGB8888 and XRGB8888, plus ``extra_formats``)."""
        if lib.wl_display_init_shm(self.ptr) != 0:
            raise MemoryError("wl_display_init_shm failed")
        for fmt in extra_formats:
            lib.wl_display_add_shm_format(self.ptr, fmt)

    # Socket ---------------------------------------------------------------------------------------

    def add_socket(self, runtime_dir: Path, name: str | None = None) -> str:
        """Listen on ``runtime_dir/name`` (first free ``wayray-N`` when name is None); returns the name.

        Like libwayland's own ``wl_display_add_socket``, a ``NAME.lock`` file guards against two
        compositors sharing a name, and a stale socket left by a dead one is replaced.
        """
        st = runtime_dir.stat()
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{runtime_dir} is not a directory")
        if st.st_mode & 0o077:
            log.warning(
                "%s is readable by other users (mode %o); use a 0700 directory", runtime_dir, st.st_mode
            )
        names = [name] if name else [f"wayray-{i}" for i in range(64)]
        last_error: OSError | None = None
        for candidate in names:
            try:
                self._listen(runtime_dir, candidate)
                return candidate
            except OSError as err:
                last_error = err
        raise OSError(
            last_error.errno if last_error else errno.EADDRINUSE,
            f"cannot listen on a Wayland socket in {runtime_dir}: {last_error}",
        )

    def _listen(self, runtime_dir: Path, name: str) -> None:
        path = runtime_dir / name
        if len(os.fsencode(path)) >= 108:
            raise OSError(errno.ENAMETOOLONG, f"socket path too long: {path}")
        lock_fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o660)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(lock_fd)
            raise OSError(errno.EADDRINUSE, f"{path} is in use by another compositor") from err
        try:
            path.unlink(missing_ok=True)  # stale: we hold the lock, so nobody serves it
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.bind(str(path))
                os.chmod(path, 0o700)
                sock.listen(128)
            except OSError:
                sock.close()
                raise
            fd = sock.detach()
            if lib.wl_display_add_socket_fd(self.ptr, fd) != 0:
                os.close(fd)
                raise OSError(errno.EIO, f"libwayland refused the socket {path}")
        except OSError:
            os.close(lock_fd)
            raise
        self._socket_path = path
        self._lock_fd = lock_fd

    def create_client(self, fd: int) -> Client:
        """A client on ``fd``, a connected socket the display takes (Xwayland's, through WAYLAND_SOCKET)."""
        ptr = lib.wl_client_create(self.ptr, fd)
        if ptr == ffi.NULL:
            os.close(fd)
            raise OSError("wl_client_create failed")
        return self.client(ptr)

    def connect_socketpair(self) -> socket.socket:
        """A client connection without a socket file (tests); returns the client's end."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.create_client(ours.detach())
        return theirs

    # Event loop -----------------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drive libwayland's event loop (an epoll fd) from ``loop``."""
        self._loop = loop
        loop.add_reader(lib.wl_event_loop_get_fd(self._event_loop), self.dispatch)

    def dispatch(self) -> None:
        lib.wl_event_loop_dispatch(self._event_loop, 0)
        # One flush per loop turn (posts schedule it too): each C call lets go of the GIL, and
        # taking it back from the encoder's thread can take a switch interval.
        self.schedule_flush()  # dispatch runs from the loop attach() gave

    def schedule_flush(self) -> None:
        """Flush client buffers soon (once per loop turn however many events were posted)."""
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.ptr is not None:
            lib.wl_display_flush_clients(self.ptr)

    def destroy(self) -> None:
        """Disconnect every client, tear the display down and remove the socket."""
        if self.ptr is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(lib.wl_event_loop_get_fd(self._event_loop))
        lib.wl_display_destroy_clients(self.ptr)
        for glob in list(self._globals):
            glob.destroy()
        lib.wl_display_destroy(self.ptr)
        self.ptr = None
        _Listener._live.pop(address(self._client_created.c), None)
        if self._socket_path is not None:
            self._socket_path.unlink(missing_ok=True)
            Path(f"{self._socket_path}.lock").unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

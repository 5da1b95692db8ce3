"""A small ctypes binding to the system PAM library that can relay a whole conversation.

python-pam and pamela answer only echo-off prompts with one preset password. wrsessd needs more:
every message PAM sends (echo-off and echo-on prompts, info and error text) goes to the greeter and
the greeter's answer comes back, one message at a time, for as many messages as the stack sends. So
this module binds the dozen libpam calls wrsessd uses and lets the caller supply the conversation.

Two PAM families exist, and they differ in ways C code hides behind macros:

* Linux-PAM (Linux, the BSDs through OpenPAM use the same numbers for what we use) and
* Sun PAM (illumos, Solaris): different status numbers, different flag values, and the conversation's
  ``pam_message`` argument is a pointer to an *array of structs* rather than an *array of pointers*
  (OpenSSH's ``PAM_MSG_MEMBER`` macro handles the same trap). With one message the layouts coincide,
  so the bug only shows with multi-message conversations.

Only the Linux-PAM side can be exercised on this project's test machines; the Sun side follows
illumos' ``pam_appl.h`` and is untested here.

Responses handed back to PAM are allocated with the C library's ``calloc``/``strdup`` because PAM
frees them with ``free()``. Python strings holding answers cannot be wiped; the worker process that
holds them is short-lived during authentication, which is the mitigation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wayray.common.libc import libc

log = logging.getLogger(__name__)

SUN_PAM = sys.platform.startswith("sunos")


class Status(enum.Enum):
    """PAM return codes by name; the numbers differ between Linux-PAM and Sun PAM."""

    SUCCESS = "success"
    OPEN_ERR = "open_err"
    SYMBOL_ERR = "symbol_err"
    SERVICE_ERR = "service_err"
    SYSTEM_ERR = "system_err"
    BUF_ERR = "buf_err"
    PERM_DENIED = "perm_denied"
    AUTH_ERR = "auth_err"
    CRED_INSUFFICIENT = "cred_insufficient"
    AUTHINFO_UNAVAIL = "authinfo_unavail"
    USER_UNKNOWN = "user_unknown"
    MAXTRIES = "maxtries"
    NEW_AUTHTOK_REQD = "new_authtok_reqd"
    ACCT_EXPIRED = "acct_expired"
    SESSION_ERR = "session_err"
    CRED_UNAVAIL = "cred_unavail"
    CRED_EXPIRED = "cred_expired"
    CRED_ERR = "cred_err"
    NO_MODULE_DATA = "no_module_data"
    CONV_ERR = "conv_err"
    AUTHTOK_ERR = "authtok_err"
    AUTHTOK_RECOVERY_ERR = "authtok_recovery_err"
    AUTHTOK_LOCK_BUSY = "authtok_lock_busy"
    AUTHTOK_DISABLE_AGING = "authtok_disable_aging"
    TRY_AGAIN = "try_again"
    IGNORE = "ignore"
    ABORT = "abort"
    AUTHTOK_EXPIRED = "authtok_expired"
    MODULE_UNKNOWN = "module_unknown"
    BAD_ITEM = "bad_item"
    CONV_AGAIN = "conv_again"
    INCOMPLETE = "incomplete"
    UNKNOWN = "unknown"


# Linux-PAM: <security/_pam_types.h>. Listed in numeric order, 0..31.
_LINUX_STATUS = [
    Status.SUCCESS, Status.OPEN_ERR, Status.SYMBOL_ERR, Status.SERVICE_ERR, Status.SYSTEM_ERR,
    Status.BUF_ERR, Status.PERM_DENIED, Status.AUTH_ERR, Status.CRED_INSUFFICIENT,
    Status.AUTHINFO_UNAVAIL, Status.USER_UNKNOWN, Status.MAXTRIES, Status.NEW_AUTHTOK_REQD,
    Status.ACCT_EXPIRED, Status.SESSION_ERR, Status.CRED_UNAVAIL, Status.CRED_EXPIRED, Status.CRED_ERR,
    Status.NO_MODULE_DATA, Status.CONV_ERR, Status.AUTHTOK_ERR, Status.AUTHTOK_RECOVERY_ERR,
    Status.AUTHTOK_LOCK_BUSY, Status.AUTHTOK_DISABLE_AGING, Status.TRY_AGAIN, Status.IGNORE, Status.ABORT,
    Status.AUTHTOK_EXPIRED, Status.MODULE_UNKNOWN, Status.BAD_ITEM, Status.CONV_AGAIN, Status.INCOMPLETE,
]  # fmt: skip
# Sun PAM: illumos usr/src/lib/libpam/security/pam_appl.h, numeric order 0..27.
_SUN_STATUS = [
    Status.SUCCESS, Status.OPEN_ERR, Status.SYMBOL_ERR, Status.SERVICE_ERR, Status.SYSTEM_ERR,
    Status.BUF_ERR, Status.CONV_ERR, Status.PERM_DENIED, Status.MAXTRIES, Status.AUTH_ERR,
    Status.NEW_AUTHTOK_REQD, Status.CRED_INSUFFICIENT, Status.AUTHINFO_UNAVAIL, Status.USER_UNKNOWN,
    Status.CRED_UNAVAIL, Status.CRED_EXPIRED, Status.CRED_ERR, Status.ACCT_EXPIRED,
    Status.AUTHTOK_EXPIRED, Status.SESSION_ERR, Status.AUTHTOK_ERR, Status.AUTHTOK_RECOVERY_ERR,
    Status.AUTHTOK_LOCK_BUSY, Status.AUTHTOK_DISABLE_AGING, Status.NO_MODULE_DATA, Status.IGNORE,
    Status.ABORT, Status.TRY_AGAIN,
]  # fmt: skip

_STATUS_BY_NUMBER = dict(enumerate(_SUN_STATUS if SUN_PAM else _LINUX_STATUS))
_NUMBER_BY_STATUS = {status: number for number, status in _STATUS_BY_NUMBER.items()}


def status_from_code(code: int) -> Status:
    return _STATUS_BY_NUMBER.get(code, Status.UNKNOWN)


def code_of(status: Status) -> int:
    return _NUMBER_BY_STATUS[status]


class Flag(enum.IntFlag):
    """Flags for the pam_* calls, with this platform's values."""

    NONE = 0
    SILENT = 0x80000000 if SUN_PAM else 0x8000
    DISALLOW_NULL_AUTHTOK = 0x1
    ESTABLISH_CRED = 0x1 if SUN_PAM else 0x2
    DELETE_CRED = 0x2 if SUN_PAM else 0x4
    REINITIALIZE_CRED = 0x4 if SUN_PAM else 0x8
    REFRESH_CRED = 0x8 if SUN_PAM else 0x10
    CHANGE_EXPIRED_AUTHTOK = 0x4 if SUN_PAM else 0x20


class Item(enum.IntEnum):
    """pam_set_item/pam_get_item item types (the same numbers in both families)."""

    SERVICE = 1
    USER = 2
    TTY = 3
    RHOST = 4
    CONV = 5
    AUTHTOK = 6
    OLDAUTHTOK = 7
    RUSER = 8
    USER_PROMPT = 9


class MessageStyle(enum.IntEnum):
    """What a PAM conversation message is (the same numbers in both families)."""

    PROMPT_ECHO_OFF = 1  # a secret, e.g. "Password: "
    PROMPT_ECHO_ON = 2  # a visible answer, e.g. "login: " or an OTP label
    ERROR_MSG = 3
    TEXT_INFO = 4


@dataclass(frozen=True)
class Message:
    style: MessageStyle
    text: str

    @property
    def is_prompt(self) -> bool:
        return self.style in (MessageStyle.PROMPT_ECHO_OFF, MessageStyle.PROMPT_ECHO_ON)


# The conversation: given one message, return the answer (None for info and error messages, or to
# abort the conversation from a prompt by raising ConversationAborted).
Conversation = Callable[[Message], "str | None"]


class ConversationAborted(Exception):
    """Raised by a conversation function to make PAM's current call fail with PAM_CONV_ERR."""


class PamError(Exception):
    """A PAM call failed. ``status`` is the platform-neutral code, ``message`` pam_strerror's text."""

    def __init__(self, call: str, status: Status, message: str) -> None:
        super().__init__(f"{call}: {message}")
        self.call = call
        self.status = status
        self.message = message


class _PamMessage(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _PamResponse(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("resp_retcode", ctypes.c_int)]


# int conv(int num_msg, const struct pam_message **msg, struct pam_response **resp, void *appdata)
# The second argument is declared as an opaque pointer: its layout depends on the PAM family.
_CONV_FUNC = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p
)


class _PamConv(ctypes.Structure):
    _fields_ = [("conv", _CONV_FUNC), ("appdata_ptr", ctypes.c_void_p)]


def _load_libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    pam_name = ctypes.util.find_library("pam") or ("libpam.so.1" if SUN_PAM else "libpam.so.0")
    return ctypes.CDLL(pam_name, use_errno=True), libc()


_libs: tuple[ctypes.CDLL, ctypes.CDLL] | None = None


def _lib() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """libpam and libc, loaded and prototyped on first use (importing this module loads nothing)."""
    global _libs
    if _libs is None:
        pam, libc = _load_libraries()
        handle_p = ctypes.c_void_p
        pam.pam_start.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(_PamConv),
            ctypes.POINTER(handle_p),
        ]
        pam.pam_start.restype = ctypes.c_int
        for name in (
            "pam_authenticate",
            "pam_acct_mgmt",
            "pam_setcred",
            "pam_open_session",
            "pam_close_session",
            "pam_chauthtok",
            "pam_end",
        ):
            fn = getattr(pam, name)
            fn.argtypes = [handle_p, ctypes.c_int]
            fn.restype = ctypes.c_int
        pam.pam_set_item.argtypes = [handle_p, ctypes.c_int, ctypes.c_void_p]
        pam.pam_set_item.restype = ctypes.c_int
        pam.pam_get_item.argtypes = [handle_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        pam.pam_get_item.restype = ctypes.c_int
        pam.pam_putenv.argtypes = [handle_p, ctypes.c_char_p]
        pam.pam_putenv.restype = ctypes.c_int
        pam.pam_getenvlist.argtypes = [handle_p]
        pam.pam_getenvlist.restype = ctypes.POINTER(ctypes.c_void_p)
        pam.pam_strerror.argtypes = [handle_p, ctypes.c_int]
        pam.pam_strerror.restype = ctypes.c_char_p
        libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
        libc.calloc.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        libc.strdup.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        libc.free.restype = None
        _libs = (pam, libc)
    return _libs


def strerror(status: Status) -> str:
    """PAM's own text for a status (Linux-PAM ignores the handle argument; Sun PAM accepts NULL)."""
    if status is Status.UNKNOWN:
        return "unknown PAM error"
    pam, _ = _lib()
    text = pam.pam_strerror(None, code_of(status))
    return str(text.decode("utf-8", "replace")) if text else status.value


def _decode(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _messages(num_msg: int, msg_arg: int) -> list[Message]:
    """Read the ``pam_message`` argument with this platform's layout."""
    out: list[Message] = []
    if SUN_PAM:
        # Sun: *msg points at an array of num_msg structs.
        array = ctypes.cast(
            ctypes.cast(msg_arg, ctypes.POINTER(ctypes.c_void_p))[0], ctypes.POINTER(_PamMessage)
        )
        items = [array[i] for i in range(num_msg)]
    else:
        # Linux-PAM: msg is an array of num_msg pointers to structs.
        pointers = ctypes.cast(msg_arg, ctypes.POINTER(ctypes.POINTER(_PamMessage)))
        items = [pointers[i].contents for i in range(num_msg)]
    for item in items:
        try:
            style = MessageStyle(item.msg_style)
        except ValueError as err:
            # PAM_RADIO_TYPE, PAM_BINARY_PROMPT and Sun's private types: nothing a greeter can show.
            raise ConversationAborted(f"unsupported PAM message style {item.msg_style}") from err
        out.append(Message(style, _decode(item.msg)))
    return out


class PamHandle:
    """One PAM transaction (``pam_start`` … ``pam_end``) with a caller-supplied conversation.

    Every call raises :class:`PamError` on failure, except :meth:`end`. Use as a context manager, or
    call :meth:`end` yourself; the handle must outlive every call that may converse.
    """

    def __init__(self, service: str, user: str | None, conversation: Conversation) -> None:
        pam, _ = _lib()
        self._conversation = conversation
        self._last_status = Status.SUCCESS
        self._conversation_error: BaseException | None = None
        # Keep the callback object alive as long as PAM may call it.
        self._callback = _CONV_FUNC(self._converse)
        self._conv = _PamConv(self._callback, None)
        self._handle = ctypes.c_void_p()
        code = pam.pam_start(
            service.encode(), user.encode() if user is not None else None, ctypes.byref(self._conv),
            ctypes.byref(self._handle),
        )  # fmt: skip
        if code != 0:
            status = status_from_code(code)
            raise PamError("pam_start", status, f"cannot start PAM service {service!r}: {strerror(status)}")
        self.service = service

    def __enter__(self) -> PamHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    # --- the conversation -------------------------------------------------------------------------

    def _converse(self, num_msg: int, msg_arg: int | None, resp_arg: Any, _appdata: int) -> int:
        """Called by libpam. Must never raise: an exception here would return 0 (success) to PAM."""
        _, libc = _lib()
        conv_err = code_of(Status.CONV_ERR)
        buf_err = code_of(Status.BUF_ERR)
        responses = None
        try:
            if num_msg <= 0 or num_msg > 32 or not msg_arg:
                return conv_err
            messages = _messages(num_msg, msg_arg)
            responses = libc.calloc(num_msg, ctypes.sizeof(_PamResponse))
            if not responses:
                return buf_err
            array = ctypes.cast(responses, ctypes.POINTER(_PamResponse))
            for i, message in enumerate(messages):
                answer = self._conversation(message)
                if message.is_prompt:
                    if answer is None:
                        raise ConversationAborted("no answer to a prompt")
                    copy = libc.strdup(answer.encode())
                    if not copy:
                        raise MemoryError("strdup failed")
                    array[i].resp = copy
            resp_arg[0] = responses
            return 0
        except BaseException as err:  # noqa: BLE001 - see the docstring
            self._conversation_error = err
            if responses:
                array = ctypes.cast(responses, ctypes.POINTER(_PamResponse))
                for i in range(num_msg):
                    if array[i].resp:
                        libc.free(array[i].resp)
                libc.free(responses)
            if not isinstance(err, ConversationAborted):
                log.error("PAM conversation failed: %s", err)
            return buf_err if isinstance(err, MemoryError) else conv_err

    @property
    def conversation_error(self) -> BaseException | None:
        """The exception that made the last conversation fail, if any (for example a cancel)."""
        return self._conversation_error

    # --- calls ------------------------------------------------------------------------------------

    def _check(self, call: str, code: int) -> None:
        status = status_from_code(code)
        self._last_status = status
        if status is not Status.SUCCESS:
            raise PamError(call, status, strerror(status))

    def _call(self, name: str, flags: Flag) -> None:
        pam, _ = _lib()
        if not self._handle:
            raise PamError(name, Status.SYSTEM_ERR, "PAM transaction already ended")
        self._conversation_error = None
        self._check(name, getattr(pam, name)(self._handle, int(flags)))

    def authenticate(self, flags: Flag = Flag.NONE) -> None:
        self._call("pam_authenticate", flags)

    def acct_mgmt(self, flags: Flag = Flag.NONE) -> None:
        self._call("pam_acct_mgmt", flags)

    def chauthtok(self, flags: Flag = Flag.CHANGE_EXPIRED_AUTHTOK) -> None:
        self._call("pam_chauthtok", flags)

    def setcred(self, flags: Flag) -> None:
        self._call("pam_setcred", flags)

    def open_session(self, flags: Flag = Flag.NONE) -> None:
        self._call("pam_open_session", flags)

    def close_session(self, flags: Flag = Flag.NONE) -> None:
        self._call("pam_close_session", flags)

    def set_item(self, item: Item, value: str) -> None:
        pam, _ = _lib()
        if item in (Item.CONV,):
            raise ValueError("the conversation is set by pam_start")
        self._check("pam_set_item", pam.pam_set_item(self._handle, int(item), value.encode()))

    def get_item(self, item: Item) -> str | None:
        """A string item (USER, TTY, RHOST, SERVICE, ...); None when unset."""
        pam, _ = _lib()
        if item in (Item.CONV,):
            raise ValueError("not a string item")
        out = ctypes.c_void_p()
        self._check("pam_get_item", pam.pam_get_item(self._handle, int(item), ctypes.byref(out)))
        if not out.value:
            return None
        return _decode(ctypes.string_at(out.value))

    @property
    def user(self) -> str | None:
        """PAM_USER: the user name after authentication (a module may have asked for it or mapped it)."""
        return self.get_item(Item.USER)

    def putenv(self, name_value: str) -> None:
        pam, _ = _lib()
        self._check("pam_putenv", pam.pam_putenv(self._handle, name_value.encode()))

    def getenvlist(self) -> dict[str, str]:
        """PAM's environment (what pam_env, pam_systemd and our own putenv calls set)."""
        pam, libc = _lib()
        array = pam.pam_getenvlist(self._handle)
        env: dict[str, str] = {}
        if not array:
            return env
        i = 0
        while array[i]:
            entry = _decode(ctypes.string_at(array[i]))
            libc.free(array[i])
            name, sep, value = entry.partition("=")
            if sep:
                env[name] = value
            i += 1
        libc.free(ctypes.cast(array, ctypes.c_void_p))
        return env

    def end(self, status: Status | None = None) -> None:
        """pam_end with the last call's status (modules' cleanup functions see it). Idempotent."""
        if not self._handle:
            return
        pam, _ = _lib()
        final = status if status is not None else self._last_status
        code = code_of(final) if final is not Status.UNKNOWN else code_of(Status.ABORT)
        pam.pam_end(self._handle, code)
        self._handle = ctypes.c_void_p()


def describe(messages: Sequence[Message]) -> str:
    """A one-line summary of messages for debug logs; never includes answers."""
    return "; ".join(f"{m.style.name}:{m.text!r}" for m in messages)

"""The greeter's login conversation as a state machine: keys and wrsessd's answers in, requests out.

No I/O and no drawing: :class:`LoginModel` is told what the person did (:meth:`submit`,
:meth:`escape`, :meth:`key`, :meth:`tab`) and what wrsessd answered (:meth:`on_response`), and
returns the requests to send next, one conversation step at a time. The view draws its fields,
notices and error; the app sends the requests and feeds the answers back.

The conversation follows greetd's: the greeter asks the user name itself, then relays every PAM
message as it comes — any number of prompts (visible or secret) and notices (info or error) — and
starts the session on ``success``. After a wrong password it starts a fresh conversation for the
same name at once, so the next password prompt is already there under the error message.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from wayray.launcher import protocol as p
from wayray.toolkit.seat import Key
from wayray.toolkit.widgets import TextField

Request = p.CreateSession | p.PostAuthMessageResponse | p.StartSession | p.CancelSession

#: Shown when wrsessd cannot be reached.
#: Most keys kept for a question that has not come yet (a long password and a few Enters fit).
TYPEAHEAD_LIMIT = 1024
SERVICE_DOWN = "The login service is not available right now. Please try again in a moment."


class Phase(enum.StrEnum):
    USERNAME = "username"  # typing the user name; no conversation open
    WAITING = "waiting"  # a request is on its way to wrsessd
    PROMPT = "prompt"  # PAM asked something; the person types the answer
    BLOCKED = "blocked"  # too many failed attempts: waiting for the retry time
    DONE = "done"  # the session started (or was unlocked): the greeter exits
    DEAD = "dead"  # this greeter can no longer log anyone in (its ticket is gone)


class NoticeKind(enum.StrEnum):
    INFO = "info"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    text: str


@dataclass(slots=True)
class Prompt:
    label: str
    field: TextField
    answered: bool = False


@dataclass(slots=True)
class LoginModel:
    """The whole visible state of the greeter. ``unlock_user``: re-authentication of that user."""

    ticket: str
    unlock_user: str | None = None
    username: TextField = field(default_factory=lambda: TextField(max_length=256))
    prompts: list[Prompt] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    #: The last failure, shown until the person tries again.
    error: str = ""
    #: Monotonic time at which a rate-limited login may be tried again.
    retry_at: float | None = None
    phase: Phase = Phase.USERNAME
    #: 0: the user name field; n: prompt n-1.
    focus: int = 0
    status: str = ""
    started: p.SessionStarted | None = None
    _cancel_requested: bool = False
    _conversation_open: bool = False
    #: Keys typed while wrsessd had not yet asked its next question (a person types the password
    #: right after the user name's Enter): kept for the prompt that comes, None standing for Enter,
    #: never shown in the field in focus (the user name). Dropped when the attempt ends.
    _typeahead: list[Key | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.unlock_user is not None:
            self.username = TextField(value=self.unlock_user, editable=False)

    # What the view needs --------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return "Unlock session" if self.unlock_user else "Log in"

    def focused_field(self) -> TextField | None:
        if self.focus == 0:
            return self.username if self.username.editable else None
        prompt = self.prompts[self.focus - 1] if self.focus - 1 < len(self.prompts) else None
        return prompt.field if prompt is not None and not prompt.answered else None

    def error_text(self, now: float) -> str:
        if self.phase is Phase.BLOCKED and self.retry_at is not None:
            wait = max(1, math.ceil(self.retry_at - now))
            return f"Too many failed attempts. Try again in {_duration(wait)}."
        return self.error

    # The person -----------------------------------------------------------------------------------

    def start(self) -> list[Request]:
        """What to send when the greeter comes up: an unlock greeter starts its conversation at once."""
        if self.unlock_user is not None:
            return self._begin()
        return []

    def key(self, event: Key) -> bool:
        """An editing key for the focused field; True when something visible changed."""
        if self._awaiting_question():
            if event.pressed and len(self._typeahead) < TYPEAHEAD_LIMIT:
                self._typeahead.append(event)
            return False
        f = self.focused_field()
        if f is None or self.phase in (Phase.DONE, Phase.DEAD):
            return False
        return f.key(event)

    def tab(self, backwards: bool = False) -> bool:
        """Move the focus between the editable fields (the user name and an unanswered prompt)."""
        editable = [0] if self.username.editable else []
        editable += [i + 1 for i, pr in enumerate(self.prompts) if not pr.answered]
        if len(editable) < 2:
            return False
        i = editable.index(self.focus) if self.focus in editable else 0
        self.focus = editable[(i + (-1 if backwards else 1)) % len(editable)]
        return True

    def submit(self, now: float) -> list[Request]:
        """Enter: start a login with the typed name, or answer the prompt in focus."""
        if self._awaiting_question():
            if len(self._typeahead) < TYPEAHEAD_LIMIT:
                self._typeahead.append(None)  # answers the prompt that comes
            return []
        if self.phase in (Phase.DONE, Phase.DEAD, Phase.WAITING):
            return []
        if self.phase is Phase.BLOCKED and self.retry_at is not None and now < self.retry_at:
            return []
        if self.focus == 0:
            if not self.username.value.strip():
                self.error = "Type your user name, then press Enter."
                return []
            self.error = ""
            return self._begin()
        prompt = self.prompts[self.focus - 1]
        if self.phase is not Phase.PROMPT or prompt.answered:
            return []
        answer = prompt.field.value
        prompt.answered = True
        prompt.field.editable = False
        if prompt.field.secret:
            prompt.field.value = "x" * len(answer)  # keep the dots, drop the secret
        self.error = ""
        self.phase = Phase.WAITING
        self.status = "Checking\u2026"
        return [p.PostAuthMessageResponse(response=answer)]

    def escape(self) -> list[Request]:
        """Start over: cancel the conversation, forget what was typed (an unlock greeter asks again)."""
        if self.phase in (Phase.DONE, Phase.DEAD):
            return []
        if self.phase is Phase.WAITING:
            self._cancel_requested = True  # sent when the answer in flight arrives
            return []
        out: list[Request] = [p.CancelSession()] if self._conversation_open else []
        self._reset(keep_name=self.unlock_user is not None)
        self.error = ""
        if self.unlock_user is not None:
            out += self._begin()
        return out

    def tick(self, now: float) -> list[Request]:
        """Time passed: a rate limit may have run out (the conversation starts again by itself)."""
        if self.phase is Phase.BLOCKED and self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            self.error = ""
            if self.username.value:
                return self._begin()
            self.phase = Phase.USERNAME
        return []

    # wrsessd --------------------------------------------------------------------------------------

    def on_response(self, request: Request, response: p.Message, now: float) -> list[Request]:
        """wrsessd answered ``request`` with ``response``: update and say what to send next."""
        if isinstance(request, p.CancelSession):
            return []
        if self._cancel_requested:
            self._cancel_requested = False
            self.phase = Phase.USERNAME
            self._reset(keep_name=self.unlock_user is not None)
            self.error = ""
            out: list[Request] = [p.CancelSession()] if not isinstance(response, p.Error) else []
            self._conversation_open = False
            return out + (self._begin() if self.unlock_user is not None else [])
        if isinstance(response, p.AuthMessage):
            return self._auth_message(response, now)
        if isinstance(response, p.Success):
            if isinstance(request, p.StartSession):
                return []  # not an answer start_session gives; treated as nothing
            self.status = "Starting your session\u2026" if not self.unlock_user else "Unlocking\u2026"
            self.phase = Phase.WAITING
            self._conversation_open = False
            self._typeahead.clear()  # nothing more is asked
            return [p.StartSession()]
        if isinstance(response, p.SessionStarted):
            self.started = response
            self.phase = Phase.DONE
            user = response.session.user
            self.status = f"Welcome back, {user}." if response.resumed else f"Welcome, {user}."
            return []
        if isinstance(response, p.Error):
            return self._failed(response, now)
        self.error = f"Unexpected answer from the login service: {response.type}"
        self.phase = Phase.USERNAME
        return []

    def on_connection_lost(self) -> None:
        """wrsessd could not be reached (or went away mid-login)."""
        self._reset(keep_name=True)
        self.error = SERVICE_DOWN

    # Internals ------------------------------------------------------------------------------------

    def _begin(self) -> list[Request]:
        out: list[Request] = [p.CancelSession()] if self._conversation_open else []
        name = self.username.value.strip()
        self.prompts.clear()
        self.notices.clear()
        self._conversation_open = True
        self._cancel_requested = False
        self.phase = Phase.WAITING
        self.status = "Checking\u2026"
        self.focus = 0
        return out + [p.CreateSession(ticket=self.ticket, username=name or None)]

    def _awaiting_question(self) -> bool:
        """A conversation is open and its next question has not come yet."""
        return self.phase is Phase.WAITING and self._conversation_open and not self._cancel_requested

    def _auth_message(self, msg: p.AuthMessage, now: float) -> list[Request]:
        kind = msg.auth_message_type
        text = msg.auth_message.strip()
        if kind in (p.AuthMessageType.INFO, p.AuthMessageType.ERROR):
            if text:
                self.notices.append(Notice(NoticeKind(kind.value), text))
            return [p.PostAuthMessageResponse()]
        secret = kind is p.AuthMessageType.SECRET
        self.prompts.append(Prompt(text.rstrip(":").strip() or "Answer", TextField(secret=secret)))
        self.focus = len(self.prompts)
        self.phase = Phase.PROMPT
        self.status = ""
        return self._replay_typeahead(now)

    def _replay_typeahead(self, now: float) -> list[Request]:
        """Give the new prompt what was typed before it came, up to and including an Enter."""
        while self._typeahead:
            event = self._typeahead.pop(0)
            if event is None:
                return self.submit(now)  # the rest waits for the next question
            self.key(event)
        return []

    def _failed(self, err: p.Error, now: float) -> list[Request]:
        self._conversation_open = False
        self._typeahead.clear()  # typed for the attempt that failed
        self.status = ""
        kind = err.error_type
        if kind is p.ErrorType.AUTH_ERROR:
            self.error = err.description
            return self._begin()  # the next password prompt comes straight back
        if kind is p.ErrorType.RATE_LIMITED:
            self.error = err.description
            self.retry_at = now + (err.retry_after if err.retry_after is not None else 30.0)
            self.prompts.clear()
            self.phase = Phase.BLOCKED
            self.focus = 0
            return []
        if kind is p.ErrorType.FORBIDDEN:
            self.error = "This login screen can no longer be used. Present your badge again."
            self.phase = Phase.DEAD
            self.prompts.clear()
            return []
        self.error = err.description
        self.phase = Phase.USERNAME
        self.prompts = [pr for pr in self.prompts if pr.answered and not pr.field.secret]
        self.focus = 0
        return []

    def _reset(self, *, keep_name: bool) -> None:
        if not keep_name:
            self.username.clear()
        self.prompts.clear()
        self.notices.clear()
        self.status = ""
        self.focus = 0
        self.phase = Phase.USERNAME
        self.retry_at = None
        self._conversation_open = False
        self._typeahead.clear()


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"

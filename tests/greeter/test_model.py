"""The greeter's conversation model on its own: keys and wrsessd answers in, requests out."""

from __future__ import annotations

import io

from PIL import Image

from tests.ocr import contains, ocr
from wayray.greeter.model import SERVICE_DOWN, LoginModel, NoticeKind, Phase
from wayray.greeter.view import render
from wayray.launcher import protocol as p
from wayray.toolkit.seat import Key, Modifiers
from wayray.toolkit.widgets import Keysym

INFO = p.AuthMessage(auth_message_type=p.AuthMessageType.INFO, auth_message="Welcome")
PASSWORD = p.AuthMessage(auth_message_type=p.AuthMessageType.SECRET, auth_message="Password: ")


def typed(model: LoginModel, text: str) -> None:
    for ch in text:
        model.key(Key(0, True, ord(ch), ch, Modifiers()))


def to_password_prompt(model: LoginModel, name: str = "alice") -> None:
    typed(model, name)
    (create,) = model.submit(0)
    assert create == p.CreateSession(ticket="T", username=name)
    assert model.on_response(create, INFO, 0) == [p.PostAuthMessageResponse()]
    assert model.on_response(p.PostAuthMessageResponse(), PASSWORD, 0) == []
    assert model.phase is Phase.PROMPT and model.focus == 1


def test_a_login_walks_the_conversation_and_starts_the_session() -> None:
    m = LoginModel(ticket="T")
    assert m.start() == [] and m.phase is Phase.USERNAME
    assert m.submit(0) == [] and "user name" in m.error  # nothing typed yet
    to_password_prompt(m)
    assert [(n.kind, n.text) for n in m.notices] == [(NoticeKind.INFO, "Welcome")]
    assert m.prompts[0].label == "Password" and m.prompts[0].field.secret
    typed(m, "s3cret")
    (answer,) = m.submit(0)
    assert answer == p.PostAuthMessageResponse(response="s3cret")
    assert "s3cret" not in m.prompts[0].field.value and len(m.prompts[0].field.value) == 6
    assert m.on_response(answer, p.Success(), 0) == [p.StartSession()]
    info = p.SessionInfo(
        session_id="S1", session_class=p.SessionClass.USER, user="alice", uid=1000, wayland_display="w",
        runtime_dir="/run/user/1000", worker_pid=1, compositor_pid=2, started_at=0.0,
    )  # fmt: skip
    assert m.on_response(p.StartSession(), p.SessionStarted(session=info), 0) == []
    assert m.phase is Phase.DONE and m.status == "Welcome, alice."


def enter(model: LoginModel) -> list[p.Message]:
    return list(model.submit(0))


def test_a_password_typed_before_its_prompt_comes_answers_it_and_is_never_shown() -> None:
    """A person types the user name, Enter, the password, Enter without waiting for the password
    prompt (wrsessd and PAM may take a moment): nothing is lost and the password never appears in
    the user name field."""
    m = LoginModel(ticket="T")
    typed(m, "alice")
    (create,) = enter(m)
    typed(m, "s3cret")
    assert enter(m) == [] and m.username.value == "alice" and m.phase is Phase.WAITING
    assert m.on_response(create, INFO, 0) == [p.PostAuthMessageResponse()]  # an info: still waiting
    answer = m.on_response(p.PostAuthMessageResponse(), PASSWORD, 0)
    assert answer == [p.PostAuthMessageResponse(response="s3cret")]
    assert m.username.value == "alice" and "s3cret" not in m.prompts[0].field.value
    assert m.phase is Phase.WAITING


def test_type_ahead_stops_at_each_enter_and_ends_with_a_failed_attempt() -> None:
    m = LoginModel(ticket="T")
    typed(m, "alice")
    (create,) = enter(m)
    typed(m, "123456")
    enter(m)
    typed(m, "wrong")  # for a second question, or a mistake: kept only for this attempt
    otp = p.AuthMessage(auth_message_type=p.AuthMessageType.SECRET, auth_message="Verification code:")
    assert m.on_response(create, otp, 0) == [p.PostAuthMessageResponse(response="123456")]
    error = p.Error(error_type=p.ErrorType.AUTH_ERROR, description="Login incorrect")
    retry = m.on_response(p.PostAuthMessageResponse(response="123456"), error, 0)
    assert retry == [p.CreateSession(ticket="T", username="alice")]
    assert m.on_response(retry[0], PASSWORD, 0) == []  # what was typed ahead went with the failure
    assert m.prompts[0].field.value == "" and m.phase is Phase.PROMPT


def test_a_wrong_password_shows_the_error_and_asks_again_at_once() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m)
    typed(m, "wrong")
    (answer,) = m.submit(0)
    error = p.Error(
        error_type=p.ErrorType.AUTH_ERROR, description="Login incorrect: wrong user name or password."
    )
    assert m.on_response(answer, error, 0) == [p.CreateSession(ticket="T", username="alice")]
    assert m.error.startswith("Login incorrect") and m.prompts == []
    m.on_response(p.CreateSession(ticket="T", username="alice"), PASSWORD, 0)
    assert m.error.startswith("Login incorrect"), "the error stays until the next attempt"
    typed(m, "right")
    m.submit(0)
    assert m.error == ""


def test_rate_limited_counts_down_then_starts_again() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m)
    typed(m, "wrong")
    (answer,) = m.submit(100.0)
    limited = p.Error(error_type=p.ErrorType.RATE_LIMITED, description="Too many", retry_after=150.0)
    assert m.on_response(answer, limited, 100.0) == []
    assert m.phase is Phase.BLOCKED
    assert m.error_text(100.0) == "Too many failed attempts. Try again in 2 min 30 s."
    assert m.error_text(249.2) == "Too many failed attempts. Try again in 1 s."
    assert m.error_text(160.0) == "Too many failed attempts. Try again in 90 s."
    assert m.submit(150.0) == [], "Enter does nothing while blocked"
    assert m.tick(150.0) == []
    assert m.tick(250.0) == [p.CreateSession(ticket="T", username="alice")]
    assert m.error == "" and m.phase is Phase.WAITING


def test_escape_cancels_and_forgets_everything() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m)
    typed(m, "half")
    assert m.escape() == [p.CancelSession()]
    assert (m.phase, m.username.value, m.prompts, m.notices) == (Phase.USERNAME, "", [], [])
    # Escape while a request is in flight: cancelled once the answer arrives.
    typed(m, "bob")
    (create,) = m.submit(0)
    assert m.escape() == []
    assert m.on_response(create, INFO, 0) == [p.CancelSession()]
    assert m.phase is Phase.USERNAME and m.username.value == ""


def test_a_new_name_while_a_prompt_waits_restarts_the_conversation() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m, "alcie")
    assert m.tab() and m.focus == 0
    m.key(Key(0, True, Keysym.BackSpace, "", Modifiers(ctrl=True)))
    typed(m, "alice")
    assert m.username.value == "alice"
    assert m.submit(0) == [p.CancelSession(), p.CreateSession(ticket="T", username="alice")]


def test_unlock_mode_fixes_the_name_and_starts_by_itself() -> None:
    m = LoginModel(ticket="T", unlock_user="carol")
    assert m.title == "Unlock session"
    assert m.start() == [p.CreateSession(ticket="T", username="carol")]
    typed(m, "x")
    assert m.username.value == "carol", "the name cannot be edited"
    m.on_response(p.CreateSession(ticket="T", username="carol"), PASSWORD, 0)
    assert m.escape() == [p.CancelSession(), p.CreateSession(ticket="T", username="carol")]


def test_errors_that_end_this_greeter_or_the_connection() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m)
    typed(m, "pw")
    (answer,) = m.submit(0)
    m.on_response(answer, p.Error(error_type=p.ErrorType.FORBIDDEN, description="used ticket"), 0)
    assert m.phase is Phase.DEAD and "Present your badge again" in m.error
    assert m.submit(0) == [] and m.escape() == []
    m2 = LoginModel(ticket="T")
    to_password_prompt(m2)
    m2.on_connection_lost()
    assert m2.phase is Phase.USERNAME and m2.error == SERVICE_DOWN and m2.username.value == "alice"
    expired = p.Error(error_type=p.ErrorType.ACCOUNT_ERROR, description="Your account has expired.")
    typed(m2, "")
    (create,) = m2.submit(0)
    assert m2.on_response(create, expired, 0) == []
    assert m2.phase is Phase.USERNAME and m2.error == "Your account has expired."


def test_a_long_conversation_keeps_the_open_prompt_and_the_error_on_a_small_screen() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m)
    for i in range(8):
        typed(m, "x")
        (answer,) = m.submit(0)
        prompt = p.AuthMessage(auth_message_type=p.AuthMessageType.SECRET, auth_message=f"Code {i}: ")
        m.on_response(answer, prompt, 0)
    m.error = "Something went wrong"
    image = Image.new("RGBA", (800, 480))
    fields = render(m, image, 0.0, host="test")
    assert all(y + h <= 480 for (_x, y, _w, h), _focus in fields)
    assert fields[-1][1] == 9  # the open prompt, clickable
    png = io.BytesIO()
    image.save(png, "PNG")
    text = ocr(png.getvalue())
    assert contains(text, "Code 7") and contains(text, "Something went wrong"), text


def test_visible_prompts_show_what_is_typed_and_secret_ones_do_not() -> None:
    m = LoginModel(ticket="T")
    to_password_prompt(m)
    typed(m, "hunter2")
    (answer,) = m.submit(0)
    otp = p.AuthMessage(auth_message_type=p.AuthMessageType.VISIBLE, auth_message="Verification code:")
    m.on_response(answer, otp, 0)
    assert m.prompts[1].label == "Verification code" and not m.prompts[1].field.secret
    typed(m, "493 116")
    image = Image.new("RGBA", (1280, 720))
    fields = render(m, image, 0.0, host="test")
    png = io.BytesIO()
    image.save(png, "PNG")
    text = ocr(png.getvalue())
    assert contains(text, "Verification code") and not contains(text, "hunter2", edits=0), text
    (x, y, w, h), focus = fields[-1]
    assert focus == 2
    inside = (x + 6, y + 6, x + w - 6, y + h - 6)  # the field's text without its frame, read alone
    assert contains(ocr(png.getvalue(), box=inside), "493 116")
    (code,) = m.submit(0)
    assert code == p.PostAuthMessageResponse(response="493 116")

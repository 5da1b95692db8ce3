"""The IPC table, framing and validation (sans-IO: no sockets), and the docs generated from it."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import REPO
from wayray.launcher import protocol as p

SESSION = p.SessionInfo(
    session_id="abc123",
    session_class=p.SessionClass.USER,
    user="alice",
    uid=1000,
    token="3f9a",
    token_kind="badge",
    rhost="10.0.0.7",
    wayland_display="wayland-wr-abc123",
    runtime_dir="/run/user/1000",
    worker_pid=10,
    compositor_pid=11,
    started_at=1700000000.5,
)

EXAMPLES: list[p.Message] = [
    p.CreateSession(username="alice", token="3f9a", token_kind="badge", rhost="kiosk-1"),
    p.CreateSession(ticket="T0k3n_-x"),
    p.PostAuthMessageResponse(response="hunter2"),
    p.PostAuthMessageResponse(),
    p.StartSession(env=("A=b", "C="), cmd=("/usr/bin/foo", "--bar")),
    p.CancelSession(),
    p.CreateGreeterSession(token="3f9a", token_kind="terminal", unlock_session="abc123"),
    p.ListSessions(),
    p.KillSession(session_id="abc123", reason=p.EndReason.LOGOUT),
    p.Subscribe(),
    p.Success(),
    p.Error(error_type=p.ErrorType.RATE_LIMITED, description="wait", retry_after=30.0),
    p.AuthMessage(auth_message_type=p.AuthMessageType.SECRET, auth_message="Password: "),
    p.SessionStarted(session=SESSION, resumed=True),
    p.SessionList(sessions=(SESSION, SESSION)),
    p.SessionEvent(event=p.SessionEventKind.ENDED, session=SESSION, reason=p.EndReason.POLICY),
]


def test_every_message_has_an_example() -> None:
    assert {type(m).type for m in EXAMPLES} == set(p.MESSAGES)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.type)
def test_round_trip(msg: p.Message) -> None:
    (obj,) = p.FrameDecoder().feed(msg.encode())
    assert p.parse(obj, msg.direction) == msg


def test_greetd_compatible_shapes() -> None:
    """A greetd greeter's messages are accepted as they are (greetd's names and field names)."""
    assert (
        p.parse_request({"type": "post_auth_message_response", "response": None})
        == p.PostAuthMessageResponse()
    )
    assert p.parse_request({"type": "cancel_session"}) == p.CancelSession()
    assert p.AuthMessage(auth_message_type=p.AuthMessageType.VISIBLE, auth_message="OTP:").to_json() == {
        "type": "auth_message",
        "auth_message_type": "visible",
        "auth_message": "OTP:",
    }
    assert p.Error(error_type=p.ErrorType.AUTH_ERROR, description="x").to_json() == {
        "type": "error",
        "error_type": "auth_error",
        "description": "x",
    }


def test_framing_is_native_u32_length_then_json() -> None:
    data = p.Success().encode()
    assert data == struct.pack("=I", len(b'{"type":"success"}')) + b'{"type":"success"}'


@given(st.lists(st.integers(1, 7), min_size=1, max_size=40))
def test_decoder_reassembles_any_split(cuts: list[int]) -> None:
    stream = b"".join(m.encode() for m in EXAMPLES)
    decoder = p.FrameDecoder()
    out = []
    pos = 0
    for i, cut in enumerate(cuts * 1000):
        if pos >= len(stream):
            break
        out.extend(decoder.feed(stream[pos : pos + cut * (i % 13 + 1)]))
        pos += cut * (i % 13 + 1)
    assert [o["type"] for o in out] == [m.type for m in EXAMPLES]
    assert decoder.pending == 0


def _frame(body: bytes) -> bytes:
    return struct.pack("=I", len(body)) + body


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (struct.pack("=I", p.MAX_MESSAGE_BYTES + 1), "exceeds"),
        (struct.pack("=I", 3) + b"\xff\xfe{", "not valid UTF-8"),
        (struct.pack("=I", 4) + b"null", "not a JSON object"),
        (struct.pack("=I", 13) + b'{"type": 42 }', 'no string "type"'),
        (_frame(b'{"a":' + b"9" * 5000 + b"}"), "message has a number of 5000 digits"),
        (_frame(b'{"a": NaN}'), "message has NaN"),
        (_frame(b'{"a":"\\ud800"}'), "message has a lone surrogate (\\ud800)"),
        (_frame(b'{"\\udfff":"value"}'), "message has a lone surrogate (\\udfff)"),
    ],
)
def test_bad_frames(frame: bytes, message: str) -> None:
    with pytest.raises(p.IpcProtocolError, match=re.escape(message)):
        p.FrameDecoder().feed(frame)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "nope"}, "unknown request type 'nope'"),
        ({"type": "success"}, "unknown request type"),  # a response is not a request
        ({"type": "kill_session"}, "field 'session_id' is required"),
        ({"type": "kill_session", "session_id": "a", "reason": "bored"}, "must be one of logout"),
        ({"type": "kill_session", "session_id": "../etc"}, "does not match"),
        ({"type": "create_session", "username": ["a"]}, "must be a string, not list"),
        ({"type": "create_session", "username": ""}, "must not be empty"),
        ({"type": "create_session", "username": "x" * 300}, "longer than 256"),
        ({"type": "create_session", "username": "root\n"}, "does not match"),
        ({"type": "create_session", "sneaky": 1}, "unknown field 'sneaky'"),
        ({"type": "post_auth_message_response", "response": "a\0b"}, "NUL"),
        ({"type": "start_session", "env": "A=b"}, "must be a list"),
        ({"type": "start_session", "env": ["A=b"] * 65}, "more than 64"),
        ({"type": "start_session", "env": ["=b"]}, "item 0: does not match"),
        ({"type": "start_session", "env": ["A=b\nC=d"]}, "does not match"),
        ({"type": "start_session", "cmd": [1]}, "item 0: must be a string"),
    ],
)
def test_request_validation(obj: dict[str, object], message: str) -> None:
    with pytest.raises(p.IpcProtocolError, match=re.escape(message)):
        p.parse_request(obj)


def test_roles_of_requests() -> None:
    greeter_ok = {t for t, cls in p.MESSAGES.items() if p.PeerRole.GREETER in cls.roles}
    assert greeter_ok == {"create_session", "post_auth_message_response", "start_session", "cancel_session"}
    control_ok = {t for t, cls in p.MESSAGES.items() if p.PeerRole.CONTROL in cls.roles}
    assert control_ok == {t for t, cls in p.MESSAGES.items() if cls.direction is p.Direction.REQUEST}


def test_docs_reference_matches_the_code() -> None:
    doc = (REPO / "docs" / "launcher.md").read_text()
    begin = "<!-- BEGIN GENERATED: python -m wayray.launcher.protocol -->\n"
    end = "<!-- END GENERATED -->"
    generated = doc[doc.index(begin) + len(begin) : doc.index(end)]
    assert generated == p.markdown_reference(), "docs/launcher.md is stale: regenerate section 4"
    for type_, cls in p.MESSAGES.items():
        assert f"#### `{type_}`" in generated
        for name, _ in cls.specs():
            assert f"| `{name}` |" in generated

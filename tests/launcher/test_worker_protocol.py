"""The channel between wrsessd and its session workers (sans-IO): every message round-trips through
the framing, what is not valid is refused with a reason, and docs/launcher.md §5 is generated from it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from wayray.launcher import protocol as p
from wayray.launcher import worker_protocol as wp

JOB = wp.WorkerJob(
    session_id="abc123",
    session_class=p.SessionClass.USER,
    service="wayray",
    user=None,
    authenticate=True,
    open_session=True,
    rhost="10.0.0.7",
    pam_tty=None,
    token="3f9a",
    token_kind="badge",
    allow_password_change=False,
    compositor=("/usr/bin/python3", "-m", "wayray.server", "session", "--name", "{wayland_display}"),
    components=(
        wp.JobComponent(name="wm", argv=("labwc", "")),
        wp.JobComponent(name="autostart[0]", argv=("foot",)),
    ),
    read_user_session_file=True,
    user_session_file="wayray/session.toml",
    runtime_dir_base="/run/wayray/users",
    state_dir="/var/lib/wayray/wrsessd",
    default_path="/usr/local/bin:/usr/bin:/bin",
    umask=0o022,
    compositor_start_timeout_s=30.0,
    stop_timeout_s=10.0,
    session_defaults={"wm": ["labwc"], "autostart": [["foot"]], "environment": {"LANG": "de_DE.UTF-8"}},
)
INFO = p.SessionInfo(
    session_id="abc123",
    session_class=p.SessionClass.USER,
    user="alice",
    uid=1000,
    wayland_display="wayland-wr-abc123",
    runtime_dir="/run/user/1000",
    worker_pid=4242,
    compositor_pid=4243,
    started_at=1700000000.5,
)

EXAMPLES: list[wp.Message] = [
    wp.Begin(job=JOB),
    wp.Answer(response="secret"),
    wp.Answer(),
    wp.Cancel(),
    wp.Finish(),
    wp.Start(env=("WAYRAY_LINK=/run/wayray/lab/link.sock",), replaces="def456", memory_max=1 << 30,
             cpu_quota=150),
    wp.Start(cmd=("foot", ""), greeter_env={"WAYRAY_SESSD_SOCK": "/run/wayray/wrsessd.sock"}),
    wp.Stop(reason=p.EndReason.OPERATOR),
    wp.Prompt(style=p.AuthMessageType.VISIBLE, text="login:"),
    wp.Prompt(style=p.AuthMessageType.SECRET, text="", user="alice"),
    wp.AuthOk(user="alice", uid=1000),
    wp.AuthFailed(error_type=p.ErrorType.AUTH_ERROR, message="Login incorrect.", status="auth_err",
                  user="bob"),
    wp.StartFailed(message="cannot start the session compositor 'nope': No such file or directory"),
    wp.Started(session=INFO),
    wp.Ended(reason=p.EndReason.COMPOSITOR_EXITED),
]  # fmt: skip


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_every_message_round_trips(message: wp.Message) -> None:
    (obj,) = p.FrameDecoder(p.MAX_MESSAGE_BYTES).feed(message.encode())
    assert wp.parse(obj, message.direction) == message


def test_every_message_is_in_the_examples() -> None:
    assert {type(m) for m in EXAMPLES} == set(wp.CHANNEL.messages())


@pytest.mark.parametrize(
    ("obj", "direction", "reason"),
    [
        ({"type": "started"}, wp.TO_WORKER, "unknown request type 'started'"),  # goes the other way
        ({"type": "begin", "job": {}}, wp.TO_WORKER, "field 'job': field 'session_id' is required"),
        ({"type": "stop", "reason": "bored"}, wp.TO_WORKER, "must be one of logout"),
        ({"type": "start", "env": ["no equals sign"]}, wp.TO_WORKER, "item 0: does not match"),
        ({"type": "start", "greeter_env": {"A": 1}}, wp.TO_WORKER, "entry 'A': must be a string, not int"),
        ({"type": "prompt", "style": "visible"}, wp.FROM_WORKER, "field 'text' is required"),
        ({"type": "auth_ok", "user": "alice", "uid": "0"}, wp.FROM_WORKER, "must be an integer, not str"),
        ({"type": "ended", "reason": "logout", "extra": 1}, wp.FROM_WORKER, "unknown field 'extra'"),
    ],
)
def test_what_is_not_valid_is_refused_with_a_reason(
    obj: dict[str, object], direction: wp.Direction, reason: str
) -> None:
    with pytest.raises(p.IpcProtocolError, match=re.escape(reason)):
        wp.parse(obj, direction)


def test_docs_reference_matches_the_code() -> None:
    doc = (REPO / "docs" / "launcher.md").read_text()
    begin = "<!-- BEGIN GENERATED: python -m wayray.launcher.worker_protocol -->\n"
    start = doc.index(begin) + len(begin)
    generated = doc[start : doc.index("<!-- END GENERATED -->", start)]
    assert generated == wp.markdown_reference(), "docs/launcher.md is stale: regenerate §5's reference"

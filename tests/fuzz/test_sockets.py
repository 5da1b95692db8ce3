"""A real wrsrvd, its link and admin sockets fed hostile messages made by Hypothesis from valid ones:
every one gets an answer that says what was wrong (or a real answer), never "internal error"; its log
has no traceback; the session it serves keeps its compositor and its link.

The sans-IO decoders behind these sockets are fuzzed coverage-guided in test_fuzz.py; this tier checks
what runs behind them (wrsrvd's registration and admin handlers), which only a running wrsrvd has.
The number of examples is fixed (WAYRAY_FUZZ_RUNS raises it), and they are the same on every run
unless it is set.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.e2e.harness import Harness, failure
from tests.fuzz.mutate import HOSTILE
from wayray.link import LINK_VERSION, Close, CloseCode, LinkDecoder, LinkRole, Welcome
from wayray.server.admin import MAX_REQUEST

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

RUNS = os.environ.get("WAYRAY_FUZZ_RUNS")
EXAMPLES = max(150, int(RUNS) // 100) if RUNS and int(RUNS) > 0 else 150
FUZZ = settings(max_examples=EXAMPLES, derandomize=not RUNS, database=None)

#: JSON text for a value: hostile ones, and ordinary values of every JSON type.
json_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers().map(str),
    st.floats().map(json.dumps),
    st.text(max_size=40).map(json.dumps),
    st.sampled_from(["true", "false", "null", "[]", "{}", '"both"', '["clipboard"]']),
)


def _object(fields: dict[str, str]) -> bytes:
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}").encode(
        "utf-8", "surrogatepass"
    )


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, str], names: list[str]) -> bytes:
    """``valid`` (field -> JSON text) with one to three fields replaced, dropped or added."""
    fields = dict(valid)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if op == "add" or not fields:
            fields[draw(st.sampled_from([*names, "sneaky", ""]))] = draw(json_text)
        elif op == "drop":
            del fields[draw(st.sampled_from(sorted(fields)))]
        else:
            fields[draw(st.sampled_from(sorted(fields)))] = draw(json_text)
    return _object(fields)


def _exchange(path: Path, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything the other side sent until it closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(path))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it read everything: what it said is still to be read
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    return got


def _no_internal_error(reason: str) -> None:
    assert "internal error" not in reason.lower(), reason


def test_link_and_admin_sockets_answer_hostile_messages_with_reasons(harness: Harness) -> None:
    srv = harness.server(["foot", "--window-size-chars=80x24", "sh"])
    shown = harness.run_client(srv, "--snapshot", str(harness.tmp / "before.png"))
    assert shown.returncode == 0, failure(shown)
    session = srv.session()
    link = srv.runtime / "link.sock"
    admin = srv.runtime / "admin.sock"

    register = {
        "link_version": str(LINK_VERSION),
        "session_id": json.dumps(session["id"]),
        "secret": json.dumps("a guess"),
        "pid": "4242",
        "wayland_display": '"wayland-x"',
        "width": "640",
        "height": "480",
        "scale_120": "120",
    }

    @FUZZ
    @given(mutated(register, ["attach_id", "code", "reason", "nonce"]), st.sampled_from([1, 1, 1, 4, 6, 15]))
    def link_register(body: bytes, number: int) -> None:
        answer = LinkDecoder(LinkRole.SERVER).feed(
            _exchange(link, struct.pack("<IH", len(body), number) + body)
        )
        assert len(answer) == 1, answer
        (close,) = answer
        # A guessed secret is never welcome, whatever else the message holds.
        assert not isinstance(close, Welcome), body
        assert isinstance(close, Close), close
        assert close.code in (CloseCode.PROTOCOL_ERROR, CloseCode.BAD_SECRET, CloseCode.VERSION,
                              CloseCode.UNKNOWN_SESSION), close  # fmt: skip
        assert close.reason.strip(), close
        _no_internal_error(close.reason)

    link_register()

    # Never the live session's id with "kill": that is a request to end it, and it would be obeyed.
    ids = st.one_of(json_text, st.just(json.dumps("no-such-session")))
    requests = st.one_of(
        mutated({"type": '"status"'}, ["session_id", "include_cursor"]),
        mutated({"type": '"sessions"'}, ["session_id"]),
        st.builds(
            lambda kind, sid: _object({"type": kind, "session_id": sid}),
            st.sampled_from(['"kill"', '"detach"']),
            ids,
        ),  # fmt: skip
        mutated({"type": '"detach"', "session_id": json.dumps(session["id"])}, ["include_cursor"]),
        mutated(
            {"type": '"screenshot"', "session_id": json.dumps(session["id"]), "include_cursor": "false"},
            ["type"],
        ),  # fmt: skip
        json_text.map(str.encode),
    )

    @FUZZ
    @given(requests)
    def admin_request(body: bytes) -> None:
        if _kills(body, session["id"]):
            return
        frame = struct.pack("=I", len(body)) + body
        raw = _exchange(admin, frame)
        (length,) = struct.unpack("=I", raw[:4])
        answer: dict[str, Any] = json.loads(raw[4 : 4 + length])
        assert answer.get("type") in ("status", "sessions", "detached", "screenshot", "error"), answer
        if answer["type"] == "error":
            assert str(answer.get("description", "")).strip(), answer
            _no_internal_error(answer["description"])

    admin_request()

    log = srv.log_text()
    assert "Traceback" not in log, log[-4000:]
    assert "internal error" not in log, log[-4000:]
    after = srv.session()
    assert after["id"] == session["id"] and after["linked"] and after["pid"] == session["pid"], after
    again = harness.run_client(srv, "--snapshot", str(harness.tmp / "after.png"))
    assert again.returncode == 0, failure(again)


def _kills(body: bytes, session_id: str) -> bool:
    """Whether ``body`` is a kill request for the live session (the mutations may make one)."""
    if len(body) > MAX_REQUEST:
        return False
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "kill" and obj.get("session_id") == session_id

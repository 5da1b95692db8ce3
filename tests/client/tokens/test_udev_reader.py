"""The USB keyboard-wedge badge reader, found through udev and read from its evdev node.

Real parts: pyudev over libudev, udev hotplug uevents, sysfs, /dev/input/eventN nodes and reads of
``struct input_event``, all from a umockdev testbed (umockdev_harness.py, run under umockdev-wrapper).
Stand-in: the kernel's EVIOCGRAB. There is no /dev/uinput on this machine, so a umockdev ioctl handler
answers the grab and records it; the tests check the reader asks for it before reading and releases
it, and that it reads nothing from a device it could not grab.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.client.tokens.umockdev_devices import KEYBOARD, READER
from tests.client.tokens.util import DEADLINE
from tests.conftest import REPO
from wayray.client.tokens import redact

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(
    shutil.which("umockdev-wrapper") is None or not Path("/usr/lib/python3/dist-packages/gi").is_dir(),
    reason="needs umockdev and python3-gi with gir1.2-umockdev-1.0 (tools/apt-packages.txt)",
)

READER_IDS = {"vendor": f"{READER[0]:04x}", "product": f"{READER[1]:04x}", "label": READER[2]}
KEYBOARD_IDS = {"vendor": f"{KEYBOARD[0]:04x}", "product": f"{KEYBOARD[1]:04x}", "label": KEYBOARD[2]}


class Harness:
    """The umockdev harness process: commands in, replies and token events out."""

    def __init__(self, tmp_path: Path, **reader_options: Any) -> None:
        options = {"vendor": READER_IDS["vendor"], "product": READER_IDS["product"], **reader_options}
        self.stderr_path = tmp_path / "harness.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                "umockdev-wrapper",
                sys.executable,
                "-m",
                "tests.client.tokens.umockdev_harness",
                json.dumps(options),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "WAYRAY_LOG_LEVEL": "DEBUG"},
        )
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            (self.replies if "reply" in message else self.events).put(message)
        self.replies.put({"reply": None, "error": "the harness ended"})
        self.events.put({"event": None, "error": "the harness ended"})

    def log(self) -> str:
        return self.stderr_path.read_text()

    def do(self, op: str, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._next_id, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            reply = self.replies.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(f"harness: no reply to {op} within {DEADLINE} s\n{self.log()}") from None
        assert "error" not in reply, f"harness: {op}: {reply['error']}\n{self.log()}"
        assert reply["reply"] == self._next_id
        return reply

    def next_event(self) -> dict[str, Any]:
        try:
            event = self.events.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError(f"harness: no token event within {DEADLINE} s\n{self.log()}") from None
        assert event["event"] is not None, f"{event['error']}\n{self.log()}"
        return event

    def expect_inserted(self, token: str) -> dict[str, Any]:
        event = self.next_event()
        assert event["event"] == "inserted", event
        assert (event["token"], event["kind"]) == (token, "BADGE"), event
        return event

    def expect_removed(self, reason: str) -> None:
        event = self.next_event()
        assert event == {"event": "removed", "reason": reason}

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.do("status")["devices"][name])

    def stop(self) -> dict[str, Any]:
        status = self.do("stop")
        self.proc.wait(timeout=DEADLINE)
        self._stderr.close()
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    started: list[Harness] = []

    def start(**options: Any) -> Harness:
        h = Harness(tmp_path, **options)
        started.append(h)
        return h

    yield start
    for h in started:
        h.kill()


def test_a_swipe_on_the_plugged_in_reader_presents_the_badge(harness: Any) -> None:
    h = harness()
    h.do("plug", name="reader", number=1, **READER_IDS)
    started = h.do("start")
    assert started["open_nodes"] == ["/dev/input/event11"]
    assert h.status("reader") == {"opens": 1, "grabs": [1]}  # grabbed as soon as it was found

    h.do("type", name="reader", text="0004711234\n")
    event = h.expect_inserted("0004711234")
    assert event["source"] == "badge reader /dev/input/event11"
    h.do("type", name="reader", text="DeadBeef42\n")  # another badge: Shift gives upper case
    h.expect_removed("replaced")
    h.expect_inserted("DeadBeef42")

    final = h.stop()
    assert final["devices"]["reader"]["grabs"] == [1, 0]  # given back when wrclient stops
    log = h.log()
    for token in ("0004711234", "DeadBeef42"):
        assert token not in log
    assert "using /dev/input/event11 (HID Global OMNIKEY 5427 CK)" in log


def test_hotplug_and_unplug_a_reader_removes_its_badge(harness: Any) -> None:
    h = harness()
    assert h.do("start")["open_nodes"] == []
    h.do("plug", name="reader", number=2, **READER_IDS)
    h.do("type", name="reader", text="13371337\n")
    h.expect_inserted("13371337")
    assert h.status("reader")["grabs"] == [1]
    h.do("unplug", name="reader")
    h.expect_removed("badge reader unplugged")
    assert h.do("status")["open_nodes"] == []

    h.do("plug", name="again", number=3, **READER_IDS)  # plugged in again (a new port, a new node)
    h.do("type", name="again", text="13371337\n")
    h.expect_inserted("13371337")
    h.stop()
    assert "13371337" not in h.log()


def test_a_reader_node_that_fails_under_us_removes_its_badge(harness: Any) -> None:
    h = harness()
    h.do("plug", name="reader", number=1, **READER_IDS)
    h.do("start")
    h.do("type", name="reader", text="555\n")
    h.expect_inserted("555")
    h.do("vanish", name="reader")  # reads fail before udev says anything
    event = h.next_event()
    assert event["event"] == "removed" and event["reason"].startswith("badge reader gone")
    h.stop()


def test_other_keyboards_are_left_alone(harness: Any) -> None:
    h = harness()
    h.do("plug", name="keyboard", number=1, **KEYBOARD_IDS)
    h.do("start")
    h.do("plug", name="keyboard2", number=2, **KEYBOARD_IDS)
    h.do("plug", name="reader", number=3, **READER_IDS)
    h.do("type", name="keyboard", text="typedbyaperson\n")
    h.do("type", name="keyboard2", text="alsoaperson\n")
    h.do("type", name="reader", text="424242\n")
    h.expect_inserted("424242")  # the first event is the reader's: the keyboards produced none
    assert h.status("keyboard") == {"opens": 0, "grabs": []}  # never even opened
    assert h.status("keyboard2") == {"opens": 0, "grabs": []}
    h.stop()


def test_any_product_of_the_vendor_when_product_is_not_given(harness: Any) -> None:
    h = harness(product=None)
    h.do("plug", name="keyboard", number=1, **KEYBOARD_IDS)
    h.do("plug", name="reader", number=2, **READER_IDS)
    assert h.do("start")["open_nodes"] == ["/dev/input/event12"]
    h.stop()


def test_a_card_removed_sequence_removes_the_badge(harness: Any) -> None:
    h = harness(removal_sequence="-removed-")
    h.do("plug", name="reader", number=1, **READER_IDS)
    h.do("start")
    h.do("type", name="reader", text="8675309\n")
    h.expect_inserted("8675309")
    h.do("type", name="reader", text="-removed-\n")
    h.expect_removed("card removed")
    h.do("type", name="reader", text="8675309\n")
    h.expect_inserted("8675309")
    h.stop()


def test_tap_in_tap_out(harness: Any) -> None:
    h = harness(repeat_removes=True)
    h.do("plug", name="reader", number=1, **READER_IDS)
    h.do("start")
    h.do("type", name="reader", text="246810\n")
    h.expect_inserted("246810")
    h.do("type", name="reader", text="246810\n")
    h.expect_removed("badge presented again")
    h.do("type", name="reader", text="246810\n")
    h.expect_inserted("246810")
    h.stop()


def test_broken_up_and_over_long_input_is_not_a_badge(harness: Any) -> None:
    h = harness(max_length=16)
    h.do("plug", name="reader", number=1, **READER_IDS)
    h.do("start")
    h.do("type", name="reader", text="1234", t0=1000.0)  # a fragment, then a pause of 5 s
    h.do("type", name="reader", text="777\n", t0=1005.0)
    h.do("type", name="reader", text="12345678901234567\n", t0=1010.0)  # 17 characters
    h.do("type", name="reader", text="with space\n", t0=1020.0)
    h.do("type", name="reader", text="888\n", t0=1030.0)
    h.expect_inserted("777")  # not 1234777
    h.expect_removed("replaced")
    h.expect_inserted("888")  # nothing came of the lines between
    h.stop()
    log = h.log()
    assert "a pause of 5.0 s inside a badge ID" in log
    assert "more than 16 characters before Enter" in log
    assert "contains whitespace" in log
    for typed in ("with space", "withspace", "12345678901234567"):
        assert typed not in log


def test_a_reader_that_cannot_be_grabbed_is_not_read(harness: Any) -> None:
    h = harness()
    h.do("plug", name="busy", number=1, refuse_grab=True, **READER_IDS)
    h.do("plug", name="reader", number=2, **READER_IDS)
    assert h.do("start")["open_nodes"] == ["/dev/input/event12"]
    h.do("type", name="busy", text="111\n")
    h.do("type", name="reader", text="222\n")
    h.expect_inserted("222")  # and never 111: its keystrokes go to whoever holds it, not to us
    assert h.status("busy") == {"opens": 1, "grabs": []}
    h.stop()
    log = h.log()
    assert "cannot take /dev/input/event11 (HID Global OMNIKEY 5427 CK) for WayRay alone" in log
    assert "another program holds it exclusively" in log


def test_a_recorded_swipe_in_evemu_format(harness: Any) -> None:
    h = harness()
    h.do("plug", name="reader", number=1, **READER_IDS)
    h.do("start")
    h.do("replay", name="reader", file=str(DATA / "omnikey-swipe.events"))
    h.expect_inserted("0004711234")
    h.stop()
    assert "0004711234" not in h.log()
    assert "token #" in h.log() and "10 chars" not in h.log()
    assert redact("0004711234") not in h.log()  # another process: another fingerprint key

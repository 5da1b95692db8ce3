"""Qt programs in a session: a Qt 5 program runs natively on Wayland, draws and is typed into, and
fcitx5 composes pinyin into it (issue 18: input methods for "GTK and Qt clients").

Qt 5's Wayland plugin asks for an input method only over ``zwp_text_input_v2``, which the compositor
does not offer (it serves ``zwp_text_input_v3``): on its own a Qt 5 program gets its keys as they are.
It reaches fcitx5 through fcitx5's Qt plugin (fcitx5-frontend-qt5) over the session's D-Bus, which the
session's environment asks for (``QT_IM_MODULE=fcitx``, wayray.common.inputmethod). The program is
tests/e2e/clients/qt5_line.py (PyQt5); what it got is read from the lines it writes, its window from
the viewer's picture. (No CJK font is installed here: the pixels of 汉字 would be boxes.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.harness import Harness, eventually, failure, png_pixels
from tests.e2e.test_input_method import PROFILE

QT5_LINE = Path(__file__).parent / "clients" / "qt5_line.py"
WINDOW, FIELD = (0x20, 0x60, 0xC0), (0xFF, 0xFF, 0xFF)


def _has_pyqt5() -> bool:
    probe = "from PyQt5.QtWidgets import QApplication"
    return subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _has_pyqt5(), reason="needs python3-pyqt5 and qtwayland5 (tools/apt-packages.txt)"
    ),
]


def _ready(report: Path) -> dict[str, str]:
    path = report / "ready.json"
    return eventually(
        lambda: path.exists() and json.loads(path.read_text()), "the Qt program's window shown"
    )


def _line(report: Path, n: int) -> str:
    path = report / f"line-{n}.txt"
    return eventually(lambda: path.exists() and path.read_text(encoding="utf-8"), f"line {n} entered")


def test_a_qt5_program_runs_natively_on_wayland_draws_and_is_typed_into(harness: Harness) -> None:
    report, shot = harness.tmp / "report", harness.tmp / "qt.png"
    srv = harness.server(["/usr/bin/python3", str(QT5_LINE), str(report)])
    result = harness.run_client(srv, "--script", str(harness.write_script("start.txt", "settle\n")))
    assert result.returncode == 0, failure(result)
    assert _ready(report)["platform"] == "wayland", "Qt did not run on the session's Wayland"
    line = report / "line-1.txt"
    script = f"settle\ntype hello from Qt 5\nkey Return\nwait-for {line}\nsettle\nsnapshot {shot}\n"
    result = harness.run_client(srv, "--script", str(harness.write_script("type.txt", script)))
    assert result.returncode == 0, failure(result)
    assert _line(report, 1) == "hello from Qt 5\n"
    px = png_pixels(shot)
    window = np.all(px == WINDOW, axis=-1)
    ys, xs = np.nonzero(window)
    assert window.sum() > 10_000, "the Qt window's colour is not in the viewer's picture"
    box = px[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert np.all(box == FIELD, axis=-1).sum() > 5_000, "no white text field inside the Qt window"


def _fcitx5_then_qt(harness: Harness, report: Path) -> tuple[list[str], Path]:
    """The session: its own D-Bus (dbus-run-session, as a login session has the user's bus), fcitx5
    with its D-Bus and Wayland front ends, then the Qt program once both are up (fcitx5's log says
    so). The bus's address is written for the test to ask fcitx5 what it serves."""
    config = harness.tmp / "config-home" / "fcitx5"
    config.mkdir(parents=True, exist_ok=True)
    (config / "profile").write_text(PROFILE)
    (config / "config").write_text("[Behavior]\nActiveByDefault=False\n")
    log, bus = harness.tmp / "fcitx5.log", harness.tmp / "bus"
    start = (
        f"fcitx5 --disable=xcb,xim > {log} 2>&1 & "
        f"until grep -q 'Loaded addon waylandim' {log} && grep -q 'Loaded addon dbusfrontend' {log}; "
        "do sleep 0.1; done; "
        f'printf "%s" "$DBUS_SESSION_BUS_ADDRESS" > {bus}.tmp && mv {bus}.tmp {bus}; '
        f"exec /usr/bin/python3 {QT5_LINE} {report}"
    )
    return ["dbus-run-session", "--", "sh", "-c", start], bus


def _fcitx5_contexts(bus: Path) -> str:
    """fcitx5's own account of its input contexts (Controller1.DebugInfo on the session's bus)."""
    probe = subprocess.run(
        ["dbus-send", f"--bus={bus.read_text()}", "--print-reply", "--dest=org.fcitx.Fcitx5", "/controller",
         "org.fcitx.Fcitx.Controller1.DebugInfo"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return probe.stdout


@pytest.mark.skipif(
    shutil.which("fcitx5") is None or shutil.which("dbus-run-session") is None,
    reason="needs fcitx5, fcitx5-chinese-addons, fcitx5-frontend-qt5 and dbus (tools/apt-packages.txt)",
)
def test_fcitx5_composes_pinyin_into_hanzi_in_a_qt5_program(harness: Harness) -> None:
    report = harness.tmp / "report"
    command, bus = _fcitx5_then_qt(harness, report)
    srv = harness.server(command)
    result = harness.run_client(srv, "--script", str(harness.write_script("start.txt", "settle\n")))
    assert result.returncode == 0, failure(result)
    ready = _ready(report)
    assert ready["platform"] == "wayland"
    # Qt's text field has the focus and an input context in fcitx5 (its D-Bus front end) before a
    # key is typed: keys typed before that would go in as they are.
    focused = re.compile(r"IC \[\w+\] program:\S* frontend:dbus .*focus:1")
    try:
        eventually(lambda: focused.search(_fcitx5_contexts(bus)), "the Qt field's input context in fcitx5")
    except AssertionError:
        raise AssertionError(
            f"Qt 5's text field never reached fcitx5 (QT_IM_MODULE={ready['im_module']!r} in the session)\n"
            + _fcitx5_contexts(bus)
        ) from None
    # The viewer stays until the line is entered: a script that ends at its last key loses the keys
    # still on their way (seen with and without fcitx5: the line never came).
    line = report / "line-1.txt"
    keys = "type [\nkey ctrl+space\ntype hanzi\nkey space\nkey ctrl+space\ntype ]\nkey Return\n"
    script = f"settle\n{keys}wait-for {line}\n"
    result = harness.run_client(srv, "--script", str(harness.write_script("pinyin.txt", script)))
    assert result.returncode == 0, failure(result)
    text = _line(report, 1)
    assert text == "[汉字]\n", (text, (harness.tmp / "fcitx5.log").read_text(errors="replace")[-3000:])

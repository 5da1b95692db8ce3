"""A Qt 5 program with one text field, for the input-method tests: run it with the system's Python
(python3-pyqt5) in a session, on Wayland (``QT_QPA_PLATFORM=wayland``, the session's default)::

    /usr/bin/python3 qt5_line.py REPORT_DIR

Its window is #2060c0 around a white text field that has the keyboard focus. Once the window is
shown it writes ``REPORT_DIR/ready.json``: Qt's platform plugin (``wayland`` when it runs natively)
and the input-method module it was asked for (``QT_IM_MODULE``, "" for none). Return writes what the
field holds to ``REPORT_DIR/line-<n>.txt`` (UTF-8 and a newline; n from 1) and empties the field.
Each file is written whole under another name, then renamed: a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QGuiApplication
from PyQt5.QtWidgets import QApplication, QLineEdit, QVBoxLayout, QWidget


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> int:
    report = Path(sys.argv[1])
    report.mkdir(parents=True, exist_ok=True)
    lines = [0]
    app = QApplication(sys.argv[:1])
    app.setCursorFlashTime(0)  # a steady text cursor: the screen settles
    window = QWidget()
    window.setWindowTitle("qt5 line")
    window.setStyleSheet(
        "QWidget { background: #2060c0; } QLineEdit { background: #ffffff; color: #000000; }"
    )
    window.resize(420, 120)
    layout = QVBoxLayout(window)
    field = QLineEdit()
    field.setMinimumHeight(40)
    layout.addWidget(field)

    def entered() -> None:
        lines[0] += 1
        write(report / f"line-{lines[0]}.txt", field.text() + "\n")
        field.clear()

    field.returnPressed.connect(entered)
    window.show()
    field.setFocus()

    def ready() -> None:
        said = {"platform": QGuiApplication.platformName(), "im_module": os.environ.get("QT_IM_MODULE", "")}
        write(report / "ready.json", json.dumps(said))

    QTimer.singleShot(0, ready)
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())

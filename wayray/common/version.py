"""What ``--version`` prints, the same for every command.

An installed package knows its own version (``0.1.0-1`` for the Debian package: its build writes
``wayray/package-version.txt``), which is what an operator compares with ``dpkg -l`` or ``pkg
list``; a source checkout prints the Python distribution's version. Standard library only (the
systemd generator uses it too).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import wayray

#: Written by packaging/debian/build-deb (and build-ips) into the installed tree.
PACKAGE_VERSION_FILE = Path(wayray.__file__).resolve().parent / "package-version.txt"


def version() -> str:
    """The package's version, or the distribution's when not installed from a package."""
    try:
        packaged = PACKAGE_VERSION_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        packaged = ""
    return packaged or wayray.__version__


def version_line(program: str) -> str:
    return f"{program} (WayRay) {version()}"


def add_version_option(parser: argparse.ArgumentParser) -> None:
    """``--version``: print ``PROG (WayRay) VERSION`` and exit 0."""
    parser.add_argument(
        "--version", action="version", version=version_line(parser.prog), help="print the version and exit"
    )

"""systemd generator (placeholder until the supervisor lands). Never fails the boot."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    return 0

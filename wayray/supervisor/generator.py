"""wayray-generator: the systemd generator that turns /etc/wayray into enabled instances.

systemd runs it early at boot and at every ``daemon-reload`` as
``wayray-generator NORMAL_DIR EARLY_DIR LATE_DIR``. It writes into NORMAL_DIR (which overrides
/usr/lib but not /etc, so the administrator's ``systemctl edit`` still wins):

- ``wayray.target.wants/wrsrvd@<name>.service`` for every enabled ``[server.<name>]``;
- ``wrsrvd@<name>.service.d/50-wayray.conf`` with the instance's limits;
- ``wrsessd.socket.d/50-wayray.conf`` when the launcher socket is not the default;
- ``wrusbattach.socket.d/50-wayray.conf`` when the runtime directory is not the default.

Rules for generators (systemd.generator(7)): be fast, talk to no other process, log to the kernel
log, and never fail the boot. So configuration errors are logged and skipped here; an instance with
a bad table is still enabled, and wrsrvd, which checks what it reads at start, then stops with the
errors as file:line:col and status 78 (no restart loop), in its journal and ``systemctl status
wrsrvd@NAME``; so is every instance whose ``[server.NAME]`` header appears in a servers file that
cannot be parsed at all (unless its table says ``enabled = false``). ``wradm check`` is the strict
counterpart.

It cannot hang or exhaust memory on a hostile tree: it reads only regular files, of bounded sizes
(a FIFO or a device among the files is an error, not a wait); and should reading still take longer
than 20 seconds (a stuck network file system), it gives up, enables nothing and exits 0 well before
systemd's own generator timeout.

Standard library only (it runs before most of the system is up); ``WAYRAY_ROOT`` points it at
another tree for tests.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wayray.config.diagnostics import Diagnostic
    from wayray.config.layers import Source

PROGRAM = "wayray-generator"
USAGE = f"usage: {PROGRAM} NORMAL_DIR [EARLY_DIR LATE_DIR]  (systemd runs this at boot; man {PROGRAM})"
#: The kernel log is no place for a long list: show the first few, `wradm check` shows them all.
MAX_LOGGED = 5
#: Seconds it may take at most; systemd kills generators that take much longer and slows the boot.
DEADLINE = 20


class _Deadline(BaseException):
    """Raised by SIGALRM; a BaseException so no ``except Exception`` on the way swallows it."""


def _log(priority: int, message: str) -> None:
    """To /dev/kmsg when systemd runs us (SYSTEMD_SCOPE is set for generators), else stderr."""
    line = f"<{priority}>{PROGRAM}: {message}\n"
    if os.environ.get("SYSTEMD_SCOPE") and os.environ.get("WAYRAY_GENERATOR_LOG") != "stderr":
        try:
            with open("/dev/kmsg", "w") as kmsg:
                kmsg.write(line)
            return
        except OSError:
            pass
    sys.stderr.write(line[3:] if line[1].isdigit() else line)


def generate(normal_dir: Path, root: Path) -> int:
    """Write the units for the configuration below ``root``; returns how many instances it enabled."""
    from wayray.config.diagnostics import Severity
    from wayray.config.loader import load_report
    from wayray.supervisor.systemd import UNIT_DIR, WANTS, generated, unit_name
    from wayray.supervisor.tree import File, Symlink

    result = load_report(root)
    signal.alarm(0)  # the configuration is read: what is left is writing a few small files
    # Only what decides the units counts here: the files wrsrvd reads (kiosk and session files do not).
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR and d.concerns_servers()]
    for diag in errors[:MAX_LOGGED]:
        _log(4, diag.format().splitlines()[0])
    if errors:
        more = f" ({len(errors) - MAX_LOGGED} more not shown)" if len(errors) > MAX_LOGGED else ""
        _log(4, f"the configuration has {len(errors)} error(s){more}; run `wradm check` for all of them")
    entries = generated(result.config)
    # A servers file that cannot be read at all names no instance the loader knows: enable the ones
    # its [server.NAME] headers name, so that each one's wrsrvd stops with the message (status 78)
    # in `systemctl status wrsrvd@NAME` (the kernel log is not where anyone looks, and in a
    # container it goes nowhere).
    for name in sorted(_named_in_unreadable_servers_files(errors, result.config.sources)):
        entries.setdefault(f"{WANTS}/{unit_name(name)}", Symlink(f"{UNIT_DIR}/wrsrvd@.service"))
    for rel, entry in sorted(entries.items()):
        path = normal_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(entry, Symlink):
            if path.is_symlink() or path.exists():
                path.unlink()
            os.symlink(entry.target, path)
        elif isinstance(entry, File):
            path.write_bytes(entry.content)
    enabled = sum(1 for rel in entries if rel.startswith(WANTS + "/"))
    return enabled


#: A ``[server.NAME]`` or ``[server.NAME.sub]`` header at the start of a line (TOML's spaces and
#: quotes allowed); group 2 is "]" for the instance's own table. Matched line by line: nothing in it
#: can run past the line, so the scan is linear in the file.
_SERVER_HEADER = re.compile(r'[ \t]*\[[ \t]*server[ \t]*\.[ \t]*"?([A-Za-z][A-Za-z0-9_-]*)"?[ \t]*(\]|\.|$)')
_DISABLED = re.compile(r"[ \t]*enabled[ \t]*=[ \t]*false\b")


def _named_in_unreadable_servers_files(errors: list[Diagnostic], sources: Sequence[Source]) -> set[str]:
    """Instance names in the [server.NAME] headers of servers files with a file-level error (not
    TOML, not UTF-8, too large), but for tables that say ``enabled = false``. The file is read as
    the loader reads it (below the root, a regular file only, at most 1 MiB), so a FIFO or a device
    cannot hold up the boot here either."""
    from wayray.config.files import MAX_FILE_BYTES, TooLarge, read_regular

    by_path = {str(src.path): src for src in sources if src.spec_name == "servers.toml"}
    names: set[str] = set()
    for diag in errors:
        src = by_path.get(diag.origin.path) if diag.origin is not None and not diag.key else None
        if src is None:
            continue
        try:
            data = read_regular(src.resolved, MAX_FILE_BYTES)
        except TooLarge as err:
            data = err.head
        except OSError:  # not a regular file, unreadable: nothing to read names from
            continue
        names |= _enabled_tables(data.decode("utf-8", "replace"))
    return names


def _enabled_tables(text: str) -> set[str]:
    """The NAMEs of [server.NAME] headers in ``text`` whose own table does not say
    ``enabled = false`` (one of its sub-tables saying nothing does not start it)."""
    named: set[str] = set()
    disabled: set[str] = set()
    table: str | None = None  # the [server.NAME] table the line is in (not a sub-table of it)
    for line in text.split("\n"):
        m = _SERVER_HEADER.match(line)
        if m is not None:
            named.add(m.group(1))
            table = m.group(1) if m.group(2) == "]" else None
        elif line.lstrip(" \t").startswith("["):
            table = None
        elif table is not None and _DISABLED.match(line):
            disabled.add(table)
    return named - disabled


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-h"], ["--help"]):
        from wayray.common.version import version_line

        print(version_line(PROGRAM) if args == ["--version"] else USAGE)
        return 0
    if len(args) not in (1, 3):
        sys.stderr.write(f"{USAGE}\n")
        return 2
    root = Path(os.environ.get("WAYRAY_ROOT") or "/")
    deadline = int(os.environ.get("WAYRAY_GENERATOR_DEADLINE") or DEADLINE)

    def expired(signum: int, frame: FrameType | None) -> None:
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(deadline)
    try:
        generate(Path(args[0]), root)
    except _Deadline:
        _log(3, f"gave up after {deadline} s reading the configuration; no WayRay instances enabled")
    except Exception as err:  # never fail the boot: log and enable nothing more
        _log(3, f"failed, no WayRay instances enabled: {type(err).__name__}: {err}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Where every file of WayRay goes when it is installed: one table for the Debian and IPS packages.

    packaging/layout.py --os linux|illumos --dest STAGE

copies the files below into STAGE (the private Python environment /opt/wayray is built separately
by the package scripts, see packaging/README.md). Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "/opt/wayray"


@dataclass(frozen=True)
class Item:
    source: str  # below the repository; "" for a symlink
    dest: str  # absolute install path
    mode: int = 0o644
    link: str = ""  # symlink target instead of a file
    conffile: bool = False  # an operator's file: kept across upgrades
    systems: tuple[str, ...] = ("linux", "illumos")
    gzip: bool = False  # installed compressed (manual pages on Debian), as ``dest`` (ending in .gz)


#: What an operator needs on the machine (links between them resolve: a test checks).
DOCS = (
    "operating.md",
    "configuration.md",
    "kiosk.md",
    "running.md",
    "troubleshooting.md",
    "launcher.md",
    # The features' pages the operator's pages link to (and what they link to).
    "pools.md",
    "audio.md",
    "usb.md",
    "xwayland.md",
    "web-kiosk.md",
    "protocol.md",
    "benchmarks.md",
    "wm-protocol.md",
    "encoding.md",
)
CONFIGS = ("servers.toml", "policies.toml", "usb.toml", "session.toml", "host.toml", "client.toml")
UNITS = (
    "wrsrvd@.service",
    "wrsessd.service",
    "wrsessd.socket",
    "wayray.target",
    "wrusbattach.service",
    "wrusbattach.socket",
)

#: Manual pages (generated: packaging/manpages.py), by section.
MANPAGES = tuple(sorted(p.name for p in (REPO / "docs" / "man").glob("*.[158]")))


def _manpages() -> tuple[Item, ...]:
    out = []
    for name in MANPAGES:
        dest = f"/usr/share/man/man{name.rsplit('.', 1)[1]}/{name}"
        out.append(Item(f"docs/man/{name}", f"{dest}.gz", gzip=True, systems=("linux",)))
        out.append(Item(f"docs/man/{name}", dest, 0o444, systems=("illumos",)))
    return tuple(out)


LAYOUT: tuple[Item, ...] = (
    Item("", "/usr/bin/wradm", link=f"{PREFIX}/bin/wradm"),
    Item("", "/usr/bin/wrclient", link=f"{PREFIX}/bin/wrclient"),
    Item("", "/usr/bin/wr-wm-tiling", link=f"{PREFIX}/bin/wr-wm-tiling"),
    Item("", "/usr/bin/wr-wm-floating", link=f"{PREFIX}/bin/wr-wm-floating"),
    *(Item(f"etc/wayray/{name}", f"/etc/wayray/{name}", conffile=True) for name in CONFIGS),
    *(Item(f"docs/{name}", f"/usr/share/doc/wayray/{name}") for name in DOCS),
    *_manpages(),
    # Linux: shipped template units (only the templates: instances come from the generator).
    *(Item(f"units/{name}", f"/usr/lib/systemd/system/{name}", systems=("linux",)) for name in UNITS),
    # Where Debian 12's systemd keeps its generators: a directory shared with it (a path of our own
    # through the /usr merge would make dpkg try to remove systemd's directory with the package).
    Item(
        "",
        "/lib/systemd/system-generators/wayray-generator",
        link=f"{PREFIX}/bin/wayray-generator",
        systems=("linux",),
    ),
    Item("packaging/debian/wayray.sysusers", "/usr/lib/sysusers.d/wayray.conf", systems=("linux",)),
    # The nodes of a forwarded USB device go to the session's user (docs/usb.md, section 5); where
    # Debian 12's packages put udev rules (udev.pc's udevdir), for the same /usr-merge reason.
    Item("packaging/udev/70-wayray-usb.rules", "/lib/udev/rules.d/70-wayray-usb.rules", systems=("linux",)),
    Item("packaging/debian/wayray.pam", "/etc/pam.d/wayray", conffile=True, systems=("linux",)),
    Item(
        "packaging/debian/wayray-greeter.pam", "/etc/pam.d/wayray-greeter", conffile=True, systems=("linux",)
    ),
    # illumos: manifests and the start method (the site profile is written by `wradm apply`).
    Item("smf/wayray-wrsrvd.xml", "/lib/svc/manifest/site/wayray-wrsrvd.xml", 0o444, systems=("illumos",)),
    Item("smf/wayray-wrsessd.xml", "/lib/svc/manifest/site/wayray-wrsessd.xml", 0o444, systems=("illumos",)),
    Item("smf/svc-wrsrvd", "/lib/svc/method/svc-wrsrvd", 0o555, systems=("illumos",)),
)


def items(system: str) -> list[Item]:
    return [item for item in LAYOUT if system in item.systems]


def stage(dest: Path, system: str) -> list[Item]:
    """Copy the files of ``system`` below ``dest``; returns what it placed."""
    placed = items(system)
    for item in placed:
        target = dest / item.dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if item.link:
            os.symlink(item.link, target)
        elif item.gzip:
            # -n and a fixed mtime: the same bytes every build (as dh_compress makes them).
            with (
                open(target, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as out,
            ):
                out.write((REPO / item.source).read_bytes())
            os.chmod(target, item.mode)
        else:
            shutil.copyfile(REPO / item.source, target)
            os.chmod(target, item.mode)
    return placed


def conffiles(system: str) -> list[str]:
    return [item.dest for item in items(system) if item.conffile]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--os", choices=["linux", "illumos"], required=True)
    parser.add_argument("--dest", type=Path, required=True, help="staging directory (the package root)")
    parser.add_argument("--conffiles", action="store_true", help="print the configuration files and exit")
    args = parser.parse_args(argv)
    if args.conffiles:
        print("\n".join(conffiles(args.os)))
        return 0
    for item in stage(args.dest, args.os):
        print(f"{item.dest}" + (f" -> {item.link}" if item.link else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

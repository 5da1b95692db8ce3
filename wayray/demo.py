"""The README's demo: what `./tools/demo` runs.

For now it shows the appliance ground: it validates the shipped example configuration (and the
embedded defaults), then renders what it means for systemd and for SMF into a temporary tree and
prints what it wrote. Once the display pipeline lands, it starts a standalone server, a session
running foot, and a client.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import wayray
from wayray.admin import cli as wradm
from wayray.common.errors import WayRayError, cli_entry

EXAMPLES = Path(wayray.__file__).resolve().parent.parent / "etc" / "wayray"


def _step(title: str, argv: list[str]) -> int:
    print(f"\n$ wradm {' '.join(argv)}    # {title}", flush=True)
    return wradm.main(argv)


def _listing(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_symlink():
            print(f"    {rel} -> {path.readlink()}")
        elif path.is_file():
            print(f"    {rel}")


@cli_entry("wayray-demo")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree and print where it is")
    args = parser.parse_args(argv)
    if not EXAMPLES.is_dir():
        raise WayRayError(
            f"{EXAMPLES}: shipped examples not found", hint="run the demo from a source checkout"
        )
    tmp = Path(tempfile.mkdtemp(prefix="wayray-demo-"))
    try:
        empty = tmp / "empty"
        empty.mkdir()
        root = tmp / "root"
        shutil.copytree(EXAMPLES, root / "etc" / "wayray")
        out = tmp / "out"
        print(f"WayRay demo: the appliance configuration (temporary tree: {tmp})")
        steps = [
            ("nothing configured: the embedded defaults", ["--root", str(empty), "check"]),
            ("the shipped examples", ["--root", str(root), "check"]),
            (
                "where each value of server 'main' comes from",
                ["--root", str(root), "show", "--origin", "server.main"],
            ),
            (
                "systemd units",
                ["--root", str(root), "render", "--target", "systemd", "--out", str(out / "systemd")],
            ),
            (
                "SMF manifests and site profile",
                ["--root", str(root), "render", "--target", "smf", "--out", str(out / "smf")],
            ),
            (
                "what `apply` would do under systemd",
                ["--root", str(root), "apply", "--target", "systemd", "--dry-run"],
            ),
        ]
        for title, step in steps:
            code = _step(title, step)
            if code != 0:
                raise WayRayError(f"`wradm {' '.join(step)}` failed with exit status {code}")
        for target in ("systemd", "smf"):
            print(f"\n{target} files written:")
            _listing(out / target)
        print(
            "\ndone. `./tools/test tests/supervisor` checks such files with systemd-analyze and the SMF DTD."
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

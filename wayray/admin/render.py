"""Write what the configuration means for an init system into a directory.

--target systemd: the shipped template units plus what wayray-generator would generate
(wayray.target.wants/ links and drop-ins), as one unit directory.
--target smf: the shipped manifests and start method plus the generated site profile.

Files are written atomically and recorded in DIR/.wradm-owned; files a previous render wrote and
this one does not are removed; files wradm did not write are never overwritten (unless --force).
On any error, nothing is written."""

from __future__ import annotations

import argparse

from wayray.admin.common import add_target_argument, load, print_errors_and_count_warnings
from wayray.common.errors import EXIT_OK
from wayray.config.diagnostics import ConfigError
from wayray.supervisor import smf, systemd, tree
from wayray.supervisor.apply import Target

NAME = "render"
HELP = "write the systemd units or SMF manifests the configuration means into a directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser, required=True)
    parser.add_argument(
        "--out", required=True, type=tree.Path, metavar="DIR", help="directory to write into"
    )
    parser.add_argument("--force", action="store_true", help="overwrite files wradm did not write")


def run(args: argparse.Namespace) -> int:
    result = load(args)
    if result.errors:
        raise ConfigError(result.diagnostics)  # printed in full, once, by wradm's main
    print_errors_and_count_warnings(result.diagnostics)
    config = result.config
    desired = systemd.render(config) if args.target is Target.SYSTEMD else smf.render(config)
    out = args.out
    p = tree.plan(out, desired, force=args.force)
    if not p.conflicts:  # with conflicts, execute() raises before writing anything
        out.mkdir(parents=True, exist_ok=True)
    tree.execute(p)
    if not args.quiet:
        print(f"rendered {args.target.value} into {out}: {p.summary()}")
        if args.verbose:
            for label, names in (("new", p.create), ("changed", p.change), ("removed", p.remove)):
                for name in names:
                    print(f"  {label}: {name}")
    return EXIT_OK

"""Check, render, show what would change, then do it.

systemd: wayray-generator produces the units at daemon-reload, so apply shows the difference
between the generator's current output and what it would produce now, then runs
`systemctl daemon-reload` and restarts exactly the instances whose configuration changed (and
stops those removed or disabled).
smf: apply writes the site profile /etc/svc/profile/site/wayray.xml, runs `svccfg apply`, and
refreshes and restarts the changed instances (removed ones are disabled and deleted).

With --dry-run nothing is written or run. With --root DIR the files are written below DIR and the
commands are only printed (they would act on the running system, not on DIR).
On any error, nothing is written; if a command fails, the files written are restored."""

from __future__ import annotations

import argparse
import sys

from wayray.admin.common import add_target_argument, load, print_errors_and_count_warnings
from wayray.common.errors import EXIT_OK
from wayray.config.diagnostics import ConfigError
from wayray.supervisor import apply as supervisor

NAME = "apply"
HELP = "check, show the diff and the commands, then update and restart what changed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser, required=False)
    parser.add_argument("--dry-run", action="store_true", help="only show the diff and the commands")


def run(args: argparse.Namespace) -> int:
    result = load(args)
    if result.errors:
        raise ConfigError(result.diagnostics)  # printed in full, once, by wradm's main
    print_errors_and_count_warnings(result.diagnostics)
    if args.target is supervisor.Target.SYSTEMD:
        from wayray.supervisor.systemd import directory_problems

        problems = directory_problems(result.config)
        if problems:
            raise ConfigError(problems)
    plan = supervisor.plan_apply(result.config, args.target)
    diff = plan.diff()
    if diff:
        sys.stdout.write(diff)
    if not plan.actions and not diff:
        if not args.quiet:
            print("nothing to do: the services match the configuration")
        if not args.dry_run:
            supervisor.execute(plan, runner=None)
        return EXIT_OK
    if plan.actions:
        width = max(len(str(a)) for a in plan.actions)
        heading = "would run" if args.dry_run or not plan.live else "running"
        print(
            f"{heading}:"
            if plan.live or args.dry_run
            else "not run (--root: they act on the running system):"
        )
        for action in plan.actions:
            print(f"  {str(action):<{width}}  # {action.why}")
    if args.dry_run:
        return EXIT_OK
    supervisor.execute(plan, runner=supervisor.run_command if plan.live else None)
    if not args.quiet:
        print("applied")
    return EXIT_OK

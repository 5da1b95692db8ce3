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
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from wayray.admin.common import add_target_argument, load, print_errors_and_count_warnings
from wayray.common.errors import EXIT_OK
from wayray.config.diagnostics import ConfigError
from wayray.config.loader import Config
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
    live = result.config.root == Path("/")
    observed = observe(result.config, args.target) if live else None
    plan = supervisor.plan_apply(result.config, args.target, observed)
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


# --- what runs ------------------------------------------------------------------------------------

#: Seconds to wait for a running instance's answer; one that does not answer in time counts as
#: running with an unknown configuration (the record of the last apply decides then).
ASK_TIMEOUT = 5.0


def observe(config: Config, target: supervisor.Target) -> supervisor.Observed:
    """Ask the running system what it runs: each configured instance over its admin socket, and
    (systemd) the service manager about the launcher and about units changed on disk."""
    servers: dict[str, dict[str, str] | None] = {}
    for server in config.servers.values():
        unit = supervisor.unit_for(target, server.name)
        running, digests = _ask(Path(str(config.host.admin_socket_for(server.name))))
        if running:
            servers[unit] = digests
    launcher_started = None
    stale: set[str] = set()
    if target is supervisor.Target.SYSTEMD and shutil.which("systemctl"):
        units = [supervisor.unit_for(target, name) for name in config.servers]
        shown = _systemctl_show([*units, "wrsessd.service", "wrsessd.socket"])
        for unit, props in shown.items():
            if props.get("NeedDaemonReload") == "yes":
                stale.add(unit)
            if unit in units and props.get("ActiveState") in ("active", "reloading") and unit not in servers:
                servers[unit] = None  # runs, but its admin socket did not say with what
        launcher = shown.get("wrsessd.service", {})
        if launcher.get("ActiveState") in ("active", "reloading"):
            stamp = launcher.get("ExecMainStartTimestamp", "")
            launcher_started = float(stamp[1:]) if stamp.startswith("@") and stamp[1:].isdigit() else 0.0
    return supervisor.Observed(servers, launcher_started, frozenset(stale))


def _ask(path: Path) -> tuple[bool, dict[str, str] | None]:
    """(is it running?, the digests of the configuration it runs with, if it says)."""
    from wayray.server import admin_protocol as ap
    from wayray.server.admin import AdminClient, AdminError

    try:
        with AdminClient(path, timeout=ASK_TIMEOUT) as client:
            answer = client.ask(ap.Status(), ap.StatusAnswer)
    except (FileNotFoundError, ConnectionRefusedError):
        return False, None
    except (OSError, AdminError, ValueError):
        return True, None
    if answer.config is None:
        return True, None
    digests = answer.config.digests
    return True, {"restart": digests.restart, "reload": digests.reload}


def _systemctl_show(units: list[str]) -> dict[str, dict[str, Any]]:
    props = "Id,ActiveState,NeedDaemonReload,ExecMainStartTimestamp"
    try:
        res = subprocess.run(
            ["systemctl", "show", "--timestamp=unix", "-p", props, "--", *units],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for block in res.stdout.split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in fields:
            out[fields["Id"]] = fields
    return out

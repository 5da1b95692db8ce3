"""``wradm apply``: bring the running services in line with the configuration.

It works in two steps, so ``--dry-run`` can show exactly what would happen:

1. :func:`plan_apply` (reads only): validate, render, compare with what is installed and with what
   the services run, and list the commands to run.
2. :func:`execute` writes the files (atomically, recording which it owns), runs the commands, and
   only then records the new state. If a command fails, the files written are put back.

systemd: the generator produces the units at ``daemon-reload``, so apply writes no unit files; the
diff compares the generator's current output (``/run/systemd/generator``) with what it would produce
now. SMF: apply writes the site profile and runs ``svccfg apply``.

What a server instance needs is decided per setting (``schema.Applies``, printed in the
reference): a change that only reload-class settings make is *reloaded* (``systemctl reload``: the
instance checks and takes it, nothing is interrupted); one of a restart-class setting (port,
addresses, TLS, the access key file, how sessions start, directories) *restarts* it; resource
limits are in the unit, which systemd applies at ``daemon-reload``. The launcher restarts only for
the host settings it reads. What each runs with comes, in this order, from the running instance
itself (it reports the digests of its configuration; see :class:`Observed`), from the record of
the last apply (``<host.state_dir>/wradm-applied.json``), or, for the launcher without a record,
from systemd: a launcher started after its files last changed runs them already.
"""

from __future__ import annotations

import enum
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wayray.common.errors import WayRayError
from wayray.common.files import write_atomic
from wayray.config.effect import launcher_digest, server_digests
from wayray.config.loader import Config
from wayray.supervisor import smf, systemd
from wayray.supervisor.tree import File, Plan, read_entry
from wayray.supervisor.tree import execute as execute_tree
from wayray.supervisor.tree import plan as plan_tree

STATE_FILE = "wradm-applied.json"
OWNED_LIST = "wradm-owned"
STATE_FORMAT = 1


class Target(enum.StrEnum):
    SYSTEMD = "systemd"
    SMF = "smf"


def default_target() -> Target:
    return Target.SMF if sys.platform.startswith("sunos") else Target.SYSTEMD


@dataclass(frozen=True)
class Action:
    argv: tuple[str, ...]
    why: str

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class Observed:
    """What the running system says, when apply acts on it (not with ``--root``).

    ``servers``: unit → the digests a running wrsrvd reports for the configuration it runs
    (``{"restart": ..., "reload": ...}``), or None when it runs but does not say; a unit that is not
    there does not run. ``launcher_started``: when wrsessd.service last started (seconds since the
    epoch), None when it does not run. ``stale``: units systemd says were changed on disk since it
    loaded them (``NeedDaemonReload=yes``, through ``SourcePath=`` when a configuration file changes).
    """

    servers: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    launcher_started: float | None = None
    stale: frozenset[str] = frozenset()


@dataclass
class ApplyPlan:
    target: Target
    root: Path
    #: Files apply writes (SMF: the site profile); None for systemd.
    files: Plan | None
    #: What the generator would change in /run/systemd/generator (systemd only; not written by us).
    generator: Plan | None
    actions: list[Action]
    state: dict[str, Any]
    state_path: Path
    changed_units: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.root == Path("/")

    def diff(self) -> str:
        out = ""
        if self.generator is not None:
            out += self.generator.diff(str(self.root).rstrip("/") + "/run/systemd/generator")
        if self.files is not None:
            out += self.files.diff(str(self.root).rstrip("/") or "")
        return out


def _load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == STATE_FORMAT else {}


# --- planning --------------------------------------------------------------------------------------


@dataclass
class _Needs:
    """What each unit needs, decided by comparing the configuration with what runs."""

    start: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    reload: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    launcher: str = ""  # why the launcher restarts; "" = it does not


def plan_apply(config: Config, target: Target, observed: Observed | None = None) -> ApplyPlan:
    """What apply would do. ``observed`` is the running system's word (None with ``--root``)."""
    root = config.root
    state_path = root / str(config.host.state_dir).lstrip("/") / STATE_FILE
    old = _load_state(state_path)
    old_units: dict[str, Any] = old.get("units", {}) if old.get("target") == target.value else {}
    new_units: dict[str, Any] = {}
    needs = _Needs()
    for server in config.servers.values():
        unit = unit_for(target, server.name)
        digests = server_digests(config, server)
        new_units[unit] = {**digests, "enabled": server.enabled}
        if server.enabled:
            _server_needs(unit, digests, old_units.get(unit), observed, needs)
    launcher = "wrsessd.service" if target is Target.SYSTEMD else smf.LAUNCHER_FMRI
    new_units[launcher] = {"launcher": launcher_digest(config), "enabled": True}
    needs.launcher = _launcher_needs(config, new_units[launcher], old_units.get(launcher), observed)
    for unit, was in old_units.items():
        if unit == launcher or not isinstance(was, dict):
            continue
        gone = unit not in new_units or not new_units[unit]["enabled"]
        if gone and (was.get("enabled") or (observed is not None and unit in observed.servers)):
            needs.stop.append(unit)
        if unit not in new_units:
            needs.remove.append(unit)
    if observed is not None:  # running, but no longer enabled (and not in the record)
        for unit in observed.servers:
            if unit not in needs.stop and not new_units.get(unit, {}).get("enabled"):
                needs.stop.append(unit)
    state = {"format": STATE_FORMAT, "target": target.value, "units": new_units}
    changed = sorted(needs.start + needs.restart + needs.reload)
    if target is Target.SYSTEMD:
        return _plan_systemd(config, state, state_path, needs, observed, changed)
    return _plan_smf(config, state, state_path, needs, changed)


def _server_needs(
    unit: str,
    digests: Mapping[str, str],
    recorded: Any,
    observed: Observed | None,
    needs: _Needs,
) -> None:
    if observed is not None and unit not in observed.servers:
        needs.start.append(unit)  # enabled, but not running: new, stopped, or failed before
        return
    running = observed.servers.get(unit) if observed is not None else None
    base = running or (recorded if isinstance(recorded, dict) and "restart" in recorded else None)
    if base is None:
        needs.restart.append(unit)  # nothing says what it runs with
    elif base.get("restart") != digests["restart"]:
        needs.restart.append(unit)
    elif base.get("reload") != digests["reload"]:
        needs.reload.append(unit)


def _launcher_needs(config: Config, new: Mapping[str, Any], recorded: Any, observed: Observed | None) -> str:
    if isinstance(recorded, dict) and "launcher" in recorded:
        return "" if recorded["launcher"] == new["launcher"] else "host settings it reads changed"
    if observed is None:
        return "no record of what it runs with"
    if observed.launcher_started is None:
        return ""  # not running: socket activation starts it with the configuration as it is
    if observed.launcher_started >= _last_change(config, "host.toml"):
        return ""  # started after its files last changed: it runs them
    return "host.toml changed after it started"


def _last_change(config: Config, name: str) -> float:
    """The newest modification time of ``name``'s files and of its drop-in directories (adding or
    removing a drop-in changes its directory). The layer directories themselves are not looked at:
    ``/run/wayray`` is also where the daemons keep their sockets, so its time says nothing."""
    from wayray.config.layers import LAYERS, under

    paths: list[Path] = [s.path for s in config.sources if s.spec_name == name]
    paths += [under(config.root, f"{layer}/{name}.d") for layer in LAYERS]
    newest = 0.0
    for path in paths:
        try:
            newest = max(newest, path.stat().st_mtime, path.lstat().st_mtime)
        except OSError:
            continue
    return newest


def unit_for(target: Target, server: str) -> str:
    """The unit (systemd) or FMRI (SMF) of server instance ``server``."""
    return systemd.unit_name(server) if target is Target.SYSTEMD else smf.fmri(server)


def _plan_systemd(
    config: Config,
    state: dict[str, Any],
    state_path: Path,
    needs: _Needs,
    observed: Observed | None,
    changed: list[str],
) -> ApplyPlan:
    generator_dir = config.root / "run/systemd/generator"
    desired = systemd.generated(config)
    current = _current_generated(generator_dir)
    gen_plan = plan_tree(generator_dir, desired, owned=current)
    stale = sorted(observed.stale) if observed is not None else []
    actions: list[Action] = []
    # Without a word from systemd (--root), reload before acting on a unit whose sources may have
    # changed; with it, only when they did (or the generator's output changes).
    unknown = observed is None and bool(needs.restart or needs.reload)
    if gen_plan.changed or needs.start or needs.stop or unknown:
        actions.append(Action(("systemctl", "daemon-reload"), "re-run wayray-generator and reload units"))
    elif stale:
        actions.append(
            Action(
                ("systemctl", "daemon-reload"),
                f"systemd's copy of {', '.join(stale)} is older than its sources",
            )
        )
    if needs.stop:
        actions.append(
            Action(("systemctl", "stop", *sorted(needs.stop)), "removed or disabled in the configuration")
        )
    if needs.start:
        actions.append(Action(("systemctl", "start", *sorted(needs.start)), "enabled, not running"))
    if needs.restart:
        actions.append(
            Action(
                ("systemctl", "restart", *sorted(needs.restart)),
                "new, or settings that need a restart changed",
            )
        )
    if needs.reload:
        actions.append(
            Action(("systemctl", "reload", *sorted(needs.reload)), "only settings a reload takes changed")
        )
    socket_moved = any(
        rel.startswith("wrsessd.socket.d/") for rel in gen_plan.create + gen_plan.change + gen_plan.remove
    )
    if needs.launcher or socket_moved:
        why = needs.launcher or "its socket moved"
        actions.append(Action(("systemctl", "restart", "wrsessd.socket", "wrsessd.service"), why))
    if any(
        rel.startswith("wrusbattach.socket.d/")
        for rel in gen_plan.create + gen_plan.change + gen_plan.remove
    ):
        why = "the runtime directory moved"
        actions.append(Action(("systemctl", "restart", "wrusbattach.socket", "wrusbattach.service"), why))
    return ApplyPlan(Target.SYSTEMD, config.root, None, gen_plan, actions, state, state_path, changed)


def _current_generated(directory: Path) -> set[str]:
    found = set()
    if directory.is_dir():
        for path in directory.glob("*/*"):
            rel = path.relative_to(directory).as_posix()
            if systemd.is_generated_path(rel):
                found.add(rel)
    return found


def _plan_smf(
    config: Config,
    state: dict[str, Any],
    state_path: Path,
    needs: _Needs,
    changed: list[str],
) -> ApplyPlan:
    rel_profile = smf.PROFILE_PATH.lstrip("/")
    owned_list = str(state_path.parent.relative_to(config.root) / OWNED_LIST)
    files = plan_tree(config.root, {rel_profile: File(smf.profile(config))}, owned_list=owned_list)
    actions: list[Action] = []
    if files.changed or files.conflicts:
        actions.append(
            Action(("svccfg", "apply", smf.PROFILE_PATH), "create, enable and configure instances")
        )
    for fmri in sorted(needs.remove):
        instance = fmri.rpartition(":")[2]
        actions.append(Action(("svcadm", "disable", "-s", fmri), "removed from the configuration"))
        actions.append(Action(("svccfg", "-s", f"svc:/{smf.WRSRVD}", "delete", instance), "removed"))
    for fmri in sorted(needs.start):
        # svccfg apply enables it; one in maintenance (a configuration error before) needs a clear.
        actions.append(
            Action(("svcadm", "enable", fmri), "enabled, not running (in maintenance: svcadm clear)")
        )
    for fmri in sorted(needs.restart):
        actions.append(Action(("svcadm", "refresh", fmri), "its properties changed"))
        actions.append(Action(("svcadm", "restart", fmri), "settings that need a restart changed"))
    for fmri in sorted(needs.reload):
        actions.append(Action(("svcadm", "refresh", fmri), "only settings a reload takes changed"))
    if needs.launcher:
        actions.append(Action(("svcadm", "restart", smf.LAUNCHER_FMRI), needs.launcher))
    return ApplyPlan(Target.SMF, config.root, files, None, actions, state, state_path, changed)


# --- doing -----------------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], None]


def run_command(argv: Sequence[str]) -> None:
    """Run one action; its output goes to ours. Raises WayRayError when it fails."""
    try:
        res = subprocess.run(list(argv), check=False)
    except OSError as err:
        raise WayRayError(f"cannot run `{' '.join(argv)}`: {err.strerror or err}") from err
    if res.returncode != 0:
        raise WayRayError(f"`{' '.join(argv)}` failed (exit status {res.returncode})")


def execute(plan: ApplyPlan, runner: Runner | None = run_command) -> None:
    """Write the files, run the actions (unless ``runner`` is None), then record the new state.

    When an action fails, the files written are restored and the state is not recorded, so the
    next apply tries again.
    """
    before: dict[Path, Any] = {}
    if plan.files is not None:
        for rel in plan.files.create + plan.files.change + plan.files.remove + [plan.files.owned_list]:
            before[plan.root / rel] = read_entry(plan.root / rel)
        execute_tree(plan.files)
    if runner is not None:
        try:
            for action in plan.actions:
                runner(action.argv)
        except BaseException:
            _restore(before)
            raise
    _write_state(plan.state_path, plan.state)


def _restore(before: Mapping[Path, Any]) -> None:
    for path, entry in before.items():
        if entry is None:
            path.unlink(missing_ok=True)
        elif isinstance(entry, File):
            write_atomic(path, entry.content, mode=entry.mode)


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    write_atomic(path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode(), mode=0o644)

"""``wradm apply``: bring the running services in line with the configuration.

It works in two steps, so ``--dry-run`` can show exactly what would happen:

1. :func:`plan_apply` (reads only): validate, render, compare with what is installed and with the
   record of the last apply, and list the commands to run.
2. :func:`execute` writes the files (atomically, recording which it owns), runs the commands, and
   only then records the new state. If a command fails, the files written are put back.

systemd: the generator produces the units at ``daemon-reload``, so apply writes no unit files; the
diff compares the generator's current output (``/run/systemd/generator``) with what it would produce
now. SMF: apply writes the site profile and runs ``svccfg apply``.

Which instances changed is decided by a digest of everything each daemon reads, recorded in
``<host.state_dir>/wradm-applied.json`` after each successful apply. Without a record (the first
apply) every configured instance counts as changed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from wayray.common.errors import WayRayError
from wayray.config.loader import Config
from wayray.config.model import ServerConfig
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


# --- digests: what each daemon reads ---------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, _dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, PurePosixPath | Path):
        return str(obj)
    return obj


def _digest(*parts: Any) -> str:
    blob = json.dumps([_jsonable(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def server_digest(config: Config, server: ServerConfig) -> str:
    """Everything a wrsrvd instance reads: its table, its policy, the USB rules, host settings."""
    return _digest(server, config.policy_for(server), config.usb, config.host)


def launcher_digest(config: Config) -> str:
    """What needs the launcher restarted when it changes: the host settings (socket, PAM service).

    session.toml is read by the launcher for every new session, so it needs no restart.
    """
    return _digest(config.host)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == STATE_FORMAT else {}


# --- planning --------------------------------------------------------------------------------------


def plan_apply(config: Config, target: Target) -> ApplyPlan:
    root = config.root
    state_path = root / str(config.host.state_dir).lstrip("/") / STATE_FILE
    old = _load_state(state_path)
    old_units: dict[str, Any] = old.get("units", {}) if old.get("target") == target.value else {}
    new_units: dict[str, Any] = {}
    for server in config.servers.values():
        new_units[_unit(target, server.name)] = {
            "digest": server_digest(config, server),
            "enabled": server.enabled,
        }
    launcher = "wrsessd.service" if target is Target.SYSTEMD else smf.LAUNCHER_FMRI
    new_units[launcher] = {"digest": launcher_digest(config), "enabled": True}

    changed = [u for u, v in new_units.items() if v["enabled"] and old_units.get(u) != v]
    stopped = [
        u
        for u, v in old_units.items()
        if v.get("enabled") and (u not in new_units or not new_units[u]["enabled"])
    ]
    removed = [u for u in old_units if u not in new_units]
    state = {"format": STATE_FORMAT, "target": target.value, "units": new_units}
    if target is Target.SYSTEMD:
        return _plan_systemd(config, state, state_path, changed, stopped, launcher)
    return _plan_smf(config, state, state_path, changed, removed, launcher)


def _unit(target: Target, server: str) -> str:
    return systemd.unit_name(server) if target is Target.SYSTEMD else smf.fmri(server)


def _plan_systemd(
    config: Config,
    state: dict[str, Any],
    state_path: Path,
    changed: list[str],
    stopped: list[str],
    launcher: str,
) -> ApplyPlan:
    generator_dir = config.root / "run/systemd/generator"
    desired = systemd.generated(config)
    current = _current_generated(generator_dir)
    gen_plan = plan_tree(generator_dir, desired, owned=current)
    actions: list[Action] = []
    if gen_plan.changed or changed or stopped:
        actions.append(Action(("systemctl", "daemon-reload"), "re-run wayray-generator and reload units"))
    if stopped:
        actions.append(
            Action(("systemctl", "stop", *sorted(stopped)), "removed or disabled in the configuration")
        )
    servers = sorted(u for u in changed if u != launcher)
    if servers:
        actions.append(Action(("systemctl", "restart", *servers), "new, or their configuration changed"))
    if launcher in changed:
        actions.append(Action(("systemctl", "restart", "wrsessd.socket", launcher), "host settings changed"))
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
    changed: list[str],
    removed: list[str],
    launcher: str,
) -> ApplyPlan:
    rel_profile = smf.PROFILE_PATH.lstrip("/")
    owned_list = str(state_path.parent.relative_to(config.root) / OWNED_LIST)
    files = plan_tree(config.root, {rel_profile: File(smf.profile(config))}, owned_list=owned_list)
    actions: list[Action] = []
    if files.changed or files.conflicts:
        actions.append(
            Action(("svccfg", "apply", smf.PROFILE_PATH), "create, enable and configure instances")
        )
    for fmri in sorted(removed):
        instance = fmri.rpartition(":")[2]
        actions.append(Action(("svcadm", "disable", "-s", fmri), "removed from the configuration"))
        actions.append(Action(("svccfg", "-s", f"svc:/{smf.WRSRVD}", "delete", instance), "removed"))
    for fmri in sorted(changed):
        actions.append(Action(("svcadm", "refresh", fmri), "its configuration changed"))
        actions.append(Action(("svcadm", "restart", fmri), "its configuration changed"))
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
            _atomic_write(path, entry.content, entry.mode)


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    _atomic_write(path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode(), 0o644)


def _atomic_write(path: Path, content: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            os.fchmod(f.fileno(), mode)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

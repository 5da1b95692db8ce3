"""``host.toml``: settings of the machine as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from wayray.config.model.common import DERIVED
from wayray.config.schema import Applies, setting
from wayray.config.types import AbsPath, String, UserName


@dataclass(frozen=True)
class HostConfig:
    state_dir: PurePosixPath = setting(
        PurePosixPath("/var/lib/wayray"),
        AbsPath(),
        "Persistent state: one directory per server instance (session registry, TLS identity). "
        "With systemd it must be below /var/lib (the units use `StateDirectory=`).",
        applies=frozenset({Applies.RESTART, Applies.UNIT}),
    )
    runtime_dir: PurePosixPath = setting(
        PurePosixPath("/run/wayray"),
        AbsPath(),
        "Sockets and other runtime files. With systemd it must be below /run (`RuntimeDirectory=`).",
        applies=frozenset({Applies.RESTART, Applies.UNIT, Applies.LAUNCHER}),
    )
    greeter_user: str = setting(
        "wayray-greeter",
        UserName(),
        "Unprivileged user the login screen (wrlogin) runs as.",
        applies=Applies.LAUNCHER,
    )
    pam_service: str = setting(
        "wayray",
        String(
            r"[A-Za-z0-9_.-]{1,64}",
            "PAM service names use letters, digits, '.', '_' and '-'",
            name="PAM service name",
        ),
        "PAM service (`/etc/pam.d/<name>`) used to authenticate and open sessions.",
        applies=Applies.LAUNCHER,
    )
    greeter_pam_service: str = setting(
        "wayray-greeter",
        String(
            r"|[A-Za-z0-9_.-]{1,64}",
            "PAM service names use letters, digits, '.', '_' and '-'",
            name='PAM service name, or ""',
        ),
        "PAM service of the login screen's own sessions (account and session stacks only; it must not "
        'ask anything). "" runs login screens without PAM (no logind session for them).',
        applies=Applies.LAUNCHER,
    )
    launcher_socket: PurePosixPath = setting(
        DERIVED,
        AbsPath(),
        "Socket of the session launcher (wrsessd); the systemd socket unit listens on it.",
        derived="`<runtime_dir>/wrsessd.sock`",
        applies=frozenset({Applies.LAUNCHER, Applies.RESTART, Applies.UNIT}),
    )
    admin_socket: str = setting(
        "",
        String(
            r"|/.*\{instance\}.*",
            'an absolute path containing "{instance}"',
            name='absolute path containing "{instance}"',
        ),
        'Admin socket of each server instance; "{instance}" is replaced by the instance name.',
        derived="`<runtime_dir>/{instance}/admin.sock`",
        applies=Applies.RESTART,
    )

    def admin_socket_for(self, instance: str) -> PurePosixPath:
        return PurePosixPath(self.admin_socket.replace("{instance}", instance))

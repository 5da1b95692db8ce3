"""The kiosk's own identity: a random token made once and kept, for kiosks without a badge source.

With it a readerless kiosk still gets a session of its own, as a Sun Ray did: the session belongs to the
kiosk (token kind ``TERMINAL``) and is there again after a reboot or a network outage. Whoever copies the
file can open that session from elsewhere, so it is created mode 0600 in a 0700 directory and refused
when others could read it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from pathlib import Path

from wayray.client.tokens.events import InvalidToken, TokenKind, validate_token
from wayray.client.tokens.source import TokenSource
from wayray.common.errors import WayRayError
from wayray.common.files import read_private_file, write_atomic

TERMINAL_TOKEN_FILE = "terminal-token"
#: 32 random bytes, URL-safe base64: 43 characters.
_TOKEN_BYTES = 32


def default_state_dir() -> Path:
    """Where wrclient keeps state: systemd's ``$STATE_DIRECTORY`` (its first entry) when the unit sets
    ``StateDirectory=``; ``/var/lib/wayray-client`` for root (not below ``/var/lib/wayray``, where a
    server instance could have that name); else ``$XDG_STATE_HOME/wayray`` (``~/.local/state/wayray``)."""
    systemd_dirs = os.environ.get("STATE_DIRECTORY", "")
    if systemd_dirs:
        return Path(systemd_dirs.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/wayray-client")
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg.startswith("/") else Path.home() / ".local" / "state"
    return base / "wayray"


def default_terminal_token_path() -> Path:
    return default_state_dir() / TERMINAL_TOKEN_FILE


def load_or_create_terminal_token(path: Path) -> str:
    """The token in ``path``; on first use a new random one, written there atomically (mode 0600).

    Two kiosk processes starting at once end up with the same token: the file is created by linking a
    finished temporary file into place, and whoever loses that race reads the winner's file.
    """
    _ensure_private_dir(path.parent)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        # Another process that makes it at the same moment wins: both then use its token.
        write_atomic(path, (secrets.token_urlsafe(_TOKEN_BYTES) + "\n").encode(), exclusive=True)
    except OSError as err:
        raise WayRayError(
            f"{path.parent}: cannot create the kiosk's identity there: {err.strerror}",
            hint="give wrclient's user a writable state directory (systemd: StateDirectory=)",
        ) from None
    return _read(path)


def _ensure_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError as err:
        raise WayRayError(
            f"{directory}: cannot create the state directory for the kiosk's identity: {err.strerror}",
            hint="give wrclient's user a writable state directory (systemd: StateDirectory=)",
        ) from None
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise WayRayError(
            f"{directory}: others may write here (mode {stat.S_IMODE(st.st_mode):04o}), so they could "
            "swap the kiosk's identity",
            hint=f"chmod go-w {directory}",
        )


def _read(path: Path) -> str:
    """The token in ``path``; FileNotFoundError when there is none yet."""
    data = read_private_file(
        path,
        "the kiosk's identity",
        leaked_hint="delete it, and the kiosk gets a new identity (and so a new session of its own)",
        owner=f"wrclient's user (uid {os.geteuid()})",
        owner_hint="chown it to wrclient's user, or delete it to start with a new identity",
    )
    try:
        return validate_token(data.decode("utf-8"))
    except (UnicodeDecodeError, InvalidToken) as err:
        raise WayRayError(
            f"{path}: the kiosk's identity is damaged ({err})",
            hint="delete it: the kiosk then gets a new identity (and so a new session of its own)",
        ) from None


class TerminalIdentity(TokenSource):
    """Presents the kiosk's own token (kind ``TERMINAL``) from the start and never removes it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_terminal_token_path()
        super().__init__(f"kiosk identity {self.path}")

    async def _produce(self) -> None:
        token = load_or_create_terminal_token(self.path)
        self._present(token, TokenKind.TERMINAL)
        self._set_ready()
        await asyncio.get_running_loop().create_future()  # until closed

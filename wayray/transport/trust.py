"""Which server identities a viewer trusts: a configured fingerprint, or trust on first use.

The check runs on the certificate the server proved it holds the key for (TLS 1.3 CertificateVerify)
and before the viewer sends anything, so a server that fails it never sees the viewer's token.
Hostnames and certificate authorities play no part: the fingerprint is the identity.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wayray.transport.errors import ServerIdentityError
from wayray.transport.identity import normalize_fingerprint

log = logging.getLogger("wayray.transport")


def host_key(host: str, port: int) -> str:
    """How an address is written in a known-hosts file: ``host:port``, ``[v6addr]:port``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServerTrust(Protocol):
    def check(self, host: str, port: int, fingerprint: str) -> None:
        """Return if the server at ``host:port`` with this fingerprint is trusted; raise otherwise."""
        ...


@dataclass(frozen=True)
class PinnedFingerprint:
    """Trust exactly one identity (``--server-fingerprint``, or a fingerprint in the viewer's config)."""

    fingerprint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", normalize_fingerprint(self.fingerprint))

    def check(self, host: str, port: int, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise ServerIdentityError(
                f"{host_key(host, port)} presented the identity {fingerprint}, "
                f"but the configured fingerprint is {self.fingerprint}",
                hint="if the server's identity was renewed on purpose, configure its new fingerprint "
                "(wrsrvd logs it at start-up); otherwise something is impersonating the server",
            )


@dataclass(frozen=True)
class KnownHosts:
    """Trust on first use, like ssh: the first identity seen for an address is recorded in ``path``
    (``host:port sha256:<hex>`` per line, ``#`` comments); a different one later is refused."""

    path: Path

    def entries(self) -> dict[str, tuple[str, int]]:
        """address → (fingerprint, line number)."""
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as err:
            raise ServerIdentityError(f"{self.path}: cannot read the known-hosts file: {err}") from None
        out: dict[str, tuple[str, int]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ServerIdentityError(
                    f"{self.path}:{n}: expected 'host:port sha256:<hex>', got {line!r}",
                    hint="fix or delete that line",
                )
            try:
                out[parts[0]] = (normalize_fingerprint(parts[1]), n)
            except Exception:
                raise ServerIdentityError(
                    f"{self.path}:{n}: {parts[1]!r} is not a sha256 fingerprint",
                    hint="fix or delete that line",
                ) from None
        return out

    def check(self, host: str, port: int, fingerprint: str) -> None:
        key = host_key(host, port)
        known = self.entries().get(key)
        if known is None:
            self._append(key, fingerprint)
            log.warning(
                "first connection to %s: trusting its identity %s (recorded in %s)",
                key,
                fingerprint,
                self.path,
            )
            return
        pinned, line = known
        if pinned != fingerprint:
            raise ServerIdentityError(
                f"the identity of {key} changed: {self.path}:{line} records {pinned}, "
                f"the server now presents {fingerprint}",
                hint=f"if the server's identity was renewed on purpose, delete line {line} of {self.path} "
                "and connect again; otherwise something is impersonating the server",
            )

    def _append(self, key: str, fingerprint: str) -> None:
        path = Path(self.path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(f"{key} {fingerprint}\n")
        except OSError as err:
            raise ServerIdentityError(
                f"cannot record the identity of {key} in {path}: {err.strerror}",
                hint="make the known-hosts file writable, or configure the server's fingerprint instead",
            ) from None

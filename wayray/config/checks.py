"""Checks that look at more than one value: ports shared by two servers, policies that do not exist,
USB rules that cannot mean anything, users that do not exist on this host, socket paths too long."""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
from pathlib import Path

from wayray.config.diagnostics import Diagnostic, Severity
from wayray.config.loader import Config
from wayray.config.model import ServerConfig, SessionStart
from wayray.config.types import did_you_mean

#: sun_path is 108 bytes on Linux (104 on illumos and the BSDs), including the terminating NUL.
MAX_SOCKET_PATH = 103


def cross_checks(config: Config, earlier: list[Diagnostic]) -> list[Diagnostic]:
    """Checks across values of the built config. ``earlier`` are the diagnostics found so far."""
    accounts = Accounts(config.root)
    # A value that was invalid fell back to its default; checking that default against other
    # values would only produce follow-up errors about a value nobody wrote.
    invalid = {d.key for d in earlier if d.severity is Severity.ERROR}
    out: list[Diagnostic] = []
    out += _ports(config, invalid)
    out += _web(config, invalid)
    out += _policies(config, invalid)
    out += _servers(config)
    out += _pools(config)
    # Broken rules were dropped, so the built rules' numbers would not match the files': skip.
    if not any(d.severity is Severity.ERROR and d.key.startswith("usb.rule") for d in earlier):
        out += _usb(config, accounts)
    out += _host(config, accounts)
    out += _client(config)
    out += _session(config)
    return out


def _diag(
    config: Config,
    key: str,
    message: str,
    *,
    severity: Severity = Severity.ERROR,
    scope: frozenset[str] = frozenset(),
    notes: tuple[Diagnostic, ...] = (),
) -> Diagnostic:
    return Diagnostic(severity, message, config.where(key), key, scope, notes)


# --- servers -----------------------------------------------------------------------------------------


def _overlap(a: str, b: str) -> bool:
    """Would UDP sockets bound to a and b on the same port clash?"""
    if a == b or "::" in (a, b):  # "::" is dual-stack: it covers IPv4 too
        return True
    va, vb = ipaddress.ip_address(a).version, ipaddress.ip_address(b).version
    return va == vb == 4 and "0.0.0.0" in (a, b)


def _ports(config: Config, invalid: set[str]) -> list[Diagnostic]:
    """Enabled servers whose sockets would clash, each reported against the first one it clashes
    with. Indexed by port and address, so thousands of servers take linear time."""
    out = []
    order: list[ServerConfig] = []
    first_at: dict[tuple[int, str], int] = {}  # (port, address) -> first server listening there
    first_on: dict[int, int] = {}  # port -> first server on it (any address)
    first_v4: dict[int, int] = {}  # port -> first server with an IPv4 address on it
    bad_listen = {k.split(".")[1] for k in invalid if k.startswith("server.") and ".listen[" in k}
    for srv in config.enabled_servers():
        if srv.name in bad_listen or any(k in invalid for k in _keys(srv, "port", "listen", "enabled")):
            continue
        port = srv.port
        candidates: list[int] = []
        for a in srv.listen:
            if a == "::":
                found = [first_on.get(port)]
            else:
                found = [first_at.get((port, a)), first_at.get((port, "::"))]
                if ipaddress.ip_address(a).version == 4:
                    found.append(first_at.get((port, "0.0.0.0")))
                    if a == "0.0.0.0":
                        found.append(first_v4.get(port))
            candidates += [i for i in found if i is not None]
        if candidates:
            other = order[min(candidates)]
            a, b = next((a, b) for a in srv.listen for b in other.listen if _overlap(a, b))
            where = f"{a}" if a == b else f"{a} and {b}"
            note = Diagnostic(
                Severity.NOTE,
                f"server.{other.name} uses port {other.port} here",
                config.where(f"server.{other.name}.port"),
                f"server.{other.name}.port",
            )
            out.append(
                _diag(
                    config,
                    f"server.{srv.name}.port",
                    f"port {srv.port} is already used by server.{other.name} (both listen on {where}); "
                    "give each server its own port or address",
                    scope=frozenset({srv.name, other.name}),
                    notes=(note,),
                )
            )
        index = len(order)
        order.append(srv)
        first_on.setdefault(port, index)
        for a in srv.listen:
            first_at.setdefault((port, a), index)
            if ipaddress.ip_address(a).version == 4:
                first_v4.setdefault(port, index)
    return out


def _web(config: Config, invalid: set[str]) -> list[Diagnostic]:
    """Browser kiosks (docs/web-kiosk.md): a port of their own, and a site certificate with its key."""
    out = []
    taken: dict[int, str] = {}  # port -> the server.NAME.key that has it (QUIC and web ports alike)
    servers = [s for s in config.enabled_servers() if not any(k in invalid for k in _keys(s, "port"))]
    for srv in servers:
        taken.setdefault(srv.port, f"server.{srv.name}.port")
    for srv in servers:
        web = srv.web
        key = f"server.{srv.name}.web"
        if not web.enabled or f"{key}.port" in invalid:
            continue
        other = taken.get(web.port)
        if other is not None:
            out.append(
                _diag(
                    config,
                    f"{key}.port",
                    f"port {web.port} is already taken by {other}; the browser kiosk needs a port of its "
                    "own (TCP for the page, UDP for WebTransport)",
                    scope=frozenset({srv.name}),
                )
            )
        taken.setdefault(web.port, f"{key}.port")
        if srv.sessions is SessionStart.COMMAND and srv.admission.access_key_file is None:
            # Browsers present no client certificate to WebTransport: tls.client_ca cannot stand in.
            out.append(
                _diag(
                    config,
                    f"{key}.enabled",
                    f'the browser kiosk of a server with sessions = "command" needs '
                    f"server.{srv.name}.admission.access_key_file: browsers present no client "
                    "certificate, and a token is not authentication",
                    scope=frozenset({srv.name}),
                )
            )
        if (web.cert is None) != (web.key is None):
            given, missing = ("cert", "key") if web.key is None else ("key", "cert")
            out.append(
                _diag(
                    config,
                    f"{key}.{given}",
                    f"{key}.{given} is set but {key}.{missing} is not: a site certificate needs both",
                    scope=frozenset({srv.name}),
                )
            )
    return out


def _keys(srv: ServerConfig, *names: str) -> list[str]:
    return [f"server.{srv.name}.{n}" for n in names]


def _policies(config: Config, invalid: set[str]) -> list[Diagnostic]:
    out = []
    for srv in config.servers.values():
        if srv.policy not in config.policies and f"server.{srv.name}.policy" not in invalid:
            known = sorted(config.policies)
            guess = did_you_mean(srv.policy, known, value=True)
            out.append(
                _diag(
                    config,
                    f"server.{srv.name}.policy",
                    f'no policy named "{srv.policy}" is defined{guess}; '
                    f"define [policy.{srv.policy}] in policies.toml (defined: {', '.join(known)})",
                    scope=frozenset({srv.name}),
                )
            )
    return out


def open_to_strangers(config: Config, srv: ServerConfig) -> Diagnostic | None:
    """The error for a server that would serve sessions without a login to whoever reaches it, or
    None. The checks make it for enabled servers; wrsrvd also for a disabled one started by hand.

    On loopback too: every user of this machine reaches 127.0.0.1, and UDP says nothing about which
    local user sent a datagram. The sessions run as the service's user, who owns the server's state
    (its TLS key included) and may use the admin sockets (screenshots of every session)."""
    if (
        srv.sessions is not SessionStart.COMMAND
        or srv.admission.access_key_file is not None
        or srv.tls.client_ca is not None
    ):
        return None
    open_to = [a for a in srv.listen if not is_loopback(a)]
    running = f"a session running {' '.join(srv.session_command)} as the server's user"
    fix = (
        "set admission.access_key_file (viewers present its key; a kiosk gives it with access_key_file "
        "in client.toml) or tls.client_ca (viewers present a certificate)"
    )
    if open_to:
        message = (
            f'sessions = "command" on {open_to[0]} would give {running} to anyone who can reach port '
            f"{srv.port} (a token is not authentication); {fix}"
        )
    else:
        message = (
            f'sessions = "command" on loopback would give {running} to every user of this machine (a '
            "token is not authentication, and nothing tells local users apart); that user owns this "
            f"server's state, its TLS key included; {fix}"
        )
    return _diag(config, f"server.{srv.name}.sessions", message, scope=frozenset({srv.name}))


def _servers(config: Config) -> list[Diagnostic]:
    out = []
    for srv in config.servers.values():
        key = f"server.{srv.name}"
        scope = frozenset({srv.name})
        cert_set = config.origin(f"{key}.tls.cert") is not None
        key_set = config.origin(f"{key}.tls.key") is not None
        if cert_set != key_set:
            given, missing = ("cert", "key") if cert_set else ("key", "cert")
            out.append(
                _diag(
                    config,
                    f"{key}.tls.{given}",
                    f"tls.{given} is set but tls.{missing} is not; set both, or neither to use the identity "
                    "the server generates",
                    scope=scope,
                )
            )
        stranger = open_to_strangers(config, srv) if srv.enabled else None
        if stranger is not None:
            out.append(stranger)
        if srv.output.idle_fps > srv.output.fps:
            out.append(
                _diag(
                    config,
                    f"{key}.output.idle_fps",
                    f"idle_fps ({srv.output.idle_fps}) is higher than fps ({srv.output.fps})",
                    scope=scope,
                )
            )
        path = config.host.admin_socket_for(srv.name)
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            out.append(
                _diag(
                    config,
                    "host.admin_socket",
                    f"admin socket path for server {srv.name!r} is {len(str(path).encode())} bytes long; "
                    f"socket paths may have at most {MAX_SOCKET_PATH} (use a shorter name or directory)",
                    scope=scope,
                )
            )
    return out


def _pools(config: Config) -> list[Diagnostic]:
    """A pool's members share a directory only with peers' trust, and then only with one token key."""
    out = []
    for srv in config.servers.values():
        key = f"server.{srv.name}"
        scope = frozenset({srv.name})
        peers = srv.peers
        etcd = peers.directory != "lan"
        trusted = bool(peers.fingerprints) or peers.ca is not None
        if etcd:
            missing = [k for k in ("etcd_ca", "etcd_cert", "etcd_key") if getattr(peers, k) is None]
            if missing:
                out.append(
                    _diag(
                        config,
                        f"{key}.peers.directory",
                        f"an etcd directory needs etcd's CA and this instance's client certificate: set "
                        f"peers.{', peers.'.join(missing)} (etcd is reached over mutual TLS only)",
                        scope=scope,
                    )
                )
        if not srv.pool:
            if trusted or etcd or peers.token_key_file is not None:
                out.append(
                    _diag(config, f"{key}.peers", "peers is set but pool is not: set pool", scope=scope)
                )
            continue
        if (trusted or etcd) and peers.token_key_file is None:
            out.append(
                _diag(
                    config,
                    f"{key}.peers",
                    "the pool's members share the session directory but no token key: set "
                    "peers.token_key_file (the same file on every member), or a badge has another digest "
                    "on each member and gets a session on each",
                    scope=scope,
                )
            )
        if not trusted and not etcd:
            out.append(
                _diag(
                    config,
                    f"{key}.pool",
                    f"pool {srv.pool!r} has no peers.fingerprints or peers.ca: this instance announces "
                    "itself, but shares no session directory (a badge that reaches another member gets a "
                    "session there)",
                    severity=Severity.WARNING,
                    scope=scope,
                )
            )
    return out


def is_loopback(address: str) -> bool:
    """Whether a listen address is reachable from this machine only (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


# --- USB -------------------------------------------------------------------------------------------


def _usb(config: Config, accounts: Accounts) -> list[Diagnostic]:
    out = []
    catch_all: int | None = None
    for i, rule in enumerate(config.usb.rules):
        key = f"usb.rule[{i}]"
        if catch_all is not None:
            out.append(
                _diag(
                    config,
                    key,
                    f"this rule can never match: usb.rule[{catch_all}] before it matches every device",
                    severity=Severity.WARNING,
                )
            )
        elif rule.matches_everything:
            catch_all = i
        for j, principal in enumerate(rule.users):
            missing = accounts.missing(principal)
            if missing:
                out.append(_diag(config, f"{key}.users[{j}]", missing, severity=Severity.WARNING))
    return out


# --- host and client -------------------------------------------------------------------------------


def _host(config: Config, accounts: Accounts) -> list[Diagnostic]:
    out = []
    host = config.host
    missing = accounts.missing(host.greeter_user)
    if missing:
        out.append(
            _diag(
                config,
                "host.greeter_user",
                f"{missing}; the package creates it (systemd-sysusers), or run "
                f"`useradd --system {host.greeter_user}`",
                severity=Severity.WARNING,
            )
        )
    if len(str(host.launcher_socket).encode()) > MAX_SOCKET_PATH:
        out.append(
            _diag(config, "host.launcher_socket", f"socket paths may have at most {MAX_SOCKET_PATH} bytes")
        )
    if host.state_dir == host.runtime_dir:
        out.append(
            _diag(config, "host.runtime_dir", "state_dir and runtime_dir must be different directories")
        )
    return out


def _client(config: Config) -> list[Diagnostic]:
    out = []
    tls = config.client.tls
    if (tls.cert is None) != (tls.key is None):
        given = "cert" if tls.cert is not None else "key"
        out.append(
            _diag(config, f"client.tls.{given}", "client.tls.cert and client.tls.key go together; set both")
        )
    client = config.client
    if client.pool and not client.fingerprints and tls.ca is None:
        out.append(
            _diag(
                config,
                "client.pool",
                f"pool {client.pool!r} without fingerprints or tls.ca: servers found over mDNS are trusted "
                "only through them, so wrclient refuses to start unless its command line gives "
                "--fingerprint or --ca",
                severity=Severity.WARNING,
            )
        )
    badge = config.client.badge
    if badge.product is not None and badge.vendor is None:
        out.append(_diag(config, "client.badge.product", "'product' needs 'vendor'"))
    if badge.file is not None and badge.socket is not None:
        out.append(
            _diag(
                config,
                "client.badge.socket",
                "give either badge.file or badge.socket: a kiosk reads badges from one source",
            )
        )
    if badge.socket is not None and len(str(badge.socket).encode()) > MAX_SOCKET_PATH:
        out.append(
            _diag(config, "client.badge.socket", f"socket paths may have at most {MAX_SOCKET_PATH} bytes")
        )
    for key in ("removal_sequence",):
        text = getattr(badge, key)
        if text and (text != text.strip() or any(not ch.isprintable() for ch in text)):
            out.append(
                _diag(
                    config,
                    f"client.badge.{key}",
                    "a removal sequence is one line of printable characters without surrounding spaces",
                )
            )
    return out


# --- session.toml ----------------------------------------------------------------------------------

#: Where a session's programs are looked up: the PATH wrsessd gives sessions (its default_path).
SESSION_PATH = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/games", "/usr/games")


def _session(config: Config) -> list[Diagnostic]:
    argv = config.session.window_manager
    if not argv or "{" in argv[0]:
        return []
    program = argv[0]

    def installed(path: str) -> bool:
        full = config.root / path.lstrip("/")
        return full.is_file() and os.access(full, os.X_OK)

    if "/" in program:
        found = program.startswith("/") and installed(program)
    else:
        found = any(installed(f"{d}/{program}") for d in SESSION_PATH)
    if found:
        return []
    where = program if "/" in program else f"in the sessions' PATH ({':'.join(SESSION_PATH)})"
    return [
        _diag(
            config,
            "session.window_manager",
            f"{program!r} is not installed (no program {where}): sessions run under the built-in "
            'floating window manager; install it, or name wr-wm-tiling (WayRay\'s own), or "" for the '
            "built-in one",
            severity=Severity.WARNING,
        )
    ]


# --- accounts --------------------------------------------------------------------------------------


class Accounts:
    """Users and groups of the system the configuration is for.

    For ``/`` the name service is asked (so LDAP users count); below ``--root`` the tree's own
    ``etc/passwd`` and ``etc/group`` are read, and nothing is checked when the tree has none.
    """

    def __init__(self, root: Path) -> None:
        self.live = root == Path("/")
        self.users: set[str] | None = None
        self.groups: set[str] | None = None
        if not self.live:
            self.users = _names(root / "etc/passwd")
            self.groups = _names(root / "etc/group")

    def missing(self, principal: str) -> str | None:
        """A warning text when ``principal`` (a user or ``@group``) does not exist; else None."""
        if principal.startswith("@"):
            name = principal[1:]
            if self._has(name, self.groups, grp.getgrnam) is False:
                return f"group {name!r} does not exist on this system"
            return None
        if self._has(principal, self.users, pwd.getpwnam) is False:
            return f"user {principal!r} does not exist on this system"
        return None

    def _has(self, name: str, names: set[str] | None, lookup: object) -> bool | None:
        if self.live:
            try:
                lookup(name)  # type: ignore[operator]
            except KeyError:
                return False
            return True
        return None if names is None else name in names


def _names(path: Path) -> set[str] | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return {line.split(":", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}

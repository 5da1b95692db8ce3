"""Pool members and kiosks on hosts of a :class:`tests.pool.netns.Lan`: real ``wrsrvd --standalone``
processes (the e2e harness's, each in its own namespace, state and runtime directory) and real
``wrclient`` processes, talking QUIC over the bridge and finding each other by real mDNS."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import script
from tests.e2e.harness import Client, Harness, WrServer, eventually
from tests.pool.netns import Host
from wayray.common.xdg import DERIVED_CERT, DERIVED_KEY
from wayray.transport.identity import ServerIdentity

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


def state_dir(harness: Harness, host: Host) -> Path:
    return harness.tmp / f"state-{host.name}"


def member_identity(harness: Harness, host: Host) -> str:
    """The member's TLS identity made before it starts (the members pin each other's), its fingerprint."""
    state = state_dir(harness, host)
    identity = ServerIdentity.load_or_create_files(state / DERIVED_CERT, state / DERIVED_KEY, name=host.name)
    state.chmod(0o700)
    return identity.fingerprint


def sharing(harness: Harness, fingerprints: list[str]) -> list[str]:
    """The options of members that share the session directory (their pool port: any free one)."""
    pins = [arg for fp in fingerprints for arg in ("--pool-peer", fp)]
    return [*pins, "--pool-key-file", str(harness.tmp / "pool-token.key"), "--pool-port", "0"]


class MemberServer(WrServer):
    """``wrsrvd --standalone`` on ``host``, listening on its LAN address; ``pool`` "" joins none."""

    def __init__(
        self, harness: Harness, host: Host, *, pool: str, key: Path, extra: list[str], command: list[str]
    ) -> None:
        args = ["--state-dir", str(state_dir(harness, host)), "--access-key-file", str(key)]
        if pool:
            args += ["--pool", pool]
        super().__init__(harness, command, port=0, extra=args + extra, listen=(host.address,))
        self.host = host
        self.runtime = harness.short / f"run-{host.name}"

    def argv(self) -> list[str]:
        return self.host.command(super().argv())


def member(
    harness: Harness,
    host: Host,
    *,
    pool: str = "lab",
    extra: list[str] | None = None,
    command: list[str] | None = None,
) -> MemberServer:
    key = harness.tmp / "pool-access.key"
    srv = MemberServer(harness, host, pool=pool, key=key, extra=extra or [], command=command or FOOT)
    harness.servers.append(srv)
    srv.start()
    return srv


def kiosk_argv(harness: Harness, host: Host, *args: str) -> list[str]:
    return host.command(
        [script("wrclient"), "--headless", "--access-key-file", str(harness.tmp / "pool-access.key"), *args]
    )


def start_client(harness: Harness, host: Host, *args: str) -> Client:
    n = len(harness.clients)
    out, err = harness.tmp / f"client-{n}.out", harness.tmp / f"client-{n}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            kiosk_argv(harness, host, *args),
            env=harness.env,
            cwd=harness.home,
            stdin=subprocess.DEVNULL,
            stdout=o,
            stderr=e,
            start_new_session=True,
        )
    client = Client(proc, out, err)
    harness.clients.append(client)
    return client


def run_kiosk_script(
    harness: Harness, host: Host, members: list[MemberServer], script: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """A kiosk on ``host`` (``args``: where it goes, its badge, ...) playing ``script`` to its end, once
    the session it gets shows a window on whichever of ``members`` runs it (``Harness.gated``)."""
    client = harness.gated(
        script,
        lambda gated: start_client(harness, host, *args, "--script", str(gated)),
        lambda: any(m.shows_a_window() for m in members),
    )
    return harness.finish(client, 300)


def wradm(harness: Harness, srv: MemberServer, *args: str) -> str:
    """``wradm ARGS`` against ``srv``'s admin socket, as an operator on its host runs it: what it prints."""
    run = subprocess.run(
        [script("wradm"), *args, "--admin-socket", str(srv.runtime / "admin.sock")],
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def wradm_until(harness: Harness, srv: MemberServer, view: str, words: str) -> str:
    """What ``wradm VIEW`` prints on ``srv`` once it says ``words`` (waited for: the members find
    each other's state within a few keep-alive rounds)."""

    def said() -> str | None:
        out = wradm(harness, srv, view)
        return out if words in out else None

    found: str = eventually(said, f"wradm {view} on {srv.host.name} to say {words!r}")
    return found

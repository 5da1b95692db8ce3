"""Pool members and kiosks on hosts of a :class:`tests.pool.netns.Lan`: real ``wrsrvd --standalone``
processes (the e2e harness's, each in its own namespace, state and runtime directory) and real
``wrclient`` processes, talking QUIC over the bridge and finding each other by real mDNS."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import script
from tests.e2e.harness import Client, Harness, WrServer
from tests.pool.netns import Host

FOOT = ["foot", "--window-size-chars=80x24", "sh"]


class MemberServer(WrServer):
    """``wrsrvd --standalone`` on ``host``, listening on its LAN address; ``pool`` "" joins none."""

    def __init__(self, harness: Harness, host: Host, *, pool: str, key: Path, extra: list[str]) -> None:
        args = ["--state-dir", str(harness.tmp / f"state-{host.name}"), "--access-key-file", str(key)]
        if pool:
            args += ["--pool", pool]
        super().__init__(harness, FOOT, port=0, extra=args + extra, listen=(host.address,))
        self.host = host
        self.runtime = harness.short / f"run-{host.name}"

    def argv(self) -> list[str]:
        return self.host.command(super().argv())


def member(
    harness: Harness, host: Host, *, pool: str = "lab", extra: list[str] | None = None
) -> MemberServer:
    srv = MemberServer(harness, host, pool=pool, key=harness.tmp / "pool-access.key", extra=extra or [])
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

"""A real etcd cluster for the directory's tests: Debian's ``etcd`` (etcd-server), N members on
loopback ports (or on the test's bridge), clients over mutual TLS (a throwaway CA: etcd's certificate
names its address, a client needs a certificate from the same CA), peers over plain HTTP."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.ports import free_port
from tests.transport.helpers import Issued, ThrowawayCA
from wayray.pool.etcd_gateway import client_context
from wayray.pool.etcd_key import KeyCheck

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
#: The pool token key the directory tests' members share (they check it in etcd, docs/pools.md §3.3).
POOL_KEY = KeyCheck(bytes(range(32)), Path("/etc/wayray/pool-test.key"))


def free_tcp_port(address: str = "127.0.0.1") -> int:
    """A port for etcd on ``address`` (a loopback address, or one of a test's own network)."""
    if address in ("127.0.0.1", "::1"):
        return free_port()  # tests/ports.py: claimed, not merely free now
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    address: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"https://{self.address}:{self.client_port}"


@dataclass
class EtcdCluster:
    ca: ThrowawayCA
    server: Issued
    client: Issued
    members: list[EtcdMember]

    @property
    def url(self) -> str:
        """The pool's ``directory`` value."""
        return "etcd://" + ",".join(f"{m.address}:{m.client_port}" for m in self.members)

    def context(self) -> ssl.SSLContext:
        return client_context(self.ca.path, self.client.cert, self.client.key)

    def kill(self, member: EtcdMember) -> None:
        assert member.proc is not None
        member.proc.kill()
        member.proc.wait(30)

    def healthy(self, member: EtcdMember) -> bool:
        try:
            with urllib.request.urlopen(member.endpoint + "/health", context=self.context(), timeout=5) as r:
                return b'"true"' in r.read()
        except (OSError, urllib.error.URLError):
            return False

    def status(self, member: EtcdMember) -> dict[str, Any] | None:
        """What ``member`` says of itself (its id, its leader's, its raft term), or None when it does
        not answer within a few seconds."""
        request = urllib.request.Request(
            member.endpoint + "/v3/maintenance/status",
            data=b"{}",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.context(), timeout=5) as r:
                answer = json.loads(r.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def stop(self) -> None:
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.kill()
                with suppress(subprocess.TimeoutExpired):
                    member.proc.wait(30)


@contextmanager
def etcd_cluster(tmp: Path, size: int = 3, address: str = "127.0.0.1") -> Iterator[EtcdCluster]:
    """``size`` etcd members listening on ``address`` (loopback, or the test's bridge)."""
    if not Path(ETCD).exists():
        pytest.fail("etcd is not installed: apt install etcd-server (tools/apt-packages.txt lists it)")
    ca = ThrowawayCA(tmp / "etcd-ca", name="etcd test CA")
    # etcd's JSON gateway dials etcd's own gRPC side with this certificate: it is a client's too.
    server = ca.issue(
        "etcd",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        also=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        names=(address, "localhost"),
    )
    client = ca.issue("wrsrvd", usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    members = [
        EtcdMember(
            f"e{i}",
            free_tcp_port(address),
            free_tcp_port(address),
            tmp / f"etcd-{i}",
            tmp / f"etcd-{i}.log",
            address=address,
        )
        for i in range(size)
    ]
    initial = ",".join(f"{m.name}=http://{address}:{m.peer_port}" for m in members)
    cluster = EtcdCluster(ca, server, client, members)
    try:
        for m in members:
            argv = [
                ETCD,
                f"--name={m.name}",
                f"--data-dir={m.data}",
                f"--listen-client-urls={m.endpoint}",
                f"--advertise-client-urls={m.endpoint}",
                f"--listen-peer-urls=http://{address}:{m.peer_port}",
                f"--initial-advertise-peer-urls=http://{address}:{m.peer_port}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                f"--initial-cluster-token=wayray-test-{tmp.name}",
                f"--cert-file={server.cert}",
                f"--key-file={server.key}",
                f"--trusted-ca-file={ca.path}",
                "--client-cert-auth",
                "--logger=zap",
                "--log-level=info",  # elections ("elected leader") show in etcd-N.log
            ]
            m.proc = subprocess.Popen(argv, stdout=m.log.open("wb"), stderr=subprocess.STDOUT)
        end = time.monotonic() + 120
        while not all(cluster.healthy(m) for m in members):
            for m in members:
                if m.proc is not None and m.proc.poll() is not None:
                    pytest.fail(f"etcd {m.name} exited {m.proc.returncode}: {m.log.read_text()[-2000:]}")
            if time.monotonic() > end:
                pytest.fail("the etcd cluster did not become healthy in 120 s")
            time.sleep(0.2)
        yield cluster
    finally:
        cluster.stop()

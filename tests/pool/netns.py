"""Network namespaces joined by a bridge, made by a test: real multicast (mDNS) between "hosts".

Each :class:`Host` is a network namespace with one veth on a bridge in the root namespace, an
address in a private /24, and its own host name (``unshare --uts``: separate machines have separate
names, and mDNS answers for a host name). Needs root, ``ip`` (iproute2) and ``unshare``. The bridge
is made with multicast snooping off, so every port sees the mDNS group without IGMP queries.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    ns: str
    name: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host (its namespace and host name)."""
        return [
            "ip", "netns", "exec", self.ns,
            "unshare", "--uts", "--",
            "sh", "-c", f'hostname {self.name} && exec "$@"', "sh", *argv,
        ]  # fmt: skip


def link(a: Host, b: Host, *, up: bool) -> None:
    """Cut (or restore) what flows between ``a`` and ``b`` only (a blackhole route each way)."""
    for here, there in ((a, b), (b, a)):
        verb = "del" if up else "add"
        subprocess.run(["ip", "-n", here.ns, "route", verb, "blackhole", f"{there.address}/32"], check=True)


class Lan:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"wrb{self.tag}"
        self.subnet = 100 + secrets.randbelow(150)
        self.hosts: list[Host] = []

    def add(self, name: str) -> Host:
        n = len(self.hosts) + 1
        ns = f"wrpool-{self.tag}-{n}"
        outer, inner = f"wrv{self.tag}{n}", f"wri{self.tag}{n}"
        _ip("netns", "add", ns)
        host = Host(ns, name, f"10.{self.subnet}.{secrets.randbelow(200) + 1}.{n + 1}")
        self.hosts.append(host)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "master", self.bridge, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", inner, "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{host.address}/8", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up", "multicast", "on")
        return host

    def root_address(self) -> str:
        """An address of the test's own (root) namespace on the bridge, which every host reaches
        (for a service the test runs itself, such as etcd): 10.SUBNET.0.254/16, the hosts' range."""
        address = f"10.{self.subnet}.0.254"
        _ip("addr", "add", f"{address}/16", "dev", self.bridge)
        return address

    def start(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge", "mcast_snooping", "0")
        _ip("link", "set", self.bridge, "up")

    def close(self) -> None:
        for host in self.hosts:
            with suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.ns)
        with suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)


@contextmanager
def lan() -> Iterator[Lan]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("network namespaces need root, ip (iproute2) and unshare")
    net = Lan()
    net.start()
    try:
        yield net
    finally:
        net.close()

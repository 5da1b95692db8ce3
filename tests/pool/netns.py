"""Network namespaces joined by a bridge, made by a test: real multicast (mDNS) between "hosts".

Each :class:`Host` is a network namespace with one veth on a bridge in the root namespace, an
address in 10.SUBNET.0.0/16 (SUBNET reserved on this host while the test runs: see
:func:`_reserve_subnet`), and its own host name (``unshare --uts``: separate machines have separate
names, and mDNS answers for a host name). Needs root, ``ip`` (iproute2) and ``unshare``. The bridge
is made with multicast snooping off, so every port sees the mDNS group without IGMP queries.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _ip_out(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


#: Where a test reserves its 10.SUBNET.0.0/16 (a lock file held while its bridge lives): the network
#: namespaces and the root namespace's routes are the host's, shared by every test run on it.
SUBNET_LOCKS = Path("/tmp/wrpool-subnets")


def _subnet_in_use(subnet: int) -> bool:
    """Whether the root namespace already has an address or a route in 10.SUBNET.0.0/16: another
    test's bridge (running now, or left behind by a run that was killed). Its route would take the
    replies meant for this test's hosts: a service on :meth:`Lan.root_address` (etcd) would look
    healthy from the root namespace and never answer the hosts."""
    prefix = f"10.{subnet}."
    found = _ip_out("-4", "-o", "addr", "show") + _ip_out("-4", "route", "show")
    return any(word.startswith(prefix) for word in found.split())


def _reserve_subnet() -> tuple[int, IO[str]]:
    """A subnet no other test on this host uses, held (an flock, released when the lock file is
    closed, or when its process dies) until the test's network is gone."""
    SUBNET_LOCKS.mkdir(mode=0o700, exist_ok=True)
    candidates = list(range(100, 250))
    start = secrets.randbelow(len(candidates))
    for subnet in candidates[start:] + candidates[:start]:
        lock = (SUBNET_LOCKS / f"{subnet}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        if _subnet_in_use(subnet):
            lock.close()
            continue
        return subnet, lock
    pytest.fail(
        "every 10.SUBNET.0.0/16 from 10.100 to 10.249 is in use on this host (left-over wrb* bridges?)"
    )


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
        # Unique on this host: two bridges with 10.SUBNET.0.254/16 in the root namespace (another
        # test's, or one left behind) route a test's etcd answers to the wrong bridge.
        self.subnet, self._subnet_lock = _reserve_subnet()
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
        # The root namespace's answers to the hosts (10.SUBNET.x.y) must go over this bridge.
        route = _ip_out("-4", "route", "get", f"10.{self.subnet}.1.1").split()
        if route[route.index("dev") + 1] != self.bridge:
            pytest.fail(f"the root namespace routes this test's hosts elsewhere: {' '.join(route)}")
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
        self._subnet_lock.close()  # the subnet is free for the next test


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

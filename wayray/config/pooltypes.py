"""The value types of a pool's session directory (``peers.directory``): ``lan`` or etcd's client URLs."""

from __future__ import annotations

import ipaddress
import re

from wayray.config.types import Invalid, ServerAddress, ValueType, _quote


def etcd_endpoints(url: str) -> tuple[str, ...]:
    """``etcd://host:2379,[2001:db8::1]:2379`` → the gateway's HTTPS base URLs (it is always reached
    over TLS: the client certificate is the directory's only guard)."""
    if not url.startswith("etcd://"):
        raise Invalid(f"{_quote(url)}: an etcd directory is etcd://HOST:PORT[,HOST:PORT…]")
    out = []
    for part in url[len("etcd://") :].split(","):
        host, port = part.strip(), ""
        if host.startswith("["):
            host, _, rest = host[1:].partition("]")
            port = rest.removeprefix(":")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise Invalid(f"{_quote(url)}: {_quote(host)} is not an IPv6 address") from None
            host = f"[{host}]"
        elif host.count(":") == 1:
            host, port = host.split(":")
        if not host or not (host.startswith("[") or ServerAddress._HOST.fullmatch(host)):
            raise Invalid(
                f"{_quote(url)}: {_quote(part)} is not HOST:PORT (an etcd client URL's host and port)"
            )
        if not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
            raise Invalid(f"{_quote(url)}: {_quote(part)} needs a port from 1 to 65535 (etcd's is 2379)")
        out.append(f"https://{host}:{port}")
    return tuple(out)


class PoolDirectory(ValueType[str]):
    """Where a pool's session directory is: ``lan`` (its members) or ``etcd://HOST:PORT,…``."""

    name = '"lan" or "etcd://HOST:PORT[,HOST:PORT…]"'

    def parse(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise self.expected(raw)
        if raw == "lan":
            return raw
        if not raw.startswith("etcd://"):
            raise Invalid(f'{_quote(raw)} is not a directory: "lan", or "etcd://HOST:PORT[,HOST:PORT…]"')
        etcd_endpoints(raw)
        return raw

"""``[server.<name>.web]``: the browser kiosk a ``wrsrvd`` instance serves (docs/web-kiosk.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from wayray.config.schema import setting
from wayray.config.types import AbsPath, Bool, Integer

#: The browser kiosk's port when none is configured: TCP for the page (HTTPS), UDP for HTTP/3.
DEFAULT_WEB_PORT = 7443


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = setting(
        False,
        Bool(),
        "Serve the browser kiosk: the page over HTTPS (TCP) and WebTransport over HTTP/3 (UDP) on "
        "`port`, on the instance's `listen` addresses. A browser session is a viewer like a native "
        "kiosk: same sessions, registry, policy, login screens and access key (docs/web-kiosk.md).",
    )
    port: int = setting(
        DEFAULT_WEB_PORT,
        Integer(1, 65535),
        "Port of the browser kiosk: TCP for the page (https://HOST:PORT/), UDP for WebTransport. "
        "Must differ from the instance's own `port` and from every other instance's ports.",
    )
    cert: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        "A site certificate chain (PEM, leaf first) from a CA the browsers trust, naming the host "
        "names browsers use; then the page and WebTransport both present it and nothing else is "
        'needed. `""` (the default): the page presents the server\'s own identity (`tls.cert`; '
        "browsers must be told to trust it once) and WebTransport a short-lived certificate that "
        "wrsrvd rotates itself and the page pins by its hash (`serverCertificateHashes`).",
    )
    key: PurePosixPath | None = setting(
        None,
        AbsPath(optional=True),
        'Private key (PEM, ECDSA or RSA) of `cert`; readable by the server only. `""` with `cert` `""`.',
    )

"""The browser kiosk as wrsrvd runs it: the page server and the HTTP/3 endpoint on one port, the
certificates they present, and the rotation of the short-lived one (docs/web-kiosk.md)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from wayray.common.errors import WayRayError
from wayray.transport import ServerSettings, TransportError
from wayray.web.certs import RotatingCertificates
from wayray.web.pages import MissingBuild, Page, PageServer
from wayray.web.transport import SESSION_PATH, WebTransportServer, WebTransportSettings

log = logging.getLogger("wayray.web")

#: How often wrsrvd looks whether the short-lived certificate is due for rotation.
ROTATION_CHECK = 3600.0
#: Tries at binding the same free port for TCP and UDP when asked for port 0.
_PORT_TRIES = 20


@dataclass(frozen=True)
class WebDoorConfig:
    port: int
    #: The page's certificate and key: the site certificate, or the server's own identity.
    page_cert: Path
    page_key: Path
    #: True: ``page_cert`` is a site certificate, presented by WebTransport too (no hashes).
    site: bool


def spki_hash(cert: x509.Certificate) -> str:
    """base64 SHA-256 of the certificate's public key: what Chromium's
    ``--ignore-certificate-errors-spki-list`` takes."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _load_chain(cert: Path, key: Path) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    try:
        chain = x509.load_pem_x509_certificates(cert.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise WayRayError(
            f"the browser kiosk's certificate {cert} or key {key} cannot be used: {err}",
            hint="web.cert is a PEM certificate chain (the leaf first), web.key its unencrypted PEM key",
        ) from None
    return chain, private


class WebDoor:
    """Started by :meth:`start`, stopped by :meth:`close`."""

    def __init__(self, config: WebDoorConfig, page: Page, name: str) -> None:
        self.config = config
        self.page = page
        self.name = name
        self.port = config.port
        self.certs = None if config.site else RotatingCertificates(name)
        self.page_server: PageServer | None = None
        self.endpoints: list[WebTransportServer] = []
        self._rotation: asyncio.Task[None] | None = None
        self.spki = ""

    @classmethod
    async def start(
        cls,
        config: WebDoorConfig,
        *,
        name: str,
        hosts: list[str],
        server: ServerSettings,
        handler: Callable[[Any], Awaitable[None]],
    ) -> WebDoor:
        try:
            page = Page.load()
        except MissingBuild as err:
            raise WayRayError(
                str(err),
                hint="build it: tools/build-web (the package's build does; the README's set-up too)",
            ) from None
        door = cls(config, page, name)
        try:
            await door._listen(hosts, server, handler)
        except BaseException:
            await door.close()
            raise
        door._rotation = asyncio.ensure_future(door._rotate())
        return door

    def web_json(self) -> dict[str, object]:
        hashes = [h.hex() for h in self.certs.hashes()] if self.certs is not None else []
        return {"build": self.page.build, "path": SESSION_PATH, "hashes": hashes, "server": self.name}

    async def _listen(
        self, hosts: list[str], server: ServerSettings, handler: Callable[[Any], Awaitable[None]]
    ) -> None:
        chain, key = _load_chain(self.config.page_cert, self.config.page_key)
        self.spki = spki_hash(chain[0])
        wt_cert: x509.Certificate = chain[0]
        wt_key: PrivateKeyTypes = key
        wt_chain: list[x509.Certificate] = chain[1:]
        if self.certs is not None:
            wt_cert, wt_key, wt_chain = self.certs.current.certificate, self.certs.current.private_key, []
        tls = PageServer.tls_context(self.config.page_cert, self.config.page_key)
        self.page_server = PageServer(self.page, tls, self.web_json)
        for attempt in range(_PORT_TRIES):
            port = self.config.port
            try:
                for host in hosts:
                    settings = WebTransportSettings(replace(server, host=host, port=port), self.page.build)
                    endpoint = await WebTransportServer.start_web(
                        settings, handler, wt_cert, wt_key, wt_chain
                    )
                    self.endpoints.append(endpoint)
                    port = endpoint.port
                    await self.page_server.listen(host, port)
            except (OSError, TransportError) as err:
                await self._close_listeners()
                if self.config.port == 0 and attempt + 1 < _PORT_TRIES:
                    continue  # the free UDP port was taken on TCP: another one
                why = err.strerror if isinstance(err, OSError) else err.message
                raise WayRayError(
                    f"cannot serve the browser kiosk on port {self.config.port}: {why}",
                    hint="another program may use the port (TCP or UDP); pick another web.port",
                ) from None
            self.port = port
            break
        log.info(
            "browser kiosk on port %d (https://HOST:%d/): page certificate %s%s",
            self.port,
            self.port,
            "a site certificate" if self.config.site else "the server's identity",
            ""
            if self.config.site
            else f" (for a kiosk browser: --ignore-certificate-errors-spki-list={self.spki}); WebTransport "
            "pinned by the hashes of a short-lived certificate rotated every 4 days",
        )

    async def _rotate(self) -> None:
        while self.certs is not None:
            await asyncio.sleep(ROTATION_CHECK)
            if self.certs.rotate_if_due():
                for endpoint in self.endpoints:
                    endpoint.present(self.certs.current.certificate, self.certs.current.private_key)
                log.info("browser kiosk: the WebTransport certificate was rotated")

    async def _close_listeners(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.close()
        self.endpoints.clear()
        if self.page_server is not None:
            await self.page_server.close()

    async def close(self, code: int | None = None, reason: str = "the server is stopping") -> None:
        if self._rotation is not None:
            self._rotation.cancel()
            self._rotation = None
        for endpoint in self.endpoints:
            if code is None:
                await endpoint.close()
            else:
                await endpoint.close(code, reason)
        self.endpoints.clear()
        if self.page_server is not None:
            await self.page_server.close()

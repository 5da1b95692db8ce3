"""The page's HTTPS server: GET and HEAD of a fixed set of static files, and ``/web.json``.

Deliberately small: the files are read once at start (the package's ``static/`` tree), nothing a
request says reaches the file system, and a request is one bounded head (8 KiB, 10 s) answered with
``Connection: close``. ``/`` is ``index.html`` with the build stamped in; it and ``/web.json`` are
``no-store`` so that a browser always asks the server which page and which certificate hashes are
current (docs/web-kiosk.md, sections 2 and 3).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

from wayray.web.keymaps import Layouts

log = logging.getLogger("wayray.web")

#: Most bytes of a request head; most seconds to send it; most page connections at once.
HEAD_LIMIT = 8 * 1024
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
#: Replaced by the build in index.html.
BUILD_MARK = "@WAYRAY_BUILD@"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
_SECURITY_HEADERS = (
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n"
    # WebTransport to this origin is 'self'; cursors are data: URLs; nothing from elsewhere.
    # script-src: the page's own files, and the one inline script (boot.js) by its hash.
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "script-src 'self' 'sha256-@BOOT_HASH@'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n"
)
#: index.html's tag for boot.js, which the page server replaces by the script itself: the watcher
#: that loads the page again when its scripts fail to load must not be one of them.
BOOT_TAG = b'<script src="/boot.js"></script>'


class MissingBuild(Exception):
    """The page's bundled decoder was not built (tools/build-web)."""


@dataclass(frozen=True)
class Page:
    """The static files of the page, by URL path, and the build they make."""

    files: dict[str, tuple[bytes, str]]
    build: str
    #: The security headers of every answer (the CSP names the inline script's hash).
    headers: str = _SECURITY_HEADERS

    @classmethod
    def load(cls, root: Path | None = None) -> Page:
        """The page under ``root`` (default: the package's ``wayray/web/static``)."""
        base = Path(str(resources.files("wayray.web") / "static")) if root is None else root
        files: dict[str, tuple[bytes, str]] = {}
        digest = hashlib.sha256()
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = path.relative_to(base).as_posix()
            kind = _TYPES.get(path.suffix)
            if kind is None or any(part.startswith(".") for part in path.relative_to(base).parts):
                continue
            data = path.read_bytes()
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            files["/" + rel] = (data, kind)
        if "/vendor/fzstd.mjs" not in files:
            raise MissingBuild(
                f"{base}/vendor/fzstd.mjs is missing: the browser kiosk's zstd decoder was not built"
            )
        build = digest.hexdigest()[:16]
        index, kind = files["/index.html"]
        index = index.replace(BUILD_MARK.encode(), build.encode())
        boot = files["/boot.js"][0]
        if BOOT_TAG not in index or b"</script" in boot:
            raise MissingBuild(f"{base}/index.html must load boot.js as {BOOT_TAG.decode()} (it is inlined)")
        files["/"] = (index.replace(BOOT_TAG, b"<script>" + boot + b"</script>"), kind)
        del files["/index.html"]
        boot_hash = base64.b64encode(hashlib.sha256(boot).digest()).decode()
        return cls(files, build, _SECURITY_HEADERS.replace("@BOOT_HASH@", boot_hash))


class PageServer:
    """Serves :class:`Page` over HTTPS; ``web_json`` says the current ``/web.json``."""

    def __init__(
        self,
        page: Page,
        tls: ssl.SSLContext,
        web_json: Callable[[], dict[str, object]],
        layouts: Layouts | None = None,
    ) -> None:
        self.page = page
        self.tls = tls
        self.web_json = web_json
        self.layouts = layouts or Layouts()
        self._servers: list[asyncio.Server] = []
        self._live: set[asyncio.Task[None]] = set()

    @staticmethod
    def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    async def listen(self, host: str, port: int) -> int:
        """Listen on TCP ``host``:``port``; returns the port bound."""
        server = await asyncio.start_server(
            self._accept, host, port, ssl=self.tls, limit=HEAD_LIMIT, ssl_handshake_timeout=HEAD_TIMEOUT
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._live):
            task.cancel()
        if self._live:
            await asyncio.wait(list(self._live), timeout=2)
        self._servers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._live) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._live.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a browser that went away, or garbage: that connection only
        except TimeoutError:
            pass
        finally:
            self._live.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send(writer, 400, b"bad request\n", "text/plain; charset=utf-8", head_only=False)
            return
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            await self._send(
                writer, 405, b"only GET and HEAD\n", "text/plain; charset=utf-8", head_only=False
            )
            return
        path = target.split("?", 1)[0]
        head_only = method == "HEAD"
        if path == "/web.json":
            body = json.dumps(self.web_json(), separators=(",", ":")).encode()
            await self._send(writer, 200, body, "application/json", head_only=head_only, store=False)
            return
        if path == "/keymap.json":
            body = json.dumps(await self._keymap(target.partition("?")[2])).encode()
            await self._send(writer, 200, body, "application/json", head_only=head_only, store=False)
            return
        found = self.page.files.get(path)
        if found is None:
            await self._send(writer, 404, b"not found\n", "text/plain; charset=utf-8", head_only=head_only)
            return
        body, kind = found
        await self._send(writer, 200, body, kind, head_only=head_only, store=path != "/")

    async def _keymap(self, query: str) -> dict[str, object]:
        """``/keymap.json?layout=L[,V]&lang=de-DE,de&map={"KeyA":"a",...}``: the keymap for the
        page's keyboard (wayray.web.keymaps), or ``{"layout": null}`` for the session's default."""
        q = parse_qs(query, max_num_fields=8)
        try:
            labels = json.loads(q.get("map", ["{}"])[0])
        except ValueError:
            labels = {}
        if not isinstance(labels, dict):
            labels = {}
        labels = {str(k): v for k, v in labels.items() if isinstance(v, str)}
        languages = [lang for lang in q.get("lang", [""])[0].split(",") if lang][:8]
        choice = await asyncio.to_thread(self.layouts.choose, q.get("layout", [""])[0], labels, languages)
        if choice is None:
            return {"layout": None}
        return {
            "layout": choice.layout,
            "variant": choice.variant,
            "how": choice.how,
            "keymap": choice.keymap,
        }

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        kind: str,
        *,
        head_only: bool,
        store: bool = True,
    ) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Content-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Cache-Control: {'no-cache' if store else 'no-store'}\r\n"
            f"{self.page.headers}"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + (b"" if head_only else body))
        await writer.drain()

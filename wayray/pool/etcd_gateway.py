"""Talking to etcd's v3 JSON gateway (docs/pools.md §11): requests over mutual TLS 1.3 through httpx,
to the members' client URLs in turn. A member that does not answer, or answers that it cannot serve
the request now (between leaders, cut off from them, overloaded), is passed over for the next one;
when none answers, the request goes round them again for a while. Only a member whose answer stands
is asked first next time, so a directory never stays stuck on one member while the others answer."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from wayray.pool.directory import DirectoryError, LeaseExpired

log = logging.getLogger("wayray.pool")
# httpx logs every request at INFO: a keep-alive a second would drown the server's own log.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: Seconds one request to one etcd endpoint may take before the next endpoint is tried (in the first
#: round through the endpoints; twice as long in each round after).
REQUEST_TIMEOUT = 3.0
#: Seconds a request keeps going round the endpoints before the directory gives up on it: long enough
#: to ride out an etcd leader election after a member died (etcd's election timeout is 1 s by default;
#: a loaded member may take several), short enough that a kiosk waiting on a badge hears an answer.
RETRY_WINDOW = 15.0
#: Seconds between two rounds through the endpoints (doubling up to a second).
RETRY_PAUSE = 0.1
#: gRPC status codes (as the gateway's error answers carry them) of a member that cannot serve a
#: request now, though the request itself is fine: Canceled, Unknown, DeadlineExceeded,
#: ResourceExhausted ("too many requests"), Aborted, Internal, Unavailable ("leader changed", "no
#: leader", "request timed out", a gateway that lost its own gRPC connection).
TRANSIENT_CODES = frozenset({1, 2, 4, 8, 10, 13, 14})


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.3 to etcd: its certificate must chain to ``ca`` and name the host dialled; ours is
    ``cert``/``key``."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(str(cert), str(key))
    return context


class Gateway:
    """The etcd members' client URLs ``endpoints``, as ``who`` (for messages) asks them."""

    def __init__(
        self,
        endpoints: tuple[str, ...],
        context: ssl.SSLContext,
        who: str,
        *,
        timeout: float = REQUEST_TIMEOUT,
        retry_window: float = RETRY_WINDOW,
    ) -> None:
        self.endpoints = endpoints
        self.who = who
        self._client = httpx.AsyncClient(verify=context, timeout=timeout, trust_env=False)
        self._timeout = timeout
        self._retry_window = retry_window
        #: The endpoint whose answer stood last: asked first next time.
        self.current = 0

    async def call(self, path: str, body: dict[str, Any], *, patient: bool = True) -> dict[str, Any]:
        """POST ``body`` to the gateway, starting with the endpoint that answered last. An endpoint that
        does not answer (down, partitioned, too slow) or answers that it cannot serve the request now
        (between leaders, cut off from them, overloaded) is passed over; when none answers, the
        request goes round them again, with a growing pause and waiting twice as long for each answer
        every round, for up to ``RETRY_WINDOW`` seconds. It stops sooner when every endpoint has
        refused the TLS handshake (a certificate etcd does not trust): that does not get better by
        waiting.
        Repeating a request is safe: every write is a compare-and-swap transaction, and a claim that
        finds its own entry (an answer lost on the way) takes it as won. Not ``patient``: one round
        only (a keep-alive, whose next round comes within a second anyway)."""
        deadline = time.monotonic() + (self._retry_window if patient else 0.0)
        pause = RETRY_PAUSE
        # Each round waits twice as long for each endpoint: an etcd that answers, only slowly (a
        # loaded member whose disk syncs slowly), is waited for, not left at every attempt.
        wait = self._timeout
        said = False
        refused: set[int] = set()  # endpoints that refused our certificate (TLS 1.3 may say so late)
        while True:
            failures: list[str] = []
            for step in range(len(self.endpoints)):
                index = (self.current + step) % len(self.endpoints)
                timeout = max(self._timeout, min(wait, deadline - time.monotonic()))
                try:
                    response = await self._client.post(
                        self.endpoints[index] + path, json=body, timeout=timeout
                    )
                except (httpx.TransportError, OSError) as err:  # OSError: ssl.SSLError (refused certificate)
                    failures.append(f"{self.endpoints[index]}: {type(err).__name__} {err}".rstrip())
                    if _tls_refusal(err):
                        refused.add(index)
                    continue
                unable = _cannot_serve_now(response)
                if unable is not None:
                    # This member answers, but cannot serve the request now: another one may. It is
                    # not asked first next time.
                    failures.append(f"{self.endpoints[index]}: {unable}")
                    continue
                self.current = index
                if said:
                    log.info("etcd answers again at %s", self.endpoints[index])
                return self._answer(path, index, response)
            summary = "no etcd endpoint answers (" + "; ".join(failures) + ")"
            if len(refused) == len(self.endpoints) or time.monotonic() + pause > deadline:
                raise DirectoryError(summary)
            if not said:
                left = max(0.0, deadline - time.monotonic())
                log.warning("%s; trying again for up to %.0f s", summary, left)
                said = True
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)
            wait *= 2

    def _answer(self, path: str, index: int, response: httpx.Response) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            raise DirectoryError(
                f"etcd at {self.endpoints[index]} answered {path} with HTTP {response.status_code} "
                "and no JSON (is it etcd's client URL?)"
            ) from None
        if response.status_code != 200 or "error" in answer:
            message = str(answer.get("message") or answer.get("error") or response.reason_phrase)
            if "lease not found" in message:
                raise LeaseExpired(f"the lease of {self.who} has expired ({message})")
            raise DirectoryError(f"etcd at {self.endpoints[index]} refused {path}: {message}")
        return answer

    async def close(self) -> None:
        await self._client.aclose()


def _cannot_serve_now(response: httpx.Response) -> str | None:
    """Why this answer says its member cannot serve the request now (another member, or the same one
    a moment later, may), or None: the answer stands (a result, or a refusal every member would make
    alike, such as "lease not found")."""
    if response.status_code == 200:
        return None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # No gateway error body: a proxy, or a member starting or stopping (a 5xx); else not etcd's
        # client URL at all (left to the answer's check, which says so).
        return f"HTTP {response.status_code}" if response.status_code >= 500 else None
    code = answer.get("code")
    message = str(answer.get("message") or answer.get("error") or response.reason_phrase)
    if (isinstance(code, int) and code in TRANSIENT_CODES) or (code is None and response.status_code >= 500):
        return f"HTTP {response.status_code} {message}"
    return None


def _tls_refusal(err: BaseException) -> bool:
    """Whether ``err`` is a TLS failure (a certificate one side refused), not a slow or absent peer."""
    if isinstance(err, httpx.TimeoutException):
        return False
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) and not isinstance(
            seen, (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLZeroReturnError, ssl.SSLEOFError)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

"""What a new viewer may have before anything starts for it: in at all (the access key), a new session
or login screen (admission: per-source and memory limits), and at what size (the output it starts with).

Refusals are logged once per source a minute, the ones in between counted in the next line: a stranger
hammering the port fills no disk.
"""

from __future__ import annotations

import logging
import time

from wayray.server import access
from wayray.server.admission import Admission, Holding, Kind, estimate, fit_output
from wayray.server.live import Viewer
from wayray.server.settings import Mode
from wayray.server.table import SessionTable
from wayray.transport import ServerConnection
from wayray.wire import SCALE_ONE, ErrorCode
from wayray.wire.protocol import HELLO_CREDENTIALS

log = logging.getLogger("wayray.server")

#: Refusals (no access key, a source over its limits) are logged once per source this often; the
#: ones in between are counted in the next line. A stranger hammering the port fills no disk.
REFUSAL_LOG_INTERVAL = 60.0


class Gate:
    def __init__(self, table: SessionTable, access_key: str | None) -> None:
        self.table = table
        #: The access key viewers must present (``settings.access_key_file``), None: none.
        self.access_key = access_key
        #: Per-source and memory limits on new sessions; what is being started right now counts too.
        self.admission = Admission(table.settings.admission)
        #: What is being started right now (login and unlock screens wrsessd starts), by id.
        self.pending: dict[str, Holding] = {}
        #: Refusal log lines: source → (when last logged, refusals not logged since).
        self._refusals: dict[str, tuple[float, int]] = {}

    # --- the access key ----------------------------------------------------------------------------

    def lets_in(self, conn: ServerConnection, source: str) -> bool:
        """Whether the viewer presented the access key (when there is one); one that did not is closed
        before anything starts for it."""
        if self.access_key is None or access.matches(self.access_key, conn.hello.access_key):
            return True
        presented = bool(conn.hello.access_key)
        self._log_refusal(
            source,
            f"{conn.peer_address}: refused: {'a wrong access key' if presented else 'no access key'}",
        )
        # A standalone server's "operator" is whoever started it, maybe another user of this machine.
        who = "whoever started it" if self.table.settings.mode is Mode.STANDALONE else "its operator"
        if (conn.version or (1, 0)) >= HELLO_CREDENTIALS:
            conn.close(
                ErrorCode.ACCESS_DENIED,
                ("the access key is wrong" if presented else "this server requires an access key")
                + f": ask {who} for it, then give it to wrclient (--access-key-file FILE, "
                "WAYRAY_ACCESS_KEY, or access_key_file in client.toml)",
            )
        else:
            conn.close(
                ErrorCode.TOKEN_REJECTED,
                "this server requires an access key, which this viewer (protocol 1.1) cannot present: "
                "upgrade wrclient, then give it the key (--access-key-file FILE)",
            )
        return False

    # --- admission ---------------------------------------------------------------------------------

    def admit(self, viewer: Viewer, kind: Kind, size: tuple[int, int]) -> str | None:
        """None when ``viewer`` may have a new ``kind`` of ``size``, else why not (logged)."""
        refusal = self.admission.admit(
            viewer.source, kind, estimate(kind, *size), self._holdings(), time.monotonic()
        )
        if refusal is not None:
            self._log_refusal(viewer.source, f"{viewer.conn.peer_address}: no new {kind}: {refusal}")
        return refusal

    def _holdings(self) -> list[Holding]:
        """What every live session (and every one being started) holds, for admission."""
        table = self.table
        out = list(self.pending.values())
        for session in [*table.live.values(), *table.unlocking.values()]:
            record = table.record(session) if session.unlocks is None else None
            used = record is not None and record.touched_at is not None
            out.append(Holding(session.source, session.kind, session.memory, used=used))
        return out

    def _log_refusal(self, source: str, line: str) -> None:
        now = time.monotonic()
        last, quiet = self._refusals.get(source, (-REFUSAL_LOG_INTERVAL, 0))
        if now - last < REFUSAL_LOG_INTERVAL:
            self._refusals[source] = (last, quiet + 1)
            return
        more = f" ({quiet} more refusals from {source} in the last minute, not logged)" if quiet else ""
        log.warning("%s%s", line, more)
        self._refusals[source] = (now, 0)
        if len(self._refusals) > 10_000:
            for key in [k for k, (at, _) in self._refusals.items() if now - at > REFUSAL_LOG_INTERVAL]:
                del self._refusals[key]

    # --- the output a new session starts with ------------------------------------------------------

    def output_for(self, conn: ServerConnection, kind: Kind) -> tuple[tuple[int, int], int]:
        """The output a new session starts with: the viewer's screen when it says one it can drive,
        made to fit the pixels a session of ``kind`` may have (a larger screen gets the largest
        output of its shape that fits; the viewer scales the picture)."""
        settings = self.table.settings
        hello = conn.hello
        size = (hello.screen_width, hello.screen_height)
        if not (320 <= size[0] <= 16384 and 200 <= size[1] <= 16384):
            size = settings.output_size
        scale = (
            max(1, min(4, round(hello.scale_120 / SCALE_ONE)))
            if hello.screen_width
            else settings.output_scale
        )
        size = (size[0] - size[0] % scale, size[1] - size[1] % scale)
        max_pixels = self.table.max_pixels(kind)
        fitted = fit_output(*size, max_pixels, scale=scale)
        if fitted != size:
            log.info(
                "%s: its screen is %dx%d; a %s here has at most %d pixels: %dx%d",
                conn.peer_address,
                *size,
                kind,
                max_pixels,
                *fitted,
            )
        return fitted, scale
